"""Hugging Face T5 v1.1 weights -> t5x_tl parameters (a renaming plus transposes).

Takes a flat ``{name: numpy array}`` dict as produced by ``model.state_dict()`` or a safetensors file, so
this module needs neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from t5x_tl.models.t5 import T5Config


def _attention(hf: Mapping[str, np.ndarray], prefix: str, cfg: T5Config) -> dict[str, np.ndarray]:
    heads, d_kv, d_model = cfg.num_heads, cfg.d_kv, cfg.d_model
    qkv = {
        name: hf[f"{prefix}.{letter}.weight"].T.reshape(d_model, heads, d_kv)
        for name, letter in (("query", "q"), ("key", "k"), ("value", "v"))
    }
    qkv["out"] = hf[f"{prefix}.o.weight"].T.reshape(heads, d_kv, d_model)
    return qkv


def _mlp(hf: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name: hf[f"{prefix}.{name}.weight"].T for name in ("wi_0", "wi_1", "wo")}


def _norm(hf: Mapping[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {"scale": hf[f"{name}.weight"]}


def params_from_hf(hf: Mapping[str, np.ndarray], cfg: T5Config) -> dict:
    """Returns a pure parameter dict for :class:`t5x_tl.models.t5.EncoderDecoder`."""
    encoder_layers = {}
    for i in range(cfg.num_encoder_layers):
        block = f"encoder.block.{i}.layer"
        encoder_layers[i] = {
            "attention_norm": _norm(hf, f"{block}.0.layer_norm"),
            "attention": _attention(hf, f"{block}.0.SelfAttention", cfg),
            "mlp_norm": _norm(hf, f"{block}.1.layer_norm"),
            "mlp": _mlp(hf, f"{block}.1.DenseReluDense"),
        }
    decoder_layers = {}
    for i in range(cfg.num_decoder_layers):
        block = f"decoder.block.{i}.layer"
        decoder_layers[i] = {
            "self_attention_norm": _norm(hf, f"{block}.0.layer_norm"),
            "self_attention": _attention(hf, f"{block}.0.SelfAttention", cfg),
            "cross_attention_norm": _norm(hf, f"{block}.1.layer_norm"),
            "cross_attention": _attention(hf, f"{block}.1.EncDecAttention", cfg),
            "mlp_norm": _norm(hf, f"{block}.2.layer_norm"),
            "mlp": _mlp(hf, f"{block}.2.DenseReluDense"),
        }
    bias = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    return {
        "token_embed": {"embedding": hf["shared.weight"]},
        "encoder": {
            "relative_bias": {"embedding": hf[f"encoder.{bias}"]},
            "layers": encoder_layers,
            "final_norm": _norm(hf, "encoder.final_layer_norm"),
        },
        "decoder": {
            "relative_bias": {"embedding": hf[f"decoder.{bias}"]},
            "layers": decoder_layers,
            "final_norm": _norm(hf, "decoder.final_layer_norm"),
        },
        "lm_head": hf["lm_head.weight"].T,
    }
