"""GPT-2's parameter-bearing layers: causal self-attention with a fused qkv projection, the MLP and the pre-norm
residual block that holds them with the shared LayerNorm (:mod:`t5x_tl.models.layers`) at GPT-2's epsilon.

Every dense kernel is stored ``[in, out]`` like Hugging Face's ``Conv1D``, the qkv and output projections split
into heads (``embed x 3 x heads x kv``, ``heads x kv x embed``) so that tensor parallelism can shard the heads.
Attention logits and softmax run in float32 whatever the compute dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.gpt2.config import GPT2Config
from t5x_tl.models.layers import ACTIVATIONS, LayerNorm, logical_param
from t5x_tl.models.sharding import BLD, BLF, BLHK, constrain

Cache = dict[str, jax.Array]  # one layer's "k" and "v", B x T x H x K
_NEG_INF = -1e10  # finite, so a fully masked (padding) query row gets a uniform softmax, not NaN


def dense_init(cfg: GPT2Config, *, residual: bool = False) -> nnx.initializers.Initializer:
    """GPT-2's initialiser: N(0, initializer_range), scaled by 1/sqrt(2 n_layer) on the residual projections."""
    std = cfg.initializer_range / ((2 * cfg.n_layer) ** 0.5 if residual else 1.0)
    return nnx.initializers.normal(std)


def layer_norm(cfg: GPT2Config, rngs: nnx.Rngs) -> LayerNorm:
    """The shared LayerNorm over ``n_embd`` with GPT-2's epsilon."""
    return LayerNorm(
        cfg.n_embd, eps=cfg.layer_norm_epsilon, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype, rngs=rngs
    )


class Attention(nnx.Module):
    """Multi-head self-attention; ``scale`` (per layer, see :meth:`GPT2Config.attention_scales`) multiplies the
    float32 logits."""

    def __init__(self, cfg: GPT2Config, rngs: nnx.Rngs) -> None:
        self.dtype = cfg.compute_dtype
        d, h, k, dtype = cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.weight_dtype
        zeros = nnx.initializers.zeros
        qkv_axes = ("embed", None, "heads", "kv")
        self.qkv_kernel = logical_param(dense_init(cfg), rngs.params(), (d, 3, h, k), qkv_axes, dtype)
        self.qkv_bias = logical_param(zeros, rngs.params(), (3, h, k), (None, "heads", "kv"), dtype)
        out_init = dense_init(cfg, residual=True)
        self.out_kernel = logical_param(out_init, rngs.params(), (h, k, d), ("heads", "kv", "embed"), dtype)
        self.out_bias = logical_param(zeros, rngs.params(), (d,), ("embed",), dtype)
        self.dropout = nnx.Dropout(cfg.attn_pdrop)

    def qkv(self, x_BxLxD: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries, keys and values ``B x L x H x K`` from the fused projection."""
        qkv = jnp.einsum("bld,dshk->sblhk", x_BxLxD, self.qkv_kernel[...].astype(self.dtype))
        qkv = qkv + self.qkv_bias[...].astype(self.dtype)[:, None, None]
        return tuple(constrain(t, BLHK) for t in qkv)

    def attend(
        self,
        q_BxQxHxK: jax.Array,
        k_BxTxHxK: jax.Array,
        v_BxTxHxK: jax.Array,
        *,
        mask_Bx1xQxT: jax.Array,
        scale: jax.Array | float,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        """The output projection of the masked, softmax-weighted values."""
        logits = jnp.einsum("bqhk,bthk->bhqt", q_BxQxHxK, k_BxTxHxK, preferred_element_type=jnp.float32) * scale
        weights = jax.nn.softmax(jnp.where(mask_Bx1xQxT, logits, _NEG_INF), axis=-1).astype(self.dtype)
        weights = self.dropout(weights, deterministic=deterministic, rngs=rngs)
        attended = jnp.einsum("bhqt,bthk->bqhk", weights, v_BxTxHxK.astype(self.dtype))
        out = jnp.einsum("bqhk,hkd->bqd", attended, self.out_kernel[...].astype(self.dtype))
        return constrain(out + self.out_bias[...].astype(self.dtype), BLD)


class Mlp(nnx.Module):
    """``c_proj(act(c_fc x))``, both with biases."""

    def __init__(self, cfg: GPT2Config, rngs: nnx.Rngs) -> None:
        self.dtype = cfg.compute_dtype
        self.activation = cfg.activation
        d, f, dtype = cfg.n_embd, cfg.inner_dim, cfg.weight_dtype
        zeros = nnx.initializers.zeros
        self.wi = logical_param(dense_init(cfg), rngs.params(), (d, f), ("embed", "mlp"), dtype)
        self.wi_bias = logical_param(zeros, rngs.params(), (f,), ("mlp",), dtype)
        self.wo = logical_param(dense_init(cfg, residual=True), rngs.params(), (f, d), ("mlp", "embed"), dtype)
        self.wo_bias = logical_param(zeros, rngs.params(), (d,), ("embed",), dtype)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        h_BxLxF = x_BxLxD @ self.wi[...].astype(self.dtype) + self.wi_bias[...].astype(self.dtype)
        h_BxLxF = constrain(ACTIVATIONS[self.activation](h_BxLxF), BLF)
        return h_BxLxF @ self.wo[...].astype(self.dtype) + self.wo_bias[...].astype(self.dtype)


class Block(nnx.Module):
    """LayerNorm -> causal self-attention -> residual, LayerNorm -> MLP -> residual (dropout on both branches)."""

    def __init__(self, cfg: GPT2Config, rngs: nnx.Rngs) -> None:
        self.attention_norm = layer_norm(cfg, rngs)
        self.attention = Attention(cfg, rngs)
        self.mlp_norm = layer_norm(cfg, rngs)
        self.mlp = Mlp(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.resid_pdrop)

    def _mlp_block(self, x_BxLxD: jax.Array, drop: dict) -> jax.Array:
        return constrain(x_BxLxD + self.dropout(self.mlp(self.mlp_norm(x_BxLxD)), **drop), BLD)

    def __call__(
        self,
        x_BxLxD: jax.Array,
        *,
        mask: jax.Array,
        scale: jax.Array | float,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        q, k, v = self.attention.qkv(self.attention_norm(x_BxLxD))
        h = self.attention.attend(q, k, v, mask_Bx1xQxT=mask, scale=scale, **drop)
        return self._mlp_block(constrain(x_BxLxD + self.dropout(h, **drop), BLD), drop)

    def decode(
        self, x_BxQxD: jax.Array, cache: Cache, index: jax.Array, *, mask: jax.Array, scale: jax.Array | float
    ) -> tuple[jax.Array, Cache]:
        """The block for ``Q`` tokens written to the cache at ``index..``, attending over the whole cache."""
        drop = dict(deterministic=True, rngs=None)
        q, k, v = self.attention.qkv(self.attention_norm(x_BxQxD))
        start = (0, index, 0, 0)
        cache = {
            name: jax.lax.dynamic_update_slice(cache[name], new.astype(cache[name].dtype), start)
            for name, new in (("k", k), ("v", v))
        }
        h = self.attention.attend(q, cache["k"], cache["v"], mask_Bx1xQxT=mask, scale=scale, **drop)
        return self._mlp_block(constrain(x_BxQxD + h, BLD), drop), cache
