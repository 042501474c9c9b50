"""DeBERTa's disentangled self-attention and the post-LayerNorm layer that holds it.

Attention logits are the sum of three terms over the same scale, 1/sqrt(head_dim * (1 + number of position terms)):
content-to-content ``q_i . k_j``, content-to-position ``q_i . pk[r(i, j)]`` (c2p) and position-to-content
``k_j . pq[r(j, i)]`` (p2c), where ``pk`` and ``pq`` are the relative-position table projected by the attention's
own key and query maps (``share_att_key``) or by maps of their own, and ``r`` is the log-bucketed relative
position shifted into the table. Dense maps and LayerNorm are the shared ones of :mod:`t5x_tl.models.layers`;
the parameter names of the parts DeBERTa shares with BERT are BERT's, with the same logical axes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from t5x_tl.models.deberta.config import ACTIVATIONS, DebertaV2Config
from t5x_tl.models.layers import Dense, LayerNorm, logical_param
from t5x_tl.models.sharding import BLD, BLF, BLHK, constrain

_NEG_INF = -1e10  # finite: a padding query (which may see no key) gets a uniform softmax, as transformers' does


def log_bucket_positions(relative: np.ndarray, buckets: int, max_position: int) -> np.ndarray:
    """transformers' ``make_log_bucket_position``: distances below ``buckets // 2`` kept, longer ones log-spaced
    up to ``max_position``, sign kept. Computed in float32 like transformers', so the rounding matches."""
    mid = buckets // 2
    distance = np.where(np.abs(relative) < mid, mid - 1, np.abs(relative)).astype(np.float32)
    log_ratio = np.log(distance / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
    log_position = np.ceil(log_ratio * np.float32(mid - 1)) + np.float32(mid)
    return np.where(distance <= mid, relative, log_position * np.sign(relative)).astype(np.int32)


def relative_rows(length: int, cfg: DebertaV2Config) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the relative table each pair reads, static ``L x L`` constants of the length only.

    With ``r[a, b]`` the bucket of ``a - b``: c2p's query i reads row ``r[i, j] + span`` for key j, p2c's key j
    reads row ``-r[j, i] + span`` for query i (indexed ``[j, i]``), both clipped into the ``2 * span`` rows.
    """
    index = np.arange(length)
    relative = index[:, None] - index[None, :]
    if cfg.position_buckets > 0:
        relative = log_bucket_positions(relative, cfg.position_buckets, cfg.max_relative_distance)
    span = cfg.attention_span
    return np.clip(relative + span, 0, 2 * span - 1), np.clip(span - relative, 0, 2 * span - 1)


def _common(cfg: DebertaV2Config, rngs: nnx.Rngs) -> dict:
    return {"dtype": cfg.compute_dtype, "param_dtype": cfg.weight_dtype, "rngs": rngs}


def dense(cfg: DebertaV2Config, features_in: int, features_out: int, axes: tuple, rngs: nnx.Rngs) -> Dense:
    return Dense(features_in, features_out, axes, init_std=cfg.initializer_range, **_common(cfg, rngs))


def norm(cfg: DebertaV2Config, dim: int, rngs: nnx.Rngs) -> LayerNorm:
    return LayerNorm(dim, eps=cfg.layer_norm_eps, **_common(cfg, rngs))


class HeadProjection(nnx.Module):
    """``x @ kernel + bias`` into ``heads x head_dim``: a query, key or value map (kernel ``embed x heads x kv``)."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.dtype = cfg.compute_dtype
        normal, zeros = nnx.initializers.normal(cfg.initializer_range), nnx.initializers.zeros
        shape, axes = (cfg.hidden_size, cfg.num_heads, cfg.head_dim), ("embed", "heads", "kv")
        self.kernel = logical_param(normal, rngs.params(), shape, axes, cfg.weight_dtype)
        self.bias = logical_param(zeros, rngs.params(), shape[1:], axes[1:], cfg.weight_dtype)

    def __call__(self, x_NxD: jax.Array) -> jax.Array:
        projected = jnp.einsum("...d,dhk->...hk", x_NxD, self.kernel[...].astype(self.dtype))
        return projected + self.bias[...].astype(self.dtype)


def _relative_term(content_BxLxHxK: jax.Array, positions_RxHxK: jax.Array, rows_LxL: np.ndarray) -> jax.Array:
    """``B x H x L x L`` float32: token a's content dotted with the relative row ``rows[a, b]``, for each b."""
    by_row_BxHxLxR = jnp.einsum("bahk,rhk->bhar", content_BxLxHxK, positions_RxHxK).astype(jnp.float32)
    return jnp.take_along_axis(by_row_BxHxLxR, rows_LxL[None, None], axis=-1)


class DisentangledAttention(nnx.Module):
    """Self-attention with DeBERTa's relative-position terms (see the module docstring)."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.dtype = cfg.compute_dtype
        self.terms = cfg.position_terms if cfg.relative_attention else ()
        self.scale = 1.0 / math.sqrt(cfg.head_dim * (1 + len(cfg.position_terms)))
        self.query, self.key, self.value = (HeadProjection(cfg, rngs) for _ in range(3))
        self.shared_keys = cfg.share_att_key
        if not cfg.share_att_key and "c2p" in self.terms:
            self.position_key = HeadProjection(cfg, rngs)
        if not cfg.share_att_key and "p2c" in self.terms:
            self.position_query = HeadProjection(cfg, rngs)
        normal, zeros = nnx.initializers.normal(cfg.initializer_range), nnx.initializers.zeros
        out_shape = (cfg.num_heads, cfg.head_dim, cfg.hidden_size)
        self.out = logical_param(normal, rngs.params(), out_shape, ("heads", "kv", "embed"), cfg.weight_dtype)
        self.out_bias = logical_param(zeros, rngs.params(), (cfg.hidden_size,), ("embed",), cfg.weight_dtype)
        self.position_dropout = nnx.Dropout(cfg.hidden_dropout)
        self.dropout = nnx.Dropout(cfg.attention_dropout)

    def _position_logits(
        self, q_BxLxHxK: jax.Array, k_BxLxHxK: jax.Array, relative_RxD: jax.Array, rows: tuple[np.ndarray, np.ndarray]
    ) -> jax.Array:
        """The c2p and p2c terms, ``B x H x L x L`` float32; ``rows`` from :func:`relative_rows`."""
        c2p_QxK, p2c_KxQ = rows
        logits_BxHxLxL = jnp.zeros((), jnp.float32)
        if "c2p" in self.terms:
            position_key = self.key if self.shared_keys else self.position_key
            logits_BxHxLxL = logits_BxHxLxL + _relative_term(q_BxLxHxK, position_key(relative_RxD), c2p_QxK)
        if "p2c" in self.terms:
            position_query = self.query if self.shared_keys else self.position_query
            by_key_BxHxKxQ = _relative_term(k_BxLxHxK, position_query(relative_RxD), p2c_KxQ)
            logits_BxHxLxL = logits_BxHxLxL + jnp.swapaxes(by_key_BxHxKxQ, -1, -2)
        return logits_BxHxLxL

    def __call__(
        self,
        x_BxLxD: jax.Array,
        *,
        mask_Bx1xLxL: jax.Array,
        relative_RxD: jax.Array | None,
        rows: tuple[np.ndarray, np.ndarray],
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        q_BxLxHxK = constrain(self.query(x_BxLxD), BLHK)
        k_BxLxHxK = constrain(self.key(x_BxLxD), BLHK)
        v_BxLxHxK = constrain(self.value(x_BxLxD), BLHK)
        logits_BxHxLxL = jnp.einsum("bqhk,bthk->bhqt", q_BxLxHxK, k_BxLxHxK).astype(jnp.float32)
        if self.terms:
            relative_RxD = self.position_dropout(relative_RxD, **drop)
            logits_BxHxLxL = logits_BxHxLxL + self._position_logits(q_BxLxHxK, k_BxLxHxK, relative_RxD, rows)
        logits_BxHxLxL = jnp.where(mask_Bx1xLxL, logits_BxHxLxL * self.scale, _NEG_INF)
        weights_BxHxLxL = self.dropout(jax.nn.softmax(logits_BxHxLxL, axis=-1).astype(self.dtype), **drop)
        attended_BxLxHxK = jnp.einsum("bhqt,bthk->bqhk", weights_BxHxLxL, v_BxLxHxK)
        out_BxLxD = jnp.einsum("bqhk,hkd->bqd", attended_BxLxHxK, self.out[...].astype(self.dtype))
        return constrain(out_BxLxD + self.out_bias[...].astype(self.dtype), BLD)


class Layer(nnx.Module):
    """A post-LayerNorm layer, as transformers' ``DebertaV2Layer``: ``norm(x + attention(x))``, then
    ``norm(x + mlp(x))``."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.activation = cfg.hidden_act
        self.attention = DisentangledAttention(cfg, rngs)
        self.attention_norm = norm(cfg, cfg.hidden_size, rngs)
        self.mlp_in = dense(cfg, cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), rngs)
        self.mlp_out = dense(cfg, cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"), rngs)
        self.mlp_norm = norm(cfg, cfg.hidden_size, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout)

    def __call__(
        self,
        x_BxLxD: jax.Array,
        *,
        mask_Bx1xLxL: jax.Array,
        relative_RxD: jax.Array | None,
        rows: tuple[np.ndarray, np.ndarray],
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        attended_BxLxD = self.attention(
            x_BxLxD, mask_Bx1xLxL=mask_Bx1xLxL, relative_RxD=relative_RxD, rows=rows, **drop
        )
        x_BxLxD = constrain(self.attention_norm(x_BxLxD + self.dropout(attended_BxLxD, **drop)), BLD)
        h_BxLxF = constrain(ACTIVATIONS[self.activation](self.mlp_in(x_BxLxD)), BLF)
        return constrain(self.mlp_norm(x_BxLxD + self.dropout(self.mlp_out(h_BxLxF), **drop)), BLD)
