"""The device mesh and the logical-axis rules that turn parameter annotations into shardings.

Rules are data (a tuple of ``(logical_axis, mesh_axis_or_None)`` pairs from the config); this module only
applies them. The mesh uses Auto axis types so XLA propagates shardings through the step, as pjit did.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from t5x_tl.models.sharding import BATCH_AXES, MESH_AXES, RULE_PRESETS

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]


def resolve_rules(preset: str, rules: Rules = ()) -> Rules:
    """``rules`` when given (a custom table), else the named preset's; ValueError for an unknown preset."""
    if rules:
        return tuple(tuple(rule) for rule in rules)
    if preset not in RULE_PRESETS:
        raise ValueError(f"partitioning preset {preset!r} is unknown; choose one of {tuple(RULE_PRESETS)}")
    return RULE_PRESETS[preset]


def mesh_shape(requested: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Resolves one ``-1`` entry to the devices left over; the product must equal ``num_devices``."""
    if sum(1 for n in requested if n == -1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {tuple(requested)}")
    if any(n == 0 or n < -1 for n in requested):
        raise ValueError(f"mesh axis sizes must be positive or -1, got {tuple(requested)}")
    known = int(np.prod([n for n in requested if n != -1]))
    if num_devices % known:
        raise ValueError(f"mesh {tuple(requested)} does not divide the {num_devices} available devices")
    shape = tuple(num_devices // known if n == -1 else n for n in requested)
    if int(np.prod(shape)) != num_devices:
        raise ValueError(f"mesh {shape} uses {int(np.prod(shape))} devices but {num_devices} are available")
    return shape


def make_mesh(
    data: int, model: int, *, fsdp: int = 1, replica: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A ``replica x data x fsdp x model`` mesh over ``devices`` (default: all of them; one ``-1`` fills the
    rest). ``replica`` is the slow axis (across slices or hosts), ``model`` the fast one (within a host)."""
    devices = list(devices or jax.devices())
    shape = mesh_shape((replica, data, fsdp, model), len(devices))
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def param_specs(abstract_params: nnx.State, rules: Rules) -> dict:
    """Pure dict of PartitionSpecs, one per parameter, from its logical axis names."""
    with nnx.logical_axis_rules(list(rules)):
        return nnx.to_pure_dict(nnx.get_partition_spec(abstract_params))


def _full_spec(spec: PartitionSpec, ndim: int) -> tuple:
    return tuple(spec) + (None,) * (ndim - len(spec))


def optimizer_state_spec(
    leaf_shape: tuple[int, ...], param_shape: tuple[int, ...], spec: PartitionSpec
) -> PartitionSpec:
    """Sharding of an optimizer-state leaf that belongs to a parameter.

    Moments shaped like the parameter follow it; Adafactor's factored row/column statistics follow the
    parameter's remaining axes; anything else is replicated.
    """
    full = _full_spec(spec, len(param_shape))
    if leaf_shape == param_shape:
        return PartitionSpec(*full)
    if len(param_shape) >= 2 and leaf_shape == param_shape[:-1]:
        return PartitionSpec(*full[:-1])
    if len(param_shape) >= 2 and leaf_shape == param_shape[:-2] + param_shape[-1:]:
        return PartitionSpec(*full[:-2], full[-1])
    return PartitionSpec()


def named(mesh: Mesh, specs: object) -> object:
    """Maps a tree of PartitionSpecs to NamedShardings on ``mesh``."""
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec))


def batch_shards(mesh: Mesh) -> int:
    """How many ways a batch is split: the product of the replica, data and fsdp axes."""
    return int(np.prod([mesh.shape[axis] for axis in BATCH_AXES]))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches split along their leading axis over the replica, data and fsdp mesh axes."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))
