"""The two entry points of a BERT-like encoder with one head (BERT, RoBERTa, DeBERTa): masked-LM logits and
sequence-classification scores, each around the family's ``encode``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

HEADS = ("masked_lm", "sequence_classification")


class HeadedEncoder(nnx.Module):
    """Base of an encoder built with one ``head``, ``"masked_lm"`` or ``"sequence_classification"``.

    A subclass calls :meth:`_choose_head` first and :meth:`_build_head` last in its ``__init__`` (so its parameters
    draw from ``rngs`` in the same order as before), sets ``embeddings.word`` (the tied output embedding) and defines
    ``encode(encoder_input_tokens, encoder_segment_ids, *, token_type_ids, deterministic, rngs)``.
    """

    def _choose_head(self, cfg: Any, head: str) -> None:
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
        self.config, self.head = cfg, head

    def _build_head(
        self, rngs: nnx.Rngs, mlm_head: Callable[[Any, nnx.Rngs], nnx.Module], classifier: Callable[..., nnx.Module]
    ) -> None:
        if self.head == "masked_lm":
            self.mlm_head = mlm_head(self.config, rngs)
        else:
            self.classifier = classifier(self.config, rngs)

    def _encode_for(
        self, head: str, advice: str, tokens: jax.Array, segments: jax.Array | None, **options: Any
    ) -> jax.Array:
        if self.head != head:
            raise ValueError(f"this model has the {self.head} head: {advice}")
        return self.encode(tokens, segments, **options)

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        token_type_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x L x vocab_size`` float32 masked-LM logits."""
        advice = "call classify, or build it with head='masked_lm'"
        options = dict(token_type_ids=token_type_ids, deterministic=deterministic, rngs=rngs)
        hidden_BxLxD = self._encode_for("masked_lm", advice, encoder_input_tokens, encoder_segment_ids, **options)
        return self.mlm_head(hidden_BxLxD, self.embeddings.word[...])

    def classify(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        token_type_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x num_labels`` float32 scores from each row's first token ([CLS], RoBERTa's ``<s>``)."""
        advice = "build it with head='sequence_classification'"
        options = dict(token_type_ids=token_type_ids, deterministic=deterministic, rngs=rngs)
        hidden_BxLxD = self._encode_for(
            "sequence_classification", advice, encoder_input_tokens, encoder_segment_ids, **options
        )
        return self.classifier(hidden_BxLxD, deterministic=deterministic, rngs=rngs)
