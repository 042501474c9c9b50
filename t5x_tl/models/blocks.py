"""The residual blocks every model of the family is built from, and the relative position bias of a stack.

Pre-norm residual blocks with RMSNorm, no biases and dropout, as in T5. :class:`SelfAttentionLayer` is the
encoder's layer and also the decoder-only model's (with a causal or prefix mask); :class:`DecoderLayer` adds
cross-attention to an encoder's output. The residual stream after every block carries the activation sharding
constraint ``(batch, length, embed)`` (:mod:`t5x_tl.models.sharding`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import MultiHeadAttention, RelativePositionBias
from t5x_tl.models.config import T5Config
from t5x_tl.models.layers import Mlp, RMSNorm
from t5x_tl.models.sharding import BLD, constrain
from t5x_tl.models.stack import LayerStack

Cache = dict[str, jax.Array]


def common(cfg: T5Config, rngs: nnx.Rngs) -> dict:
    return {"dtype": cfg.compute_dtype, "param_dtype": cfg.weight_dtype, "rngs": rngs}


def attention(cfg: T5Config, rngs: nnx.Rngs) -> MultiHeadAttention:
    return MultiHeadAttention(
        cfg.d_model,
        cfg.num_heads,
        cfg.d_kv,
        dropout_rate=cfg.dropout_rate,
        attention_impl=cfg.attention_impl,
        **common(cfg, rngs),
    )


def norm(cfg: T5Config, rngs: nnx.Rngs) -> RMSNorm:
    return RMSNorm(cfg.d_model, eps=cfg.layer_norm_epsilon, **common(cfg, rngs))


def mlp(cfg: T5Config, rngs: nnx.Rngs) -> Mlp:
    return Mlp(
        cfg.d_model,
        cfg.d_ff,
        feed_forward_proj=cfg.feed_forward_proj,
        dropout_rate=cfg.dropout_rate,
        **common(cfg, rngs),
    )


def layer_stack(
    cfg: T5Config, make_layer: Callable[[nnx.Rngs], nnx.Module], num_layers: int, rngs: nnx.Rngs
) -> LayerStack:
    return LayerStack(make_layer, num_layers, scan=cfg.scan_layers, remat_policy=cfg.remat_policy, rngs=rngs)


def empty_cache(batch: int, max_length: int, cfg: T5Config) -> Cache:
    """Self-attention keys and values for ``max_length`` positions of one layer, all zero."""
    empty = jnp.zeros((batch, max_length, cfg.num_heads, cfg.d_kv), cfg.compute_dtype)
    return {"self_k": empty, "self_v": empty}


def _cached_self_attention(
    layer_attention: MultiHeadAttention,
    h_BxQxD: jax.Array,
    cache: Cache,
    position: int | jax.Array,
    *,
    mask: jax.Array | None,
    bias: jax.Array | None,
) -> tuple[jax.Array, Cache]:
    """Writes the keys/values of the ``Q`` new positions at ``position`` and attends over the whole cache."""
    k, v = layer_attention.key_value(h_BxQxD)
    start = (0, position, 0, 0)
    self_k = jax.lax.dynamic_update_slice(cache["self_k"], k.astype(cache["self_k"].dtype), start)
    self_v = jax.lax.dynamic_update_slice(cache["self_v"], v.astype(cache["self_v"].dtype), start)
    out = layer_attention(
        h_BxQxD, None, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, key_value=(self_k, self_v), deterministic=True, rngs=None
    )
    return out, {**cache, "self_k": self_k, "self_v": self_v}


class SelfAttentionLayer(nnx.Module):
    """Self-attention then MLP, each pre-normed and residual."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs) -> None:
        self.attention_norm = norm(cfg, rngs)
        self.attention = attention(cfg, rngs)
        self.mlp_norm = norm(cfg, rngs)
        self.mlp = mlp(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def _mlp_block(self, x_BxLxD: jax.Array, drop: dict) -> jax.Array:
        return constrain(x_BxLxD + self.dropout(self.mlp(self.mlp_norm(x_BxLxD), **drop), **drop), BLD)

    def __call__(
        self,
        x_BxLxD: jax.Array,
        *,
        mask: jax.Array | None,
        bias: jax.Array | None,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        h = self.attention_norm(x_BxLxD)
        h = self.attention(h, h, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, **drop)
        return self._mlp_block(constrain(x_BxLxD + self.dropout(h, **drop), BLD), drop)

    def decode(
        self,
        x_BxQxD: jax.Array,
        cache: Cache,
        position: int | jax.Array,
        *,
        mask: jax.Array | None,
        bias: jax.Array | None,
    ) -> tuple[jax.Array, Cache]:
        """The same layer for ``Q`` tokens at ``position..`` against cached keys/values (decoder-only models)."""
        drop = dict(deterministic=True, rngs=None)
        h, cache = _cached_self_attention(
            self.attention, self.attention_norm(x_BxQxD), cache, position, mask=mask, bias=bias
        )
        return self._mlp_block(constrain(x_BxQxD + h, BLD), drop), cache


class DecoderLayer(nnx.Module):
    """Causal self-attention, cross-attention to the encoder, then MLP."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs) -> None:
        self.self_attention_norm = norm(cfg, rngs)
        self.self_attention = attention(cfg, rngs)
        self.cross_attention_norm = norm(cfg, rngs)
        self.cross_attention = attention(cfg, rngs)
        self.mlp_norm = norm(cfg, rngs)
        self.mlp = mlp(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def _blocks(
        self,
        y_BxLxD: jax.Array,
        self_attend: Callable[[jax.Array], jax.Array],
        cross_attend: Callable[[jax.Array], jax.Array],
        drop: dict,
    ) -> jax.Array:
        y_BxLxD = constrain(y_BxLxD + self.dropout(self_attend(self.self_attention_norm(y_BxLxD)), **drop), BLD)
        y_BxLxD = constrain(y_BxLxD + self.dropout(cross_attend(self.cross_attention_norm(y_BxLxD)), **drop), BLD)
        return constrain(y_BxLxD + self.dropout(self.mlp(self.mlp_norm(y_BxLxD), **drop), **drop), BLD)

    def __call__(
        self,
        y_BxLxD: jax.Array,
        encoded_BxSxD: jax.Array,
        *,
        self_mask: jax.Array | None,
        self_bias: jax.Array | None,
        cross_mask: jax.Array | None,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)

        def self_attend(h: jax.Array) -> jax.Array:
            return self.self_attention(h, h, mask_Bx1xQxK=self_mask, bias_1xHxQxK=self_bias, **drop)

        def cross_attend(h: jax.Array) -> jax.Array:
            return self.cross_attention(h, encoded_BxSxD, mask_Bx1xQxK=cross_mask, bias_1xHxQxK=None, **drop)

        return self._blocks(y_BxLxD, self_attend, cross_attend, drop)

    def init_cache(self, encoded_BxSxD: jax.Array, max_length: int, cfg: T5Config) -> Cache:
        """Cross-attention keys/values (fixed) and empty self-attention keys/values for ``max_length`` steps."""
        cross_k, cross_v = self.cross_attention.key_value(encoded_BxSxD)
        return {"cross_k": cross_k, "cross_v": cross_v, **empty_cache(encoded_BxSxD.shape[0], max_length, cfg)}

    def decode(
        self,
        y_BxQxD: jax.Array,
        cache: Cache,
        position: int | jax.Array,
        *,
        self_mask: jax.Array | None,
        self_bias: jax.Array | None,
        cross_mask: jax.Array | None,
    ) -> tuple[jax.Array, Cache]:
        """The same layer for tokens at ``position..``, attending to cached keys/values; O(1) in the prefix."""
        drop = dict(deterministic=True, rngs=None)
        updated = {}

        def self_attend(h: jax.Array) -> jax.Array:
            out, updated["cache"] = _cached_self_attention(
                self.self_attention, h, cache, position, mask=self_mask, bias=self_bias
            )
            return out

        def cross_attend(h: jax.Array) -> jax.Array:
            kv = (cache["cross_k"], cache["cross_v"])
            return self.cross_attention(h, None, mask_Bx1xQxK=cross_mask, bias_1xHxQxK=None, key_value=kv, **drop)

        y_BxQxD = self._blocks(y_BxQxD, self_attend, cross_attend, drop)
        return y_BxQxD, updated["cache"]


class StackBias(nnx.Module):
    """T5's relative position bias of a stack: one table shared by all layers, or one per layer (UMT5)."""

    def __init__(self, cfg: T5Config, *, bidirectional: bool, num_layers: int, rngs: nnx.Rngs) -> None:
        def table(table_rngs: nnx.Rngs) -> RelativePositionBias:
            return RelativePositionBias(
                cfg.relative_attention_num_buckets,
                cfg.relative_attention_max_distance,
                cfg.num_heads,
                bidirectional=bidirectional,
                **common(cfg, table_rngs),
            )

        self.per_layer = cfg.per_layer_relative_bias
        self.tables = layer_stack(cfg, table, num_layers, rngs) if self.per_layer else table(rngs)

    def __call__(
        self, query_len: int, key_len: int, offset: int | jax.Array = 0
    ) -> tuple[jax.Array | None, jax.Array | None]:
        """``(shared 1xHxQxK bias, None)`` or ``(None, per-layer LxHxQxK... biases)`` to scan with the layers."""
        if self.per_layer:
            return None, self.tables.map(lambda t: t(query_len, key_len, offset))
        return self.tables(query_len, key_len, offset), None


def pick_bias(shared: jax.Array | None, per_layer: jax.Array | None) -> jax.Array:
    """The bias a layer uses: its own slice of the per-layer biases, else the shared one."""
    return shared if per_layer is None else per_layer
