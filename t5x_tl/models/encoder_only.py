"""Encoder-only Transformers: T5's encoder with a token head (BERT-style masked prediction) and an optional
classification or regression head on a pooled representation.

T5 has no [CLS] token, so ``pooling="mean"`` (the mean over real tokens, as Sentence-T5 does) is the default;
``"first"`` takes the first token's state, for inputs that start with a marker of their own. A regression head
is a classification head with one output, read as a number by the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.config import T5Config
from t5x_tl.models.layers import logical_param
from t5x_tl.models.t5 import EncodingModel, segments_of

POOLINGS = ("mean", "first")


def pool(hidden_BxLxD: jax.Array, segments_BxL: jax.Array, pooling: str) -> jax.Array:
    """One vector per row: the mean over real (non-padding) positions, or the first position."""
    if pooling == "first":
        return hidden_BxLxD[:, 0]
    real = (segments_BxL > 0).astype(hidden_BxLxD.dtype)[..., None]
    return (hidden_BxLxD * real).sum(axis=1) / jnp.maximum(real.sum(axis=1), 1.0)


class EncoderOnly(EncodingModel):
    """``num_outputs > 0`` adds the pooled head; ``token_head=False`` drops the token head (a Hugging Face
    ``T5EncoderModel`` has none)."""

    def __init__(
        self,
        cfg: T5Config,
        *,
        num_outputs: int = 0,
        pooling: str = "mean",
        token_head: bool = True,
        rngs: nnx.Rngs,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        super().__init__(cfg, rngs, token_head=token_head)
        self.pooling = pooling
        if num_outputs:
            self.head = logical_param(
                nnx.initializers.normal(cfg.d_model**-0.5),
                rngs.params(),
                (cfg.d_model, num_outputs),
                ("embed", None),
                cfg.weight_dtype,
            )

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x L x vocab`` float32 token logits (what SeqIO's encoder feature converter trains)."""
        hidden = self.encode(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic, rngs=rngs)
        return self.logits(hidden)

    def classify(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x num_outputs`` float32 outputs of the pooled head."""
        if not hasattr(self, "head"):
            raise ValueError("this EncoderOnly has no pooled head: build it with num_outputs > 0")
        hidden = self.encode(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic, rngs=rngs)
        pooled = pool(hidden, segments_of(encoder_input_tokens, encoder_segment_ids), self.pooling)
        return (pooled @ self.head[...].astype(pooled.dtype)).astype(jnp.float32)
