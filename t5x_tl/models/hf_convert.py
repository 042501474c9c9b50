"""Hugging Face T5 / mT5 / UMT5 checkpoints <-> t5x_tl parameters, in both directions.

One table of ``(our path, Hugging Face name, layout)`` rows, built from the config, drives both import and
export, so the two cannot drift apart. Works on flat ``{name: numpy array}`` dicts (a safetensors file or a
torch ``state_dict``), so neither torch nor transformers is needed here. Mismatches are reported all at once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config, check_int
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.hf_io import (
    Path_,
    Row,
    load_config,
    params_from_table,
    read_tensors,
    tensors_from_table,
    write_directory,
)
from t5x_tl.models.layers import ACTIVATIONS, HF_ACTIVATION_ALIASES, parse_feed_forward
from t5x_tl.models.t5 import EncoderDecoder

HF_MODEL_TYPES = ("t5", "mt5", "umt5")
# The size fields transformers' configs always write; a config without one of them is not a T5-family config.
HF_REQUIRED_FIELDS = ("vocab_size", "d_model", "d_ff", "num_heads", "d_kv", "num_layers")
# transformers' class names of the three families: T5ForConditionalGeneration, MT5EncoderModel, UMT5Model, ...
_ARCHITECTURE = re.compile(r"(UMT5|MT5|T5)(For[A-Za-z]+|EncoderModel|Model)$")
# A tensor old T5 checkpoints carry and transformers ignores (cross-attention has no relative bias).
HF_IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
log = logging.getLogger("t5x_tl")

# The T5 classes converted (``T5`` or ``UMT5`` + head): the whole model, or its encoder (Hugging Face has no
# T5-family decoder-only model).
FULL_MODEL, ENCODER = "ForConditionalGeneration", "EncoderModel"


def _has_decoder(head: str) -> bool:
    if head not in (FULL_MODEL, ENCODER):
        raise ValueError(f"unknown T5 head {head!r}; choose {FULL_MODEL!r} or {ENCODER!r}")
    return head == FULL_MODEL


def _attention_rows(ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    rows = [((*ours, name), f"{hf}.{letter}.weight", "in_heads") for name, letter in (("query", "q"), ("key", "k"))]
    rows.append(((*ours, "value"), f"{hf}.v.weight", "in_heads"))
    rows.append(((*ours, "out"), f"{hf}.o.weight", "out_heads"))
    return rows


def _mlp_rows(cfg: T5Config, ours: Path_, hf: str) -> list[tuple[Path_, str, str]]:
    gated, _ = parse_feed_forward(cfg.feed_forward_proj)
    names = ("wi_0", "wi_1", "wo") if gated else ("wi", "wo")
    return [((*ours, name), f"{hf}.{name}.weight", "dense") for name in names]


def _encoder_layer_rows(cfg: T5Config) -> list[tuple[Path_, str, str]]:
    rows = [(("attention_norm", "scale"), "0.layer_norm.weight", "copy")]
    rows += _attention_rows(("attention",), "0.SelfAttention")
    rows.append((("mlp_norm", "scale"), "1.layer_norm.weight", "copy"))
    return rows + _mlp_rows(cfg, ("mlp",), "1.DenseReluDense")


def _decoder_layer_rows(cfg: T5Config) -> list[tuple[Path_, str, str]]:
    rows = [(("self_attention_norm", "scale"), "0.layer_norm.weight", "copy")]
    rows += _attention_rows(("self_attention",), "0.SelfAttention")
    rows.append((("cross_attention_norm", "scale"), "1.layer_norm.weight", "copy"))
    rows += _attention_rows(("cross_attention",), "1.EncDecAttention")
    rows.append((("mlp_norm", "scale"), "2.layer_norm.weight", "copy"))
    return rows + _mlp_rows(cfg, ("mlp",), "2.DenseReluDense")


def _stack_rows(cfg: T5Config, stack: str, num_layers: int, layer_rows: list[tuple[Path_, str, str]]) -> list[Row]:
    rows: list[Row] = [
        ((stack, "layers", "stacked", *ours), i, f"{stack}.block.{i}.layer.{hf}", layout)
        for i in range(num_layers)
        for ours, hf, layout in layer_rows
    ]
    bias = f"{stack}.block.{{i}}.layer.0.SelfAttention.relative_attention_bias.weight"
    if cfg.per_layer_relative_bias:
        path = (stack, "relative_bias", "tables", "stacked", "embedding")
        rows += [(path, i, bias.format(i=i), "copy") for i in range(num_layers)]
    else:
        rows.append(((stack, "relative_bias", "tables", "embedding"), None, bias.format(i=0), "copy"))
    rows.append(((stack, "final_norm", "scale"), None, f"{stack}.final_layer_norm.weight", "copy"))
    return rows


def name_table(cfg: T5Config, head: str = FULL_MODEL) -> list[Row]:
    """Every parameter of a ``head`` model: our path, layer index, its Hugging Face name, and the layouts' difference.

    An encoder-only model is the encoder of a T5 checkpoint (``T5EncoderModel``), without an output layer.
    """
    rows: list[Row] = [(("token_embed", "embedding"), None, "shared.weight", "copy")]
    rows += _stack_rows(cfg, "encoder", cfg.num_encoder_layers, _encoder_layer_rows(cfg))
    if _has_decoder(head):
        rows += _stack_rows(cfg, "decoder", cfg.num_decoder_layers, _decoder_layer_rows(cfg))
        if not cfg.tie_word_embeddings:
            rows.append((("lm_head",), None, "lm_head.weight", "dense"))
    return rows


def _parameter_shapes(cfg: T5Config, head: str) -> dict:
    model_class = EncoderDecoder if _has_decoder(head) else functools.partial(EncoderOnly, token_head=False)
    model = nnx.eval_shape(lambda: model_class(cfg, rngs=nnx.Rngs(0)))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _distinct_head(hf: Mapping[str, np.ndarray]) -> bool:
    """Whether the checkpoint has an ``lm_head.weight`` other than its input embedding ``shared.weight``."""
    head, shared = hf.get("lm_head.weight"), hf.get("shared.weight")
    return head is not None and shared is not None and not np.array_equal(head, shared)


def params_from_hf(hf: Mapping[str, np.ndarray], cfg: T5Config, head: str = FULL_MODEL) -> dict:
    """A pure parameter dict for a ``head`` model; raises listing every missing, extra or misshaped tensor.

    Shapes are checked in Hugging Face's layout, before any reshape. For the encoder head (``T5EncoderModel``)
    the decoder and output tensors of a full T5 checkpoint are skipped (logged).
    """
    table = name_table(cfg, head)
    decoder = _has_decoder(head)
    problems: list[str] = []
    if decoder and "shared.weight" in hf:
        if not cfg.tie_word_embeddings and "lm_head.weight" not in hf:
            # transformers 5 ties lm_head to shared in every model it builds, and save_pretrained then writes no
            # lm_head.weight: from_pretrained reads the head from shared.weight, and so does this import.
            hf = {**hf, "lm_head.weight": hf["shared.weight"]}
        elif cfg.tie_word_embeddings and _distinct_head(hf):
            problems.append(
                "tensor lm_head.weight differs from shared.weight, but the config ties them (T5 1.0's scaled "
                "output); load the directory with load_hf_directory, which keeps such a head"
            )
    expected = {hf_name for _, _, hf_name, _ in table}
    ignorable = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", *HF_IGNORED}  # shared.weight's aliases
    if cfg.tie_word_embeddings or not decoder:
        ignorable.add("lm_head.weight")
    if not decoder:
        skipped = sorted(name for name in hf if name.startswith("decoder.") or name == "lm_head.weight")
        ignorable.update(skipped)
        if skipped:
            log.info("Encoder-only import: skipped %d decoder and output tensors of the checkpoint", len(skipped))
    problems += [f"missing tensor {name}" for name in sorted(expected - set(hf))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(hf) - expected - ignorable)]
    return params_from_table(hf, table, _parameter_shapes(cfg, head), problems)


def params_to_hf(params: Mapping, cfg: T5Config, head: str = FULL_MODEL) -> dict[str, np.ndarray]:
    """Flat Hugging Face state dict (numpy) for our parameters."""
    return tensors_from_table(params, name_table(cfg, head))


def config_from_hf(hf: Mapping[str, Any], **overrides: Any) -> T5Config:
    """Our config from a Hugging Face ``config.json`` dict (T5, mT5 or UMT5), read as transformers 5 reads it."""
    model_type = _model_type(hf)
    missing = [name for name in HF_REQUIRED_FIELDS if name not in hf]
    if missing:
        raise UserError(
            f"the config has no {', '.join(missing)}; a {model_type} config.json states {', '.join(HF_REQUIRED_FIELDS)}"
            " (re-save the model with transformers' save_pretrained)"
        )
    for name in HF_REQUIRED_FIELDS:
        check_int(name, hf[name], prefix="the config's ")
    default_proj = "relu" if model_type == "t5" else "gated-gelu"  # transformers' config defaults
    fields = dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["d_model"],
        d_ff=hf["d_ff"],
        num_heads=hf["num_heads"],
        d_kv=hf["d_kv"],
        num_encoder_layers=hf["num_layers"],
        num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
        dropout_rate=hf.get("dropout_rate", 0.1),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
        feed_forward_proj=_feed_forward_proj(hf.get("feed_forward_proj", default_proj)),
        tie_word_embeddings=_scales_outputs(hf, model_type),
        per_layer_relative_bias=model_type == "umt5",
    )
    return T5Config(**{**fields, **overrides})


def _model_type(hf: Mapping[str, Any]) -> str:
    """``model_type``, which picks transformers' class; without it, the family ``architectures`` names."""
    model_type = hf.get("model_type")
    if model_type is None:
        names = hf.get("architectures") or ()
        families = {match.group(1).lower() for name in names if (match := _ARCHITECTURE.match(str(name)))}
        if len(families) != 1:
            raise UserError(
                "the config has no model_type (nor architectures naming one T5 family); "
                f'add "model_type" ({", ".join(HF_MODEL_TYPES)}) to config.json'
            )
        (model_type,) = families
    if model_type not in HF_MODEL_TYPES:
        raise UserError(f"unsupported architecture model_type={model_type!r}; t5x_tl converts {HF_MODEL_TYPES}")
    return model_type


def _feed_forward_proj(spec: Any) -> str:
    """Our name for Hugging Face's ``feed_forward_proj``, which transformers reads as ``[gated-]<ACT2FN name>``."""
    parts = spec.split("-") if isinstance(spec, str) else []
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "gated"):
        ours = "-".join([*parts[:-1], HF_ACTIVATION_ALIASES.get(parts[-1], parts[-1])])
        try:
            parse_feed_forward(ours)
            return ours
        except ValueError:
            pass
    supported = sorted({*ACTIVATIONS, *HF_ACTIVATION_ALIASES})
    raise UserError(f"unsupported feed_forward_proj {spec!r}: t5x_tl implements [gated-]{{{', '.join(supported)}}}")


def _scales_outputs(hf: Mapping[str, Any], model_type: str) -> bool:
    """Whether transformers 5 multiplies the decoder output by d_model^-0.5 before the output layer (T5 1.0).

    ``MT5ForConditionalGeneration`` never does. T5 and UMT5 read ``scale_decoder_outputs``, which configs saved
    before transformers 5 lack: then only ``tie_word_embeddings: false`` turns the scaling off.
    """
    if model_type == "mt5":
        return False
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return hf.get("tie_word_embeddings") is not False


def config_to_hf(cfg: T5Config, head: str = FULL_MODEL) -> dict[str, Any]:
    """A ``config.json`` dict that transformers loads as the same architecture."""
    family = "UMT5" if cfg.per_layer_relative_bias else "T5"
    _has_decoder(head)  # refuses an unknown head
    return {
        "architectures": [family + head],
        "model_type": "umt5" if cfg.per_layer_relative_bias else "t5",
        "vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "d_ff": cfg.d_ff,
        "num_heads": cfg.num_heads,
        "d_kv": cfg.d_kv,
        "num_layers": cfg.num_encoder_layers,
        "num_decoder_layers": cfg.num_decoder_layers,
        "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
        "relative_attention_max_distance": cfg.relative_attention_max_distance,
        "dropout_rate": cfg.dropout_rate,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "feed_forward_proj": cfg.feed_forward_proj,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "is_encoder_decoder": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def load_hf_directory(directory: Path, head: str = FULL_MODEL) -> tuple[T5Config, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params."""
    cfg, _ = load_config(directory, config_from_hf)
    tensors = read_tensors(directory)
    if _has_decoder(head) and cfg.tie_word_embeddings and _distinct_head(tensors):
        # transformers keeps a distinct lm_head.weight and still scales the decoder output: that is an untied head
        # with the scale folded in.
        cfg = dataclasses.replace(cfg, tie_word_embeddings=False)
        tensors["lm_head.weight"] = tensors["lm_head.weight"] * np.float32(cfg.d_model**-0.5)
    return cfg, params_from_hf(tensors, cfg, head)


def save_hf_directory(directory: Path, cfg: T5Config, params: Mapping, head: str = FULL_MODEL) -> None:
    """Writes ``config.json`` and ``model.safetensors`` that ``from_pretrained`` loads."""
    tensors = {name: array.astype(np.float32) for name, array in params_to_hf(params, cfg, head).items()}
    write_directory(directory, config_to_hf(cfg, head), tensors)
