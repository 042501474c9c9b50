"""Parameter trees as flat ``{"encoder/layers/stacked/mlp/wi_0": leaf}`` dicts: the names the sharding table,
warm-start mappings and reports use."""

from __future__ import annotations

from collections.abc import Callable

import jax


def path_name(path: tuple) -> str:
    return "/".join(str(getattr(key, "key", key)) for key in path)


def flatten(tree: object, is_leaf: Callable[[object], bool] | None = None) -> dict[str, object]:
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]}
