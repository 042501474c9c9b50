"""Hugging Face DeBERTa-v2/v3 checkpoints <-> t5x_tl parameters, in both directions.

As for T5 and BERT, one table of ``(our path, layer index, Hugging Face name, layout)`` rows, built from the config
and the head, drives import and export through :mod:`t5x_tl.models.hf_io`; shapes are checked in Hugging Face's
layout before any reshape, and every mismatch is reported in one error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.deberta.config import HEADS, DebertaV2Config
from t5x_tl.models.deberta.model import DebertaV2
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
_LEGACY_MLM = "cls.predictions"
_MLM = "lm_predictions.lm_head"
# Tensors transformers' classes skip without a word: the persisted position-id buffer of older checkpoints and the
# replaced-token-detection head DeBERTa-v3's pretraining checkpoints carry.
_SKIPPED = re.compile(r"deberta\.embeddings\.position_ids|mask_predictions\..*")


def _dense_rows(ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    return [((*ours, "kernel"), f"{hf}.weight", "dense"), ((*ours, "bias"), f"{hf}.bias", "copy")]


def _norm_rows(ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    return [((*ours, "scale"), f"{hf}.weight", "copy"), ((*ours, "bias"), f"{hf}.bias", "copy")]


def _projection_rows(ours: str, hf: str) -> list[tuple[Path_, str, str]]:
    return [((ours, "kernel"), f"{hf}.weight", "in_heads"), ((ours, "bias"), f"{hf}.bias", "heads_bias")]


def _layer_rows(cfg: DebertaV2Config, prefix: str) -> list[tuple[Path_, str, str]]:
    names = {"query": "query_proj", "key": "key_proj", "value": "value_proj"}
    terms = cfg.position_terms if cfg.relative_attention and not cfg.share_att_key else ()
    names |= {"position_key": "pos_key_proj"} if "c2p" in terms else {}
    names |= {"position_query": "pos_query_proj"} if "p2c" in terms else {}
    attention = [row for ours, hf in names.items() for row in _projection_rows(ours, f"self.{hf}")]
    attention += [(("out",), "output.dense.weight", "out_heads"), (("out_bias",), "output.dense.bias", "copy")]
    rows = [(("attention", *ours), f"attention.{hf}", layout) for ours, hf, layout in attention]
    rows += _norm_rows(("attention_norm",), "attention.output.LayerNorm")
    rows += _dense_rows(("mlp_in",), "intermediate.dense") + _dense_rows(("mlp_out",), "output.dense")
    rows += _norm_rows(("mlp_norm",), "output.LayerNorm")
    return [(ours, f"{prefix}.{hf}", layout) for ours, hf, layout in rows]


def _head_rows(cfg: DebertaV2Config, head: str) -> list[tuple[Path_, str, str]]:
    if head == "sequence_classification":
        return _dense_rows(("classifier", "pooler"), "pooler.dense") + _dense_rows(("classifier", "out"), "classifier")
    hf = _LEGACY_MLM if cfg.legacy_mlm_head else _MLM
    transform = f"{hf}.transform" if cfg.legacy_mlm_head else hf
    rows = _dense_rows(("mlm_head", "dense"), f"{transform}.dense")
    rows += _norm_rows(("mlm_head", "norm"), f"{transform}.LayerNorm")
    return [*rows, (("mlm_head", "bias"), f"{hf}.bias", "copy")]


def name_table(cfg: DebertaV2Config, head: str = "masked_lm") -> list[Row]:
    """Every parameter of a ``DebertaV2(cfg, head=head)``: our path, layer index, Hugging Face name and layout."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
    embeddings: list[tuple[Path_, str, str]] = [(("word",), "word_embeddings.weight", "copy")]
    if cfg.position_biased_input:
        embeddings.append((("position",), "position_embeddings.weight", "copy"))
    if cfg.type_vocab_size:
        embeddings.append((("token_type",), "token_type_embeddings.weight", "copy"))
    if cfg.embed_dim != cfg.hidden_size:
        embeddings.append((("projection",), "embed_proj.weight", "dense"))
    embeddings += _norm_rows(("norm",), "LayerNorm")
    rows: list[Row] = [(("embeddings", *ours), None, f"deberta.embeddings.{hf}", lay) for ours, hf, lay in embeddings]
    if cfg.relative_attention:
        rows.append((("relative", "table"), None, "deberta.encoder.rel_embeddings.weight", "copy"))
    if cfg.norm_rel_ebd == "layer_norm":
        norm_rows = _norm_rows(("relative", "norm"), "deberta.encoder.LayerNorm")
        rows += [(ours, None, hf, layout) for ours, hf, layout in norm_rows]
    rows += [
        (("layers", "stacked", *ours), i, hf, layout)
        for i in range(cfg.num_layers)
        for ours, hf, layout in _layer_rows(cfg, f"deberta.encoder.layer.{i}")
    ]
    return rows + [(ours, None, hf, layout) for ours, hf, layout in _head_rows(cfg, head)]


def _ignorable(cfg: DebertaV2Config, head: str) -> set[str]:
    """Names transformers' class for ``head`` reads as aliases of others or ignores (besides :data:`_SKIPPED`)."""
    names = set()
    if head == "masked_lm" and cfg.legacy_mlm_head:
        names |= {f"{_LEGACY_MLM}.decoder.weight", f"{_LEGACY_MLM}.decoder.bias"}  # the word embedding, the bias
    if not cfg.position_biased_input:
        names.add("deberta.embeddings.position_embeddings.weight")  # _keys_to_ignore_on_load_unexpected
    return names


def parameter_shapes(cfg: DebertaV2Config, head: str) -> dict:
    """The pure parameter tree of ``DebertaV2(cfg, head=head)`` as shape structs (nothing allocated)."""
    model = nnx.eval_shape(lambda: DebertaV2(cfg, head=head, rngs=nnx.Rngs(0)))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def params_from_hf(hf: Mapping[str, np.ndarray], cfg: DebertaV2Config, head: str = "masked_lm") -> dict:
    """A pure parameter dict for ``DebertaV2(cfg, head=head)``; one UserError lists every missing, extra or
    misshaped tensor. Tensors transformers' class would skip are skipped and logged."""
    table = name_table(cfg, head)
    bias, alias = f"{_LEGACY_MLM}.bias", f"{_LEGACY_MLM}.decoder.bias"
    if head == "masked_lm" and cfg.legacy_mlm_head and bias not in hf and alias in hf:
        hf = {**hf, bias: hf[alias]}  # a checkpoint that kept only the decoder's copy of the tied bias
    expected = {name for _, _, name, _ in table}
    ignorable = _ignorable(cfg, head)
    skipped = sorted(name for name in set(hf) - expected if name in ignorable or _SKIPPED.fullmatch(name))
    if skipped:
        log.info("Hugging Face import: skipped %s", ", ".join(skipped))
    problems = [f"missing tensor {name}" for name in sorted(expected - set(hf))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(hf) - expected - set(skipped))]
    return params_from_table(hf, table, parameter_shapes(cfg, head), problems, cfg.weight_dtype)


def params_to_hf(params: Mapping, cfg: DebertaV2Config, head: str = "masked_lm") -> dict[str, np.ndarray]:
    """A flat Hugging Face state dict (float32 numpy) for our parameters; one UserError lists every missing or
    misshaped parameter and every one the config and head do not have."""
    table = name_table(cfg, head)
    check_params(params, table, parameter_shapes(cfg, head), head)
    return tensors_from_table(params, table, np.float32)


def load_hf_directory(
    directory: Path, head: str = "masked_lm", num_labels: int | None = None
) -> tuple[DebertaV2Config, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params for a
    ``DebertaV2(cfg, head=head)``; ``num_labels``, when given, must be the checkpoint's classification label count."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
    cfg, _ = load_config(directory, DebertaV2Config.from_hf)
    if head == "sequence_classification":
        check_label_count(directory, num_labels, cfg.num_labels)
    return cfg, params_from_hf(read_tensors(directory), cfg, head)


def save_hf_directory(directory: Path, cfg: DebertaV2Config, params: Mapping, head: str = "masked_lm") -> None:
    """Writes ``config.json`` and ``model.safetensors`` that transformers' ``DebertaV2For<Head>.from_pretrained``
    loads; parameters that do not match ``cfg`` and ``head`` are refused before anything is written."""
    config = cfg.to_hf(head)
    write_directory(directory, config, params_to_hf(params, cfg, head))
