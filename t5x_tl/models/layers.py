"""Parameter-bearing building blocks shared by every Transformer in t5x_tl.

Every parameter carries logical axis names (``embed``, ``mlp``, ``heads``, ``kv``, ``vocab``, ...); the
mesh sharding is decided later from a rule table in the config, never here. Eager sharding is switched off
per variable so that models can be built with or without a mesh in scope.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.sharding import BLD, BLF, constrain

Initializer = nnx.initializers.Initializer


def logical_param(
    init: Initializer, key: jax.Array, shape: Sequence[int], axes: Sequence[str | None], dtype: jnp.dtype
) -> nnx.Param:
    """A parameter annotated with logical axis names, one per dimension."""
    if len(axes) != len(shape):
        raise ValueError(f"{len(axes)} axis names {tuple(axes)} for a parameter of shape {tuple(shape)}")
    return nnx.Param(init(key, tuple(shape), dtype), out_sharding=tuple(axes), eager_sharding=False)


class RMSNorm(nnx.Module):
    """T5's layer norm: scale only, no mean subtraction and no bias; statistics in float32."""

    def __init__(self, dim: int, *, eps: float, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs) -> None:
        self.eps = eps
        self.dtype = dtype
        self.scale = logical_param(nnx.initializers.ones, rngs.params(), (dim,), ("embed",), param_dtype)

    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        x = x_BxLxD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return (x * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class Embed(nnx.Module):
    """Token embedding table, unit-variance initialised as in T5X."""

    def __init__(self, vocab_size: int, dim: int, *, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs) -> None:
        self.dtype = dtype
        self.embedding = logical_param(
            nnx.initializers.normal(1.0), rngs.params(), (vocab_size, dim), ("vocab", "embed"), param_dtype
        )

    def __call__(self, tokens_BxL: jax.Array) -> jax.Array:
        return constrain(jnp.take(self.embedding[...], tokens_BxL, axis=0).astype(self.dtype), BLD)


ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),  # the tanh approximation T5 v1.1 uses
    "silu": jax.nn.silu,
}


def parse_feed_forward(spec: str) -> tuple[bool, str]:
    """Hugging Face's ``feed_forward_proj`` ("relu", "gated-gelu", ...) -> (gated, activation name)."""
    gated = spec.startswith("gated-")
    activation = spec.removeprefix("gated-")
    if gated and activation == "gelu":
        activation = "gelu_new"  # as transformers maps "gated-gelu"
    if activation not in ACTIVATIONS:
        raise ValueError(f"unsupported feed_forward_proj {spec!r}; use [gated-]{{{', '.join(ACTIVATIONS)}}}")
    return gated, activation


class Mlp(nnx.Module):
    """T5's feed-forward block, no biases: ``wo(act(wi x))`` (T5 1.0) or ``wo(act(wi_0 x) * wi_1 x)`` (gated, 1.1)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        feed_forward_proj: str,
        dropout_rate: float,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.dtype = dtype
        self.gated, self.activation = parse_feed_forward(feed_forward_proj)
        init_in = nnx.initializers.normal(d_model**-0.5)
        init_out = nnx.initializers.normal(d_ff**-0.5)
        in_axes = ("embed", "mlp")
        if self.gated:
            self.wi_0 = logical_param(init_in, rngs.params(), (d_model, d_ff), in_axes, param_dtype)
            self.wi_1 = logical_param(init_in, rngs.params(), (d_model, d_ff), in_axes, param_dtype)
        else:
            self.wi = logical_param(init_in, rngs.params(), (d_model, d_ff), in_axes, param_dtype)
        self.wo = logical_param(init_out, rngs.params(), (d_ff, d_model), ("mlp", "embed"), param_dtype)
        self.dropout = nnx.Dropout(dropout_rate)

    def __call__(self, x_BxLxD: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        if self.gated:
            h_BxLxF = act(x_BxLxD @ self.wi_0[...].astype(self.dtype)) * (x_BxLxD @ self.wi_1[...].astype(self.dtype))
        else:
            h_BxLxF = act(x_BxLxD @ self.wi[...].astype(self.dtype))
        h_BxLxF = constrain(h_BxLxF, BLF)
        h_BxLxF = self.dropout(h_BxLxF, deterministic=deterministic, rngs=rngs)
        return h_BxLxF @ self.wo[...].astype(self.dtype)
