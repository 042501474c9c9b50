"""The parameter sharding table (T5X's ``model-info.txt``): every parameter's shape, logical axes, mesh
axes and per-device shape, so a user sees exactly how a rule table lays the model out before it trains."""

from __future__ import annotations

import math

import numpy as np
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from t5x_tl.train.partitioning import Rules, param_specs
from t5x_tl.train.tree_paths import flatten

_is_spec = lambda x: isinstance(x, PartitionSpec)


def _flat(tree: object) -> dict[str, object]:
    return flatten(tree, is_leaf=_is_spec)


def _axes(spec: PartitionSpec, ndim: int) -> list:
    return list(spec) + [None] * (ndim - len(spec))


def _devices_along(mesh: Mesh, axis: str | tuple[str, ...] | None) -> int:
    names = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return math.prod(mesh.shape[name] for name in names)


def parameter_table(abstract_params: nnx.State, rules: Rules, mesh: Mesh) -> str:
    """A fixed-width table, one row per parameter, and totals (parameters, bytes per device)."""
    shapes = _flat(nnx.to_pure_dict(abstract_params))
    logical = _flat(nnx.to_pure_dict(nnx.get_partition_spec(abstract_params)))
    physical = _flat(param_specs(abstract_params, rules))
    rows, total, device_bytes = [], 0, 0
    for name, leaf in sorted(shapes.items()):
        shape = tuple(leaf.shape)
        mesh_axes = _axes(physical[name], len(shape))
        local = tuple(-(-n // _devices_along(mesh, a)) for n, a in zip(shape, mesh_axes, strict=True))
        total += math.prod(shape)
        device_bytes += math.prod(local) * np.dtype(leaf.dtype).itemsize
        fmt = lambda axes: "(" + ", ".join("-" if a is None else str(a) for a in axes) + ")"
        rows.append((name, str(shape), str(leaf.dtype), fmt(_axes(logical[name], len(shape))), fmt(mesh_axes),
                     str(local)))  # fmt: skip
    header = ("parameter", "shape", "dtype", "logical axes", "mesh axes", "per-device shape")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
    mesh_text = " x ".join(f"{name} {size}" for name, size in mesh.shape.items())
    footer = (f"{total:,} parameters; mesh {mesh_text}; {device_bytes / 2**20:,.1f} MiB of parameters per device "
              "(optimizer state follows the same shardings)")  # fmt: skip
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows), footer]) + "\n"
