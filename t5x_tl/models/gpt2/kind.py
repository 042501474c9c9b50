"""GPT-2 as a model kind: a causal LM read through the decoder-only feature layout (it generates text)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from t5x_tl.data import features
from t5x_tl.models.bert.kind import check_einsum_attention
from t5x_tl.models.flops import attention_flops, logits_flops, mlp_flops
from t5x_tl.models.gpt2 import hf
from t5x_tl.models.gpt2.config import GPT2Config
from t5x_tl.models.gpt2.model import GPT2LMHeadModel
from t5x_tl.models.kinds import Batch, ModelKind, ModelSettings, Prediction, dropout_options

# name: (n_embd, n_layer, n_head), as the published checkpoints (tiny: for a CPU)
GPT2_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (128, 2, 4),
    "small": (768, 12, 12),
    "medium": (1024, 24, 16),
    "large": (1280, 36, 20),
    "xl": (1600, 48, 25),
}


@dataclasses.dataclass(frozen=True)
class GPT2Kind(ModelKind):
    def sizes(self) -> tuple[str, ...]:
        return tuple(GPT2_SIZES)

    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> GPT2Config:
        check_einsum_attention(settings, self.name)
        n_embd, n_layer, n_head = GPT2_SIZES[size]
        rate = settings.dropout_rate
        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=rate,
            embd_pdrop=rate,
            attn_pdrop=rate,
            bos_token_id=None,
            eos_token_id=1,  # the task vocabularies' EOS; 0 pads
            pad_token_id=0,
            dtype=settings.dtype,
            param_dtype=settings.param_dtype,
            scan_layers=settings.scan_layers,
            remat_policy=settings.remat_policy,
        )

    def config_from_record(self, record: dict) -> GPT2Config:
        eos = record.get("eos_token_id")
        return GPT2Config(**{**record, "eos_token_id": tuple(eos) if isinstance(eos, list) else eos})

    def backbone(self, cfg: GPT2Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return GPT2LMHeadModel(cfg, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["decoder_input_tokens"], batch.get("decoder_segment_ids"), **dropout_options(key))
        return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")

    def _forward_flops(self, cfg: GPT2Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        d, n = cfg.n_embd, positions
        layer = attention_flops(n, n, d, d) + mlp_flops(n, d, cfg.inner_dim)
        return segments * (cfg.n_layer * layer + logits_flops(predicted, d, cfg.vocab_size))

    def load_hf(self, directory: Path) -> tuple[GPT2Config, dict]:
        return hf.load_hf_directory(directory)

    def save_hf(self, directory: Path, config: GPT2Config, params: dict) -> None:
        hf.save_hf_directory(directory, config, params)


GPT2 = GPT2Kind("gpt2", features.DECODER_ONLY, None, True, "LMHeadModel")
