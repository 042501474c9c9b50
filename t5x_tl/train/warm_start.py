"""Starting a run from pretrained parameters: an explicit mapping, and a report of what was loaded, what was
initialised fresh and what was ignored.

The mapping is a table of ``(target_regex, source_template)`` rules over ``/``-joined parameter paths: the
first rule whose regex matches a target parameter names its source (``re.sub`` with the template); a target
no rule matches reads the same path. A source tensor loads when it exists with the target's shape; anything
else starts fresh, and source tensors nothing read are ignored. The optimizer state always starts fresh,
so a pretrained checkpoint of another optimizer (or none) fine-tunes with this run's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import jax
import numpy as np

from t5x_tl.train.tree_paths import flatten, path_name

Mapping = Sequence[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class WarmStart:
    loaded: dict[str, str]  # target path -> source path
    fresh: dict[str, str]  # target path -> why it was not loaded
    ignored: list[str]  # source paths nothing read

    def report(self) -> str:
        lines = [f"loaded {len(self.loaded)} parameters, {len(self.fresh)} initialised fresh, "
                 f"{len(self.ignored)} pretrained tensors ignored"]  # fmt: skip
        lines += [f"  loaded  {t}" + (f" <- {s}" if s != t else "") for t, s in sorted(self.loaded.items())]
        lines += [f"  fresh   {t} ({why})" for t, why in sorted(self.fresh.items())]
        lines += [f"  ignored {s}" for s in sorted(self.ignored)]
        return "\n".join(lines)


def _source(target: str, mapping: Mapping) -> str:
    for pattern, template in mapping:
        if re.fullmatch(pattern, target):
            return re.sub(pattern, template, target)
    return target


def plan(targets: dict, sources: dict, mapping: Mapping = ()) -> WarmStart:
    """Which pretrained tensor each target parameter takes (``targets`` may hold ShapeDtypeStructs)."""
    flat_targets, flat_sources = flatten(targets), flatten(sources)
    loaded, fresh = {}, {}
    for target, leaf in flat_targets.items():
        source = _source(target, mapping)
        if source not in flat_sources:
            fresh[target] = f"no pretrained {source}"
        elif tuple(np.shape(flat_sources[source])) != tuple(leaf.shape):
            fresh[target] = f"pretrained {source} is {tuple(np.shape(flat_sources[source]))}, not {tuple(leaf.shape)}"
        else:
            loaded[target] = source
    ignored = sorted(set(flat_sources) - set(loaded.values()))
    return WarmStart(loaded, fresh, ignored)


def apply(params: dict, sources: dict, warm_start: WarmStart) -> dict:
    """``params`` with every loaded tensor replaced by its pretrained value, in the target's dtype and sharding."""
    flat_sources = flatten(sources)
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    treedef = jax.tree_util.tree_structure(params)
    leaves = []
    for path, leaf in paths:
        name = path_name(path)
        if name in warm_start.loaded:
            value = np.asarray(flat_sources[warm_start.loaded[name]]).astype(leaf.dtype)
            leaf = jax.device_put(value, leaf.sharding)
        leaves.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, leaves)
