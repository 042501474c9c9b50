"""The parameter-bearing pieces of a BERT-family layer besides the shared biased dense map and LayerNorm
(:mod:`t5x_tl.models.layers`): the attention mask and scaled self-attention.

Unlike T5's, every projection has a bias, the norm subtracts the mean and has a bias, and attention scales its
logits by head_dim^-0.5; parameters carry the same logical axis names as T5's (``embed``, ``heads``, ``kv``,
``mlp``), so every sharding preset applies unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import segment_mask
from t5x_tl.models.layers import logical_param
from t5x_tl.models.sharding import BLD, BLHK, constrain

_NEG_INF = -1e10  # large but finite: an all-padding row gets a uniform softmax, as transformers' does


def encoder_mask(segments_BxL: jax.Array) -> jax.Array:
    """``B x 1 x L x L``: attention within each packed example; a padding query attends to every real key, as under
    transformers' key-only padding mask, so outputs at padding equal theirs too."""
    padding_query = (segments_BxL == 0)[:, None, :, None] & (segments_BxL > 0)[:, None, None, :]
    return segment_mask(segments_BxL, segments_BxL) | padding_query


class SelfAttention(nnx.Module):
    """Multi-head self-attention with biased projections and logits scaled by head_dim^-0.5."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        *,
        dropout_rate: float,
        init_std: float,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.dtype = dtype
        normal, zeros = nnx.initializers.normal(init_std), nnx.initializers.zeros

        def param(init: nnx.Initializer, shape: Sequence[int], axes: Sequence[str]) -> nnx.Param:
            return logical_param(init, rngs.params(), shape, axes, param_dtype)

        in_shape, in_axes = (dim, num_heads, head_dim), ("embed", "heads", "kv")
        self.query, self.key, self.value = (param(normal, in_shape, in_axes) for _ in range(3))
        self.query_bias, self.key_bias, self.value_bias = (
            param(zeros, (num_heads, head_dim), ("heads", "kv")) for _ in range(3)
        )
        self.out = param(normal, (num_heads, head_dim, dim), ("heads", "kv", "embed"))
        self.out_bias = param(zeros, (dim,), ("embed",))
        self.dropout = nnx.Dropout(dropout_rate)

    def _project(self, x_BxLxD: jax.Array, kernel: nnx.Param, bias: nnx.Param) -> jax.Array:
        projected = jnp.einsum("bld,dhk->blhk", x_BxLxD, kernel[...].astype(self.dtype))
        return constrain(projected + bias[...].astype(self.dtype), BLHK)

    def __call__(
        self, x_BxLxD: jax.Array, *, mask_Bx1xLxL: jax.Array, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        q_BxLxHxK = self._project(x_BxLxD, self.query, self.query_bias)
        k_BxLxHxK = self._project(x_BxLxD, self.key, self.key_bias)
        v_BxLxHxK = self._project(x_BxLxD, self.value, self.value_bias)
        logits_BxHxLxL = jnp.einsum("bqhk,bthk->bhqt", q_BxLxHxK, k_BxLxHxK).astype(jnp.float32)
        logits_BxHxLxL = jnp.where(mask_Bx1xLxL, logits_BxHxLxL * q_BxLxHxK.shape[-1] ** -0.5, _NEG_INF)
        weights_BxHxLxL = jax.nn.softmax(logits_BxHxLxL, axis=-1).astype(self.dtype)
        weights_BxHxLxL = self.dropout(weights_BxHxLxL, deterministic=deterministic, rngs=rngs)
        attended_BxLxHxK = jnp.einsum("bhqt,bthk->bqhk", weights_BxHxLxL, v_BxLxHxK)
        out_BxLxD = jnp.einsum("bqhk,hkd->bqd", attended_BxLxHxK, self.out[...].astype(self.dtype))
        return constrain(out_BxLxD + self.out_bias[...].astype(self.dtype), BLD)
