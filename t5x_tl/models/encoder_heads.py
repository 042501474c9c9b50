"""The two entry points of a BERT-like encoder with one head (BERT, RoBERTa, DeBERTa): masked-LM logits and
sequence-classification scores, each around the family's ``encode``."""

from __future__ import annotations

import jax
from flax import nnx


class HeadedEncoder(nnx.Module):
    """Base of an encoder built with one ``head``, ``"masked_lm"`` or ``"sequence_classification"``.

    A subclass sets ``head``, ``embeddings.word`` (the tied output embedding) and ``mlm_head`` or ``classifier``,
    and defines ``encode(encoder_input_tokens, encoder_segment_ids, *, token_type_ids, deterministic, rngs)``.
    """

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
        if self.head != "masked_lm":
            raise ValueError(f"this model has the {self.head} head: call classify, or build it with head='masked_lm'")
        options = dict(token_type_ids=token_type_ids, deterministic=deterministic, rngs=rngs)
        hidden_BxLxD = self.encode(encoder_input_tokens, encoder_segment_ids, **options)
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
        if self.head != "sequence_classification":
            raise ValueError(f"this model has the {self.head} head: build it with head='sequence_classification'")
        options = dict(token_type_ids=token_type_ids, deterministic=deterministic, rngs=rngs)
        hidden_BxLxD = self.encode(encoder_input_tokens, encoder_segment_ids, **options)
        return self.classifier(hidden_BxLxD, deterministic=deterministic, rngs=rngs)
