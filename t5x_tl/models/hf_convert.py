"""Hugging Face T5 / mT5 / UMT5 checkpoints <-> t5x_tl parameters, in both directions.

One table of ``(our path, Hugging Face name, layout)`` rows, built from the config, drives both import and
export, so the two cannot drift apart. Works on flat ``{name: numpy array}`` dicts (a safetensors file or a
torch ``state_dict``), so neither torch nor transformers is needed here. Mismatches are reported all at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config
from t5x_tl.models.kinds import build_model
from t5x_tl.models.layers import parse_feed_forward

Path_ = tuple[str | int, ...]
HF_MODEL_TYPES = ("t5", "mt5", "umt5")
log = logging.getLogger("t5x_tl")


Row = tuple[Path_, int | None, str, str]  # our path, layer index in the stacked array (or None), HF name, layout
HF_KINDS = ("encoder_decoder", "encoder_only")  # Hugging Face has no T5-family decoder-only model


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


def name_table(cfg: T5Config, kind: str = "encoder_decoder") -> list[Row]:
    """Every parameter of a ``kind`` model: our path, layer index, its Hugging Face name, and the layouts' difference.

    An encoder-only model is the encoder of a T5 checkpoint (``T5EncoderModel``), without an output layer.
    """
    if kind not in HF_KINDS:
        raise UserError(f"Hugging Face has no T5-family {kind} model; t5x_tl converts {HF_KINDS}")
    rows: list[Row] = [(("token_embed", "embedding"), None, "shared.weight", "copy")]
    rows += _stack_rows(cfg, "encoder", cfg.num_encoder_layers, _encoder_layer_rows(cfg))
    if kind == "encoder_decoder":
        rows += _stack_rows(cfg, "decoder", cfg.num_decoder_layers, _decoder_layer_rows(cfg))
        if not cfg.tie_word_embeddings:
            rows.append((("lm_head",), None, "lm_head.weight", "dense"))
    return rows


def _to_ours(array: np.ndarray, layout: str, cfg: T5Config) -> np.ndarray:
    if layout == "dense":  # torch Linear stores (out, in)
        return array.T
    if layout == "in_heads":
        return array.T.reshape(cfg.d_model, cfg.num_heads, cfg.d_kv)
    if layout == "out_heads":
        return array.T.reshape(cfg.num_heads, cfg.d_kv, cfg.d_model)
    return array


def _to_hf(array: np.ndarray, layout: str, cfg: T5Config) -> np.ndarray:
    if layout == "in_heads":
        return array.reshape(cfg.d_model, cfg.num_heads * cfg.d_kv).T
    if layout == "out_heads":
        return array.reshape(cfg.num_heads * cfg.d_kv, cfg.d_model).T
    if layout == "dense":
        return array.T
    return array


def _set(tree: dict, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: Mapping, path: Path_) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _parameter_shapes(cfg: T5Config, kind: str) -> dict:
    options = {"token_head": False} if kind == "encoder_only" else {}
    model = nnx.eval_shape(lambda: build_model(kind, cfg, nnx.Rngs(0), **options))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def params_from_hf(hf: Mapping[str, np.ndarray], cfg: T5Config, kind: str = "encoder_decoder") -> dict:
    """A pure parameter dict for a ``kind`` model; raises listing every missing, extra or misshaped tensor.

    For ``kind="encoder_only"`` the decoder and output tensors of a full T5 checkpoint are skipped (logged).
    """
    table = name_table(cfg, kind)
    if (
        kind == "encoder_decoder"
        and not cfg.tie_word_embeddings
        and "lm_head.weight" not in hf
        and "shared.weight" in hf
    ):
        hf = {**hf, "lm_head.weight": np.asarray(hf["shared.weight"])}  # transformers >= 5 saves it tied
    expected = {hf_name for _, _, hf_name, _ in table}
    ignorable = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}  # aliases of shared.weight
    if cfg.tie_word_embeddings or kind == "encoder_only":
        ignorable.add("lm_head.weight")
    if kind == "encoder_only":
        skipped = sorted(name for name in hf if name.startswith("decoder.") or name == "lm_head.weight")
        ignorable.update(skipped)
        if skipped:
            log.info("Encoder-only import: skipped %d decoder and output tensors of the checkpoint", len(skipped))
    problems = [f"missing tensor {name}" for name in sorted(expected - set(hf))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(hf) - expected - ignorable)]
    shapes = _parameter_shapes(cfg, kind)
    layers: dict[Path_, dict[int, np.ndarray]] = {}
    params: dict = {}
    for path, index, hf_name, layout in table:
        if hf_name not in hf:
            continue
        expected_shape = _get(shapes, path).shape[0 if index is None else 1 :]
        try:
            value = _to_ours(np.asarray(hf[hf_name]), layout, cfg)
        except ValueError:  # a head layout that cannot be reshaped
            value = None
        if value is None or value.shape != expected_shape:
            problems.append(f"tensor {hf_name} has shape {tuple(np.shape(hf[hf_name]))}, expected {expected_shape}")
        elif index is None:
            _set(params, path, value)
        else:
            layers.setdefault(path, {})[index] = value
    if problems:
        raise UserError("checkpoint does not match the config:\n  " + "\n  ".join(problems))
    for path, by_index in layers.items():
        _set(params, path, np.stack([by_index[i] for i in range(len(by_index))]))
    return params


def params_to_hf(params: Mapping, cfg: T5Config, kind: str = "encoder_decoder") -> dict[str, np.ndarray]:
    """Flat Hugging Face state dict (numpy) for our parameters."""
    out = {}
    for path, index, hf_name, layout in name_table(cfg, kind):
        array = np.asarray(_get(params, path))
        out[hf_name] = np.ascontiguousarray(_to_hf(array if index is None else array[index], layout, cfg))
    return out


def config_from_hf(hf: Mapping[str, Any], **overrides: Any) -> T5Config:
    """Our config from a Hugging Face ``config.json`` dict (T5, mT5 or UMT5)."""
    model_type = hf.get("model_type", "t5")
    if model_type not in HF_MODEL_TYPES:
        raise UserError(f"unsupported architecture model_type={model_type!r}; t5x_tl converts {HF_MODEL_TYPES}")
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
        feed_forward_proj=hf.get("feed_forward_proj", "relu"),
        tie_word_embeddings=_scales_outputs(hf, model_type),
        per_layer_relative_bias=model_type == "umt5",
    )
    return T5Config(**{**fields, **overrides})


def _scales_outputs(hf: Mapping[str, Any], model_type: str) -> bool:
    """Whether the decoder output is scaled by d_model^-0.5 through a tied embedding (T5 1.0).

    transformers >= 5 always ties ``lm_head`` to ``shared`` and records the scaling as
    ``scale_decoder_outputs``; older config files say ``tie_word_embeddings``.
    """
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return bool(hf.get("tie_word_embeddings", model_type == "t5"))


def config_to_hf(cfg: T5Config, kind: str = "encoder_decoder") -> dict[str, Any]:
    """A ``config.json`` dict that transformers loads as the same architecture."""
    family = "UMT5" if cfg.per_layer_relative_bias else "T5"
    head = "ForConditionalGeneration" if kind == "encoder_decoder" else "EncoderModel"
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


def load_hf_directory(directory: Path, kind: str = "encoder_decoder") -> tuple[T5Config, dict]:
    """Reads ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into our config and params."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise UserError(f"{directory} has no config.json; point at a Hugging Face model directory")
    cfg = config_from_hf(json.loads(config_path.read_text()))
    return cfg, params_from_hf(_read_tensors(directory), cfg, kind)


def _read_tensors(directory: Path) -> dict[str, np.ndarray]:
    safetensors_files = sorted(directory.glob("*.safetensors"))
    if safetensors_files:
        from safetensors.numpy import load_file

        return {name: array for path in safetensors_files for name, array in load_file(str(path)).items()}
    torch_file = directory / "pytorch_model.bin"
    if torch_file.is_file():
        import torch  # only for legacy PyTorch checkpoints

        state = torch.load(str(torch_file), map_location="cpu", weights_only=True)
        return {name: tensor.float().numpy() for name, tensor in state.items()}
    raise UserError(f"{directory} has neither *.safetensors nor pytorch_model.bin weights")


def save_hf_directory(directory: Path, cfg: T5Config, params: Mapping, kind: str = "encoder_decoder") -> None:
    """Writes ``config.json`` and ``model.safetensors`` that ``from_pretrained`` loads."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config_to_hf(cfg, kind), indent=2))
    tensors = {name: array.astype(np.float32) for name, array in params_to_hf(params, cfg, kind).items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
