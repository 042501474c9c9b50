"""Hugging Face GPT-2 checkpoints <-> our parameters, both ways, for the LM and the sequence-classification head.

One table of rows (our path, layer index, Hugging Face name, its shape there, layout) drives import and export.
Shapes are checked in Hugging Face's layout before any reshape, and every mismatch is listed in one message.
Checkpoints of a bare ``GPT2Model`` (names without ``transformer.``, as the original ``gpt2`` files) load too; the
causal-mask buffers old files carry (``attn.bias``, ``attn.masked_bias``) are ignored, as transformers ignores them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from t5x_tl.errors import UserError
from t5x_tl.models.gpt2.config import GPT2Config
from t5x_tl.models.hf_io import load_config, read_tensors, write_directory

HEADS = ("lm", "classification")
ARCHITECTURES = {"lm": "GPT2LMHeadModel", "classification": "GPT2ForSequenceClassification"}
HF_DEFAULT_NUM_LABELS = 2  # what transformers assumes when config.json has no id2label
PREFIX = "transformer."
_BUFFER = re.compile(r"(^|\.)h\.\d+\.(attn|crossattention)\.(bias|masked_bias)$")

Row = tuple[tuple[str, ...], int | None, str, tuple[int, ...], str]  # ours, layer, HF name, HF shape, layout


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise UserError(f"unknown GPT-2 head {head!r}; choose one of {HEADS}")


def _layer_rows(cfg: GPT2Config) -> list[tuple[tuple[str, ...], str, tuple[int, ...], str]]:
    d, f = cfg.n_embd, cfg.inner_dim
    return [
        (("attention_norm", "scale"), "ln_1.weight", (d,), "reshape"),
        (("attention_norm", "bias"), "ln_1.bias", (d,), "reshape"),
        (("attention", "qkv_kernel"), "attn.c_attn.weight", (d, 3 * d), "reshape"),  # Conv1D: [in, out]
        (("attention", "qkv_bias"), "attn.c_attn.bias", (3 * d,), "reshape"),
        (("attention", "out_kernel"), "attn.c_proj.weight", (d, d), "reshape"),
        (("attention", "out_bias"), "attn.c_proj.bias", (d,), "reshape"),
        (("mlp_norm", "scale"), "ln_2.weight", (d,), "reshape"),
        (("mlp_norm", "bias"), "ln_2.bias", (d,), "reshape"),
        (("mlp", "wi"), "mlp.c_fc.weight", (d, f), "reshape"),
        (("mlp", "wi_bias"), "mlp.c_fc.bias", (f,), "reshape"),
        (("mlp", "wo"), "mlp.c_proj.weight", (f, d), "reshape"),
        (("mlp", "wo_bias"), "mlp.c_proj.bias", (d,), "reshape"),
    ]


def name_table(cfg: GPT2Config, head: str = "lm", num_labels: int = HF_DEFAULT_NUM_LABELS) -> list[Row]:
    """Every parameter of a ``head`` model: our path, layer index, Hugging Face name and shape, layout."""
    _check_head(head)
    d = cfg.n_embd
    rows: list[Row] = [
        (("token_embedding",), None, f"{PREFIX}wte.weight", (cfg.vocab_size, d), "reshape"),
        (("position_embedding",), None, f"{PREFIX}wpe.weight", (cfg.n_positions, d), "reshape"),
    ]
    rows += [
        (("layers", "stacked", *ours), i, f"{PREFIX}h.{i}.{hf}", shape, layout)
        for i in range(cfg.n_layer)
        for ours, hf, shape, layout in _layer_rows(cfg)
    ]
    rows += [
        (("final_norm", "scale"), None, f"{PREFIX}ln_f.weight", (d,), "reshape"),
        (("final_norm", "bias"), None, f"{PREFIX}ln_f.bias", (d,), "reshape"),
    ]
    if head == "classification":
        rows.append((("score",), None, "score.weight", (num_labels, d), "transpose"))  # torch Linear: [out, in]
    elif not cfg.tie_word_embeddings:
        rows.append((("lm_head",), None, "lm_head.weight", (cfg.vocab_size, d), "transpose"))
    return rows


def _normalised(hf: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Without mask buffers, and with ``transformer.`` before a bare GPT2Model's names."""
    tensors = {name: array for name, array in hf.items() if not _BUFFER.search(name)}
    if any(name.startswith(PREFIX) for name in tensors):
        return tensors
    return {name if name in ("lm_head.weight", "score.weight") else PREFIX + name: a for name, a in tensors.items()}


def params_from_hf(
    hf: Mapping[str, np.ndarray], cfg: GPT2Config, head: str = "lm", num_labels: int = HF_DEFAULT_NUM_LABELS
) -> dict:
    """A pure parameter dict for a ``head`` model; raises one UserError listing every missing, unexpected or
    misshaped tensor. A tied model ignores an ``lm_head.weight`` equal to the token embedding."""
    tensors = _normalised(hf)
    table = name_table(cfg, head, num_labels)
    problems = []
    if head == "lm" and cfg.tie_word_embeddings and "lm_head.weight" in tensors:
        if _distinct_head(tensors):
            problems.append(
                "tensor lm_head.weight differs from transformer.wte.weight, but the config ties them; "
                "load_hf_directory unties such a head, as transformers does"
            )
        del tensors["lm_head.weight"]
    expected = {row[2] for row in table}
    problems += [f"missing tensor {name}" for name in sorted(expected - set(tensors))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(tensors) - expected)]
    flat: dict[tuple[str, ...], Any] = {}
    layers: dict[tuple[str, ...], dict[int, np.ndarray]] = {}
    for ours, index, hf_name, hf_shape, layout in table:
        if hf_name not in tensors:
            continue
        array = np.asarray(tensors[hf_name])
        if array.shape != hf_shape:
            problems.append(f"tensor {hf_name} has shape {array.shape}; Hugging Face's is {hf_shape}")
            continue
        value = array.T if layout == "transpose" else array.reshape(_our_shape(ours, cfg, hf_shape))
        if index is None:
            flat[ours] = value
        else:
            layers.setdefault(ours, {})[index] = value
    if problems:
        raise UserError("checkpoint does not match the GPT-2 config:\n  " + "\n  ".join(problems))
    flat.update({ours: np.stack([by_index[i] for i in range(cfg.n_layer)]) for ours, by_index in layers.items()})
    return traverse_util.unflatten_dict(flat)


def _our_shape(ours: tuple[str, ...], cfg: GPT2Config, hf_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The fused attention tensors split into heads; every other tensor keeps Hugging Face's shape."""
    heads = (cfg.n_head, cfg.head_dim)
    return {
        "qkv_kernel": (cfg.n_embd, 3, *heads),
        "qkv_bias": (3, *heads),
        "out_kernel": (*heads, cfg.n_embd),
    }.get(ours[-1], hf_shape)


def params_to_hf(params: Mapping, cfg: GPT2Config, head: str = "lm") -> dict[str, np.ndarray]:
    """A flat Hugging Face state dict (numpy float32); raises one UserError listing every missing, unexpected or
    misshaped parameter. A classifier's label count is its ``score``'s."""
    flat = traverse_util.flatten_dict(dict(params))
    num_labels = np.shape(flat[("score",)])[-1] if ("score",) in flat else 0
    table = name_table(cfg, head, num_labels)
    problems = [f"unexpected parameter {'/'.join(path)}" for path in sorted(set(flat) - {row[0] for row in table})]
    out = {}
    for ours, index, hf_name, hf_shape, layout in table:
        expected = hf_shape[::-1] if layout == "transpose" else _our_shape(ours, cfg, hf_shape)
        expected = expected if index is None else (cfg.n_layer, *expected)
        if ours not in flat:
            problems.append(f"missing parameter {'/'.join(ours)}")
            continue
        array = np.asarray(flat[ours], np.float32)
        if array.shape != expected:
            problems.append(f"parameter {'/'.join(ours)} has shape {array.shape}; the config's is {expected}")
            continue
        array = array if index is None else array[index]
        out[hf_name] = np.ascontiguousarray(array.T if layout == "transpose" else array.reshape(hf_shape))
    if problems:
        problems = list(dict.fromkeys(problems))  # a stacked parameter is one problem, not one per layer
        raise UserError("parameters do not match the GPT-2 config:\n  " + "\n  ".join(problems))
    return out


def load_hf_directory(directory: Path, head: str = "lm", num_labels: int | None = None) -> tuple[GPT2Config, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params.

    ``head="classification"`` reads ``score.weight`` too; ``num_labels``, when given, must be the checkpoint's
    label count (``id2label`` in config.json, else transformers' default of 2).
    """
    _check_head(head)
    cfg, hf_config = load_config(directory, GPT2Config.from_hf, "GPT-2")
    labels = len(hf_config.get("id2label") or {}) or HF_DEFAULT_NUM_LABELS
    if head == "classification" and num_labels is not None and num_labels != labels:
        raise UserError(f"{directory} holds a classifier of {labels} labels, not the {num_labels} asked for")
    tensors = _normalised(read_tensors(directory))
    if head == "lm" and cfg.tie_word_embeddings and _distinct_head(tensors):
        cfg = dataclasses.replace(cfg, tie_word_embeddings=False)  # transformers keeps such a head, untied
    return cfg, params_from_hf(tensors, cfg, head, labels)


def _distinct_head(tensors: Mapping[str, np.ndarray]) -> bool:
    head, wte = tensors.get("lm_head.weight"), tensors.get(f"{PREFIX}wte.weight")
    return head is not None and wte is not None and not np.array_equal(head, wte)


def save_hf_directory(directory: Path, cfg: GPT2Config, params: Mapping, head: str = "lm") -> None:
    """Writes ``config.json`` and ``model.safetensors`` that ``GPT2LMHeadModel`` (``head="lm"``) or
    ``GPT2ForSequenceClassification`` (``"classification"``) ``from_pretrained`` loads; nothing on an error."""
    tensors = params_to_hf(params, cfg, head)  # raises before anything is written
    config = {"architectures": [ARCHITECTURES[head]], **cfg.to_hf()}
    if head == "classification":
        labels = range(tensors["score.weight"].shape[0])
        config["id2label"] = {str(i): f"LABEL_{i}" for i in labels}
        config["label2id"] = {f"LABEL_{i}": i for i in labels}
    write_directory(directory, config, tensors)
