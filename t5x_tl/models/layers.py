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


class LayerNorm(nnx.Module):
    """Mean-and-variance normalisation with a scale and a bias (BERT's, GPT-2's); statistics in float32."""

    def __init__(self, dim: int, *, eps: float, dtype: jnp.dtype, param_dtype: jnp.dtype, rngs: nnx.Rngs) -> None:
        self.eps = eps
        self.dtype = dtype
        self.scale = logical_param(nnx.initializers.ones, rngs.params(), (dim,), ("embed",), param_dtype)
        self.bias = logical_param(nnx.initializers.zeros, rngs.params(), (dim,), ("embed",), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        x = (x - mean) * jax.lax.rsqrt(variance + self.eps)
        return (x * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(self.dtype)


class Dense(nnx.Module):
    """``x @ kernel + bias`` over the last axis; ``axes`` name the kernel's (input, output) dimensions."""

    def __init__(
        self,
        features_in: int,
        features_out: int,
        axes: tuple[str | None, str | None],
        *,
        init_std: float,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.dtype = dtype
        normal, zeros = nnx.initializers.normal(init_std), nnx.initializers.zeros
        self.kernel = logical_param(normal, rngs.params(), (features_in, features_out), axes, param_dtype)
        self.bias = logical_param(zeros, rngs.params(), (features_out,), axes[1:], param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel[...].astype(self.dtype) + self.bias[...].astype(self.dtype)


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
# transformers' names (ACT2FN) for the activations t5x_tl implements under another name.
HF_ACTIVATION_ALIASES = {
    **dict.fromkeys(("gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast", "gelu_accurate"), "gelu_new"),
    "swish": "silu",
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
