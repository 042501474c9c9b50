"""The train state (step, parameters, optimizer state) and how it is created sharded on a mesh."""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from t5x_tl.train.partitioning import Rules, named, optimizer_state_spec, param_specs

ModelFactory = Callable[[nnx.Rngs], nnx.Module]
# One model's parameter tree (of arrays, shapes or shardings alike) -> the tree a run trains (a task pair's: two)
Layout = Callable[[dict], dict]


def one_model(tree: dict) -> dict:
    """The layout of every run but a task pair's: the model's own tree."""
    return tree


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: dict
    opt_state: optax.OptState

    @classmethod
    def create(cls, params: dict, optimizer: optax.GradientTransformation) -> TrainState:
        """Step 0, ``params``, and ``optimizer``'s initial state for them; pure, so it also runs under
        ``jax.jit`` and ``jax.eval_shape``."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def abstract_model(model_factory: ModelFactory) -> tuple[nnx.GraphDef, nnx.State]:
    """Graph definition and shape-only parameters, without allocating any weights."""
    model = nnx.eval_shape(lambda: model_factory(nnx.Rngs(0)))
    graphdef, params, _ = nnx.split(model, nnx.Param, ...)
    return graphdef, params


def state_shardings(
    model_factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rules: Rules,
    layout: Layout = one_model,
) -> TrainState:
    """NamedShardings for every leaf of the train state, derived from the parameters' logical axes."""
    _, abstract_params = abstract_model(model_factory)
    specs = layout(param_specs(abstract_params, rules))
    shapes = layout(nnx.to_pure_dict(abstract_params))
    abstract_opt_state = jax.eval_shape(optimizer.init, shapes)
    is_spec = lambda x: isinstance(x, PartitionSpec)
    opt_specs = optax.tree_map_params(
        optimizer,
        lambda leaf, param, spec: optimizer_state_spec(leaf.shape, param.shape, spec),
        abstract_opt_state,
        shapes,
        specs,
        transform_non_params=lambda _: PartitionSpec(),
        is_leaf=is_spec,
    )
    return TrainState(
        step=NamedSharding(mesh, PartitionSpec()), params=named(mesh, specs), opt_state=named(mesh, opt_specs)
    )


def _fresh_state(
    model_factory: ModelFactory, optimizer: optax.GradientTransformation, layout: Layout, key: jax.Array
) -> TrainState:
    model = model_factory(nnx.Rngs(params=key))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return TrainState.create(layout(params), optimizer)


def init_train_state(
    model_factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    shardings: TrainState,
    seed: int,
    layout: Layout = one_model,
) -> TrainState:
    """Fresh parameters and optimizer state, created directly in their shards (a leaf the layout repeats gets a
    buffer of its own in each place, so a step may donate them all)."""
    init = functools.partial(_fresh_state, model_factory, optimizer, layout)
    return jax.jit(init, out_shardings=shardings)(jax.random.key(seed))


def abstract_train_state(
    model_factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    shardings: TrainState,
    layout: Layout = one_model,
) -> TrainState:
    """ShapeDtypeStructs with shardings: the restore target for Orbax, on any mesh."""
    shapes = jax.eval_shape(functools.partial(_fresh_state, model_factory, optimizer, layout), jax.random.key(0))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
