"""Hugging Face model directories and the table-driven tensor conversion every model family shares.

A family describes its parameters as one table of ``(our path, layer index or None, Hugging Face name, layout)``
rows built from its config; :func:`params_from_table` and :func:`tensors_from_table` walk that table in the two
directions, so import and export cannot drift apart. Layouts convert by our parameter's shape alone. Shapes are
checked in Hugging Face's layout before any reshape, where a transposed or flattened tensor of the right size
would slip through, and every mismatch is reported in one UserError. Works on flat ``{name: numpy array}`` dicts (a
safetensors file or a torch ``state_dict``), so neither torch nor transformers is needed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from t5x_tl.errors import UserError
from t5x_tl.models.layers import ACTIVATIONS, HF_ACTIVATION_ALIASES

Path_ = tuple[str | int, ...]
Row = tuple[Path_, int | None, str, str]  # our path, layer index in the stacked array (or None), HF name, layout
Config = TypeVar("Config")


def read_config(directory: Path, family: str = "") -> dict:
    """The directory's ``config.json`` as a dict; ``family`` names the model in the error for a missing file."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        model = f"Hugging Face {family} model" if family else "Hugging Face model"
        raise UserError(f"{directory} has no config.json; point at a {model} directory")
    try:
        hf_config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path} is not valid JSON ({error}); restore the model's config.json") from None
    if not isinstance(hf_config, dict):
        raise UserError(f"{config_path} holds a JSON {type(hf_config).__name__}, not a config object")
    return hf_config


def load_config(directory: Path, from_hf: Callable[[dict], Config], family: str = "") -> tuple[Config, dict[str, Any]]:
    """Our config read by ``from_hf`` from the directory's ``config.json``, and that dict; errors name the file."""
    hf_config = read_config(directory, family)
    try:
        return from_hf(hf_config), hf_config
    except UserError as error:
        raise UserError(f"{Path(directory) / 'config.json'}: {error}") from None


def read_tensors(directory: Path) -> dict[str, np.ndarray]:
    """Every tensor of the directory's weights files (bfloat16 ones through ml_dtypes, which JAX registers)."""
    directory = Path(directory)
    safetensors_files = sorted(directory.glob("*.safetensors"))
    if safetensors_files:
        from safetensors.numpy import load_file

        tensors = {}
        for path in safetensors_files:
            try:
                tensors.update(load_file(str(path)))
            except Exception as error:  # safetensors raises its own SafetensorError (and OSError)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UserError(
                    f"cannot read {path} ({reason}); the file is damaged or incomplete: download or save it again"
                ) from None
        return tensors
    torch_file = directory / "pytorch_model.bin"
    if torch_file.is_file():
        import torch  # only for legacy PyTorch checkpoints

        unreadable = UserError(
            f"cannot read {torch_file} as a PyTorch state dict of tensors; the file is damaged, incomplete or "
            "holds other objects: download or save it again"
        )
        try:
            state = torch.load(str(torch_file), map_location="cpu", weights_only=True)
        except Exception:  # EOFError, RuntimeError, UnpicklingError, ... depending on the damage
            raise unreadable from None
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise unreadable
        return {name: tensor.float().numpy() for name, tensor in state.items()}
    raise UserError(f"{directory} has neither *.safetensors nor pytorch_model.bin weights")


def write_directory(directory: Path, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
    """Writes ``config.json`` and ``model.safetensors`` that transformers' ``from_pretrained`` loads."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file(dict(tensors), str(directory / "model.safetensors"), metadata={"format": "pt"})


def check_label_count(directory: Path, asked: int | None, found: int) -> None:
    """Refuses loading a classification head of ``found`` labels when ``asked`` (not None) differs."""
    if asked is not None and asked != found:
        raise UserError(
            f"{directory} holds a classification head of {found} labels, not the {asked} asked for; "
            "load it with that count, or load head='masked_lm' and fine-tune a fresh head"
        )


def num_labels(hf: Mapping[str, Any]) -> int:
    """The label count transformers reads: ``id2label``'s length, else ``num_labels``, else 2; both must agree."""
    id2label, count = hf.get("id2label"), hf.get("num_labels")
    if id2label is not None and count is not None and len(id2label) != count:
        raise UserError(f"the config's num_labels={count} and its {len(id2label)} id2label entries disagree")
    return len(id2label) if id2label is not None else count if count is not None else 2


def activation(field: str, name: Any, activations: Mapping[str, Any] = ACTIVATIONS) -> str:
    """Our name for transformers' activation ``name`` (an ACT2FN name) in the config's ``field``."""
    ours = HF_ACTIVATION_ALIASES.get(name, name) if isinstance(name, str) else name
    if ours not in activations:
        supported = sorted({*activations, *HF_ACTIVATION_ALIASES})
        raise UserError(f"unsupported {field} {name!r}; t5x_tl implements {', '.join(supported)}")
    return ours


def get_path(tree: Mapping, path: Path_) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def set_path(tree: dict, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def leaf_paths(tree: Mapping, prefix: Path_ = ()) -> list[Path_]:
    """The path of every leaf of a nested dict."""
    out: list[Path_] = []
    for key, value in tree.items():
        out += leaf_paths(value, (*prefix, key)) if isinstance(value, Mapping) else [(*prefix, key)]
    return out


def to_ours(array: np.ndarray, layout: str, shape: tuple[int, ...]) -> np.ndarray:
    """A Hugging Face tensor in our layout; ``shape`` is our (unstacked) parameter's."""
    if layout == "dense":  # torch Linear stores (out, in)
        return array.T
    if layout in ("in_heads", "out_heads"):
        return array.T.reshape(shape)
    if layout == "heads_bias":
        return array.reshape(shape)
    return array


def to_hf(array: np.ndarray, layout: str) -> np.ndarray:
    """One of our (unstacked) parameters in Hugging Face's layout."""
    if layout == "dense":
        return array.T
    if layout == "in_heads":  # (D, H, K) -> Linear's (H * K, D)
        return array.reshape(array.shape[0], -1).T
    if layout == "out_heads":  # (H, K, D) -> Linear's (D, H * K)
        return array.reshape(-1, array.shape[-1]).T
    if layout == "heads_bias":
        return array.reshape(-1)
    return array


def hf_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The shape Hugging Face stores one of our (unstacked) parameters of ``shape`` in."""
    return to_hf(np.broadcast_to(np.float32(0), shape), layout).shape


def params_from_table(
    hf: Mapping[str, np.ndarray],
    table: list[Row],
    shapes: Mapping,
    problems: list[str],
    dtype: Any = None,
) -> dict:
    """A pure parameter dict from the table's tensors of ``hf`` (cast to ``dtype`` when given), layers stacked.

    ``shapes`` is the model's parameter tree (shape structs); ``problems`` the caller's own findings (missing and
    unexpected tensors), to which every misshaped tensor is added; any problem raises one UserError listing all.
    """
    layers: dict[Path_, dict[int, np.ndarray]] = {}
    params: dict = {}
    for path, index, name, layout in table:
        if name not in hf:
            continue
        ours = tuple(get_path(shapes, path).shape[0 if index is None else 1 :])
        want = hf_shape(ours, layout)
        if tuple(np.shape(hf[name])) != want:
            problems.append(f"tensor {name} has shape {tuple(np.shape(hf[name]))}; Hugging Face's is {want}")
            continue
        value = to_ours(np.asarray(hf[name]), layout, ours)
        value = value if dtype is None else value.astype(dtype)
        if index is None:
            set_path(params, path, value)
        else:
            layers.setdefault(path, {})[index] = value
    if problems:
        raise UserError("checkpoint does not match the config:\n  " + "\n  ".join(problems))
    for path, by_index in layers.items():
        set_path(params, path, np.stack([by_index[i] for i in sorted(by_index)]))
    return params


def check_params(params: Mapping, table: list[Row], shapes: Mapping, head: str) -> None:
    """One UserError listing every parameter of the table that ``params`` lacks or holds in another shape than
    ``shapes``, and every parameter the table does not have."""
    problems = []
    for path in dict.fromkeys(path for path, _, _, _ in table):
        try:
            shape = tuple(np.shape(get_path(params, path)))
        except (KeyError, TypeError):
            problems.append(f"missing parameter {'/'.join(map(str, path))}")
            continue
        want = get_path(shapes, path).shape
        if shape != want:
            problems.append(f"parameter {'/'.join(map(str, path))} has shape {shape}; the config's is {want}")
    known = {path for path, _, _, _ in table}
    problems += [f"unexpected parameter {'/'.join(map(str, path))}" for path in sorted(set(leaf_paths(params)) - known)]
    if problems:
        raise UserError(f"parameters do not match the config and the {head} head:\n  " + "\n  ".join(problems))


def tensors_from_table(params: Mapping, table: list[Row], dtype: Any = None) -> dict[str, np.ndarray]:
    """A flat Hugging Face state dict (numpy, cast to ``dtype`` when given) for our parameters."""
    out = {}
    for path, index, name, layout in table:
        array = np.asarray(get_path(params, path), dtype)
        out[name] = np.ascontiguousarray(to_hf(array if index is None else array[index], layout))
    return out
