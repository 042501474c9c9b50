"""Hugging Face BERT / RoBERTa checkpoints <-> t5x_tl parameters, in both directions.

As for T5 (:mod:`t5x_tl.models.hf_convert`), one table of ``(our path, layer index, Hugging Face name, layout)``
rows, built from the config and the head, drives import and export, so the two cannot drift apart; shapes are
checked in Hugging Face's layout before any reshape, and every mismatch is reported in one error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.bert.config import HEADS, BertConfig
from t5x_tl.models.bert.model import Bert
from t5x_tl.models.hf_convert import Path_, Row, _get, _read_tensors, _set

log = logging.getLogger("t5x_tl")
_MLM_HEAD = {"bert": "cls.predictions", "roberta": "lm_head"}  # the masked-LM head's name in each family


def _layer_rows(prefix: str) -> list[tuple[Path_, str, str]]:
    attention = [((n,), f"attention.self.{n}.weight", "in_heads") for n in ("query", "key", "value")]
    attention += [((f"{n}_bias",), f"attention.self.{n}.bias", "heads_bias") for n in ("query", "key", "value")]
    attention += [(("out",), "attention.output.dense.weight", "out_heads")]
    attention += [(("out_bias",), "attention.output.dense.bias", "copy")]
    rows = [(("attention", *ours), hf, layout) for ours, hf, layout in attention]
    rows += _norm_rows(("attention_norm",), "attention.output.LayerNorm")
    rows += _dense_rows(("mlp_in",), "intermediate.dense") + _dense_rows(("mlp_out",), "output.dense")
    rows += _norm_rows(("mlp_norm",), "output.LayerNorm")
    return [(ours, f"{prefix}.{hf}", layout) for ours, hf, layout in rows]


def _dense_rows(ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    return [((*ours, "kernel"), f"{hf}.weight", "dense"), ((*ours, "bias"), f"{hf}.bias", "copy")]


def _norm_rows(ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    return [((*ours, "scale"), f"{hf}.weight", "copy"), ((*ours, "bias"), f"{hf}.bias", "copy")]


def _head_rows(cfg: BertConfig, head: str) -> list[tuple[Path_, str, str]]:
    roberta = cfg.model_type == "roberta"
    if head == "masked_lm":
        hf = _MLM_HEAD[cfg.model_type]
        rows = _dense_rows(("mlm_head", "dense"), f"{hf}.dense" if roberta else f"{hf}.transform.dense")
        rows += _norm_rows(("mlm_head", "norm"), f"{hf}.layer_norm" if roberta else f"{hf}.transform.LayerNorm")
        return [*rows, (("mlm_head", "bias"), f"{hf}.bias", "copy")]
    dense, out = ("classifier.dense", "classifier.out_proj") if roberta else ("bert.pooler.dense", "classifier")
    return _dense_rows(("classifier", "dense"), dense) + _dense_rows(("classifier", "out"), out)


def name_table(cfg: BertConfig, head: str = "masked_lm") -> list[Row]:
    """Every parameter of a ``Bert(cfg, head=head)``: our path, layer index, Hugging Face name and layout."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
    prefix = cfg.model_type
    embeddings = [(("word",), "word_embeddings.weight", "copy"), (("position",), "position_embeddings.weight", "copy")]
    embeddings += [(("token_type",), "token_type_embeddings.weight", "copy")]
    embeddings += _norm_rows(("norm",), "LayerNorm")
    rows: list[Row] = [(("embeddings", *ours), None, f"{prefix}.embeddings.{hf}", lay) for ours, hf, lay in embeddings]
    rows += [
        (("layers", "stacked", *ours), i, hf, layout)
        for i in range(cfg.num_layers)
        for ours, hf, layout in _layer_rows(f"{prefix}.encoder.layer.{i}")
    ]
    return rows + [(ours, None, hf, layout) for ours, hf, layout in _head_rows(cfg, head)]


def _ignorable(cfg: BertConfig, head: str) -> set[str]:
    """Tensors transformers' class for ``head`` skips: tied aliases, persisted buffers, other pretraining heads."""
    prefix = cfg.model_type
    names = {f"{prefix}.embeddings.position_ids", f"{prefix}.embeddings.token_type_ids"}
    if head == "masked_lm":
        decoder = f"{_MLM_HEAD[prefix]}.decoder"
        names |= {f"{decoder}.weight", f"{decoder}.bias"}  # tied to the word embedding and the head's bias
        names |= {f"{prefix}.pooler.dense.weight", f"{prefix}.pooler.dense.bias"}  # BertForPreTraining's
        names |= {"cls.seq_relationship.weight", "cls.seq_relationship.bias"}
    return names


def _to_ours(array: np.ndarray, layout: str, cfg: BertConfig) -> np.ndarray:
    if layout == "dense":  # torch Linear stores (out, in)
        return array.T
    if layout == "in_heads":
        return array.T.reshape(cfg.hidden_size, cfg.num_heads, cfg.head_dim)
    if layout == "out_heads":
        return array.T.reshape(cfg.num_heads, cfg.head_dim, cfg.hidden_size)
    if layout == "heads_bias":
        return array.reshape(cfg.num_heads, cfg.head_dim)
    return array


def _to_hf(array: np.ndarray, layout: str, cfg: BertConfig) -> np.ndarray:
    if layout == "dense":
        return array.T
    if layout in ("in_heads", "out_heads"):  # (D, H, K) or (H, K, D) -> Linear's (out, in), H * K = D
        return array.reshape(cfg.hidden_size, cfg.hidden_size).T
    if layout == "heads_bias":
        return array.reshape(cfg.hidden_size)
    return array


def _hf_shape(shape: tuple[int, ...], layout: str, cfg: BertConfig) -> tuple[int, ...]:
    return _to_hf(np.broadcast_to(np.float32(0), shape), layout, cfg).shape


def parameter_shapes(cfg: BertConfig, head: str) -> dict:
    """The pure parameter tree of ``Bert(cfg, head=head)`` as shape structs (nothing allocated)."""
    model = nnx.eval_shape(lambda: Bert(cfg, head=head, rngs=nnx.Rngs(0)))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def params_from_hf(hf: Mapping[str, np.ndarray], cfg: BertConfig, head: str = "masked_lm") -> dict:
    """A pure parameter dict for ``Bert(cfg, head=head)``; one UserError lists every missing, extra or misshaped
    tensor. Tensors transformers' class would skip (see :func:`_ignorable`) are skipped and logged."""
    table = name_table(cfg, head)
    bias, alias = f"{_MLM_HEAD[cfg.model_type]}.bias", f"{_MLM_HEAD[cfg.model_type]}.decoder.bias"
    if head == "masked_lm" and bias not in hf and alias in hf:
        hf = {**hf, bias: hf[alias]}  # older checkpoints keep only the decoder's copy of the head's bias
    expected = {name for _, _, name, _ in table}
    skipped = sorted(set(hf) & (_ignorable(cfg, head) - expected))
    if skipped:
        log.info("Hugging Face import: skipped %s", ", ".join(skipped))
    problems = [f"missing tensor {name}" for name in sorted(expected - set(hf))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(hf) - expected - set(skipped))]
    shapes = parameter_shapes(cfg, head)
    layers: dict[Path_, dict[int, np.ndarray]] = {}
    params: dict = {}
    for path, index, name, layout in table:
        if name not in hf:
            continue
        want = _hf_shape(_get(shapes, path).shape[0 if index is None else 1 :], layout, cfg)
        if tuple(np.shape(hf[name])) != want:
            problems.append(f"tensor {name} has shape {tuple(np.shape(hf[name]))}; Hugging Face's is {want}")
            continue
        value = _to_ours(np.asarray(hf[name]), layout, cfg).astype(cfg.weight_dtype)
        if index is None:
            _set(params, path, value)
        else:
            layers.setdefault(path, {})[index] = value
    if problems:
        raise UserError("checkpoint does not match the config:\n  " + "\n  ".join(problems))
    for path, by_index in layers.items():
        _set(params, path, np.stack([by_index[i] for i in range(cfg.num_layers)]))
    return params


def params_to_hf(params: Mapping, cfg: BertConfig, head: str = "masked_lm") -> dict[str, np.ndarray]:
    """A flat Hugging Face state dict (float32 numpy) for our parameters; one UserError lists every missing or
    misshaped parameter and every one the head does not have."""
    table = name_table(cfg, head)
    shapes = parameter_shapes(cfg, head)
    problems = []
    for path, index, _, _ in table:
        if index in (None, 0):
            try:
                shape = tuple(np.shape(_get(params, path)))
            except (KeyError, TypeError):
                problems.append(f"missing parameter {'/'.join(path)}")
                continue
            want = _get(shapes, path).shape
            if shape != want:
                problems.append(f"parameter {'/'.join(path)} has shape {shape}; the config's is {want}")
    known = {path for path, _, _, _ in table}
    problems += [f"unexpected parameter {'/'.join(path)}" for path in sorted(set(_paths(params)) - known)]
    if problems:
        raise UserError(f"parameters do not match the config and the {head} head:\n  " + "\n  ".join(problems))
    out = {}
    for path, index, name, layout in table:
        array = np.asarray(_get(params, path), np.float32)
        out[name] = np.ascontiguousarray(_to_hf(array if index is None else array[index], layout, cfg))
    return out


def _paths(tree: Mapping, prefix: Path_ = ()) -> list[Path_]:
    out: list[Path_] = []
    for key, value in tree.items():
        out += _paths(value, (*prefix, key)) if isinstance(value, Mapping) else [(*prefix, key)]
    return out


def _read_config(directory: Path) -> dict:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise UserError(f"{directory} has no config.json; point at a Hugging Face model directory")
    try:
        hf_config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path} is not valid JSON ({error}); restore the model's config.json") from None
    if not isinstance(hf_config, dict):
        raise UserError(f"{config_path} holds a JSON {type(hf_config).__name__}, not a config object")
    return hf_config


def load_hf_directory(
    directory: Path, head: str = "masked_lm", num_labels: int | None = None
) -> tuple[BertConfig, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params for a
    ``Bert(cfg, head=head)``; ``num_labels``, when given, must be the checkpoint's classification label count."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
    directory = Path(directory)
    try:
        cfg = BertConfig.from_hf(_read_config(directory))
    except UserError as error:
        raise UserError(f"{directory / 'config.json'}: {error}") from None
    if head == "sequence_classification" and num_labels is not None and num_labels != cfg.num_labels:
        raise UserError(
            f"{directory} holds a classification head of {cfg.num_labels} labels, not the {num_labels} asked for; "
            "load it with that count, or load head='masked_lm' and fine-tune a fresh head"
        )
    return cfg, params_from_hf(_read_tensors(directory), cfg, head)


def save_hf_directory(directory: Path, cfg: BertConfig, params: Mapping, head: str = "masked_lm") -> None:
    """Writes ``config.json`` and ``model.safetensors`` that transformers' ``...For<Head>.from_pretrained`` loads;
    parameters that do not match ``cfg`` and ``head`` are refused before anything is written."""
    from safetensors.numpy import save_file

    config = cfg.to_hf(head)
    tensors = params_to_hf(params, cfg, head)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
