"""A stack of identical layers with parameters stacked on a leading ``layers`` axis, run by scan or by a loop.

The parameter layout is the same either way, so a checkpoint does not depend on how it is executed:
``scan=True`` compiles one layer body (compile time flat in depth, as T5X's and MaxText's ``scan_layers``);
``scan=False`` unrolls a Python loop over slices, which XLA may fuse across layers. Each layer can be
rematerialised with a named ``jax.checkpoint`` policy, trading recomputation in the backward pass for the
activation memory of the forward pass.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# name -> jax.checkpoint policy; "none" keeps every activation, "full" keeps only each layer's input.
REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}

# fn(layer, carry, per_layer_input, dropout_rngs) -> (carry, per_layer_output)
LayerFn = Callable[[nnx.Module, Any, Any, nnx.Rngs | None], tuple[Any, Any]]


class LayerStack(nnx.Module):
    """``num_layers`` layers built by ``make_layer``, their parameters stacked on the logical axis ``layers``."""

    def __init__(
        self,
        make_layer: Callable[[nnx.Rngs], nnx.Module],
        num_layers: int,
        *,
        scan: bool,
        remat_policy: str,
        rngs: nnx.Rngs,
    ) -> None:
        if remat_policy not in REMAT_POLICIES:
            raise ValueError(f"unknown remat_policy {remat_policy!r}; choose one of {tuple(REMAT_POLICIES)}")
        if num_layers < 1:
            raise ValueError(f"a layer stack needs at least one layer, got {num_layers}")
        self.num_layers = num_layers
        self.scan = scan
        self.remat_policy = remat_policy

        @nnx.split_rngs(splits=num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def create(layer_rngs: nnx.Rngs) -> nnx.Module:
            return make_layer(layer_rngs)

        self.stacked = create(rngs)

    def __call__(
        self, fn: LayerFn, carry: Any, xs: Any = None, *, dropout_key: jax.Array | None = None
    ) -> tuple[Any, Any]:
        """Threads ``carry`` through every layer; ``xs`` (leading axis = layers) is sliced per layer.

        Returns the final carry and the per-layer outputs stacked on a leading axis (e.g. a decoding cache).
        """
        graphdef, state = nnx.split(self.stacked)
        params = nnx.to_pure_dict(state)
        keys = None if dropout_key is None else jax.random.split(dropout_key, self.num_layers)

        def body(carry: Any, inputs: tuple[dict, Any, jax.Array | None]) -> tuple[Any, Any]:
            layer_params, x, key = inputs
            layer = nnx.merge(graphdef, layer_params)
            return fn(layer, carry, x, None if key is None else nnx.Rngs(dropout=key))

        policy = REMAT_POLICIES[self.remat_policy]
        if self.remat_policy != "none":
            body = jax.checkpoint(body, policy=policy, prevent_cse=not self.scan)
        if self.scan:
            return jax.lax.scan(body, carry, (params, xs, keys))
        outputs = []
        for i in range(self.num_layers):
            carry, y = body(carry, jax.tree.map(operator.itemgetter(i), (params, xs, keys)))
            outputs.append(y)
        return carry, jax.tree.map(lambda *ys: jnp.stack(ys), *outputs)

    def map(self, fn: Callable[[nnx.Module], Any]) -> Any:
        """``fn`` applied to every layer independently, outputs stacked (e.g. per-layer position biases)."""
        graphdef, state = nnx.split(self.stacked)
        return jax.vmap(lambda p: fn(nnx.merge(graphdef, p)))(nnx.to_pure_dict(state))
