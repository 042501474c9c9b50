"""Hugging Face BERT / RoBERTa checkpoints <-> t5x_tl parameters, in both directions.

As for T5 (:mod:`t5x_tl.models.hf_convert`), one table of ``(our path, layer index, Hugging Face name, layout)``
rows, built from the config and the head, drives import and export through :mod:`t5x_tl.models.hf_io`, so the two
cannot drift apart; shapes are checked in Hugging Face's layout before any reshape, and every mismatch is reported
in one error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.bert.config import HEADS, BertConfig
from t5x_tl.models.bert.model import Bert
from t5x_tl.models.hf_io import (
    Path_,
    Row,
    check_label_count,
    check_params,
    load_config,
    params_from_table,
    read_tensors,
    tensors_from_table,
    write_directory,
)

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
    return params_from_table(hf, table, parameter_shapes(cfg, head), problems, cfg.weight_dtype)


def params_to_hf(params: Mapping, cfg: BertConfig, head: str = "masked_lm") -> dict[str, np.ndarray]:
    """A flat Hugging Face state dict (float32 numpy) for our parameters; one UserError lists every missing or
    misshaped parameter and every one the head does not have."""
    table = name_table(cfg, head)
    check_params(params, table, parameter_shapes(cfg, head), head)
    return tensors_from_table(params, table, np.float32)


def load_hf_directory(
    directory: Path, head: str = "masked_lm", num_labels: int | None = None
) -> tuple[BertConfig, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params for a
    ``Bert(cfg, head=head)``; ``num_labels``, when given, must be the checkpoint's classification label count."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
    cfg, _ = load_config(directory, BertConfig.from_hf)
    if head == "sequence_classification":
        check_label_count(directory, num_labels, cfg.num_labels)
    return cfg, params_from_hf(read_tensors(directory), cfg, head)


def save_hf_directory(directory: Path, cfg: BertConfig, params: Mapping, head: str = "masked_lm") -> None:
    """Writes ``config.json`` and ``model.safetensors`` that transformers' ``...For<Head>.from_pretrained`` loads;
    parameters that do not match ``cfg`` and ``head`` are refused before anything is written."""
    config = cfg.to_hf(head)
    write_directory(directory, config, params_to_hf(params, cfg, head))
