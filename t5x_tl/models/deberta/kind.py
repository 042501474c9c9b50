"""DeBERTa-v3 as a model kind: a masked-LM encoder with disentangled attention, read through the encoder-only
feature layout (v3's defaults: shared attention keys, c2p and p2c terms, 256 log buckets)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from t5x_tl.data import features
from t5x_tl.models.bert.kind import BERT_SIZES, check_einsum_attention
from t5x_tl.models.deberta import hf
from t5x_tl.models.deberta.config import DebertaV2Config
from t5x_tl.models.deberta.model import DebertaV2
from t5x_tl.models.flops import attention_flops, logits_flops, mlp_flops
from t5x_tl.models.kinds import Batch, ModelKind, ModelSettings, Prediction, dropout_options


def _terms(cfg: DebertaV2Config) -> int:
    """The position terms attention adds (c2p, p2c) when relative attention is on."""
    return len([term for term in cfg.pos_att_type.split("|") if term]) if cfg.relative_attention else 0


@dataclasses.dataclass(frozen=True)
class DebertaKind(ModelKind):
    def sizes(self) -> tuple[str, ...]:
        return tuple(BERT_SIZES)  # DeBERTa-v3's xsmall..large share BERT's base and large shapes

    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> DebertaV2Config:
        check_einsum_attention(settings, self.name)
        hidden, layers, heads, intermediate = BERT_SIZES[size]
        return DebertaV2Config(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            intermediate_size=intermediate,
            pad_token_id=0,
            hidden_dropout=settings.dropout_rate,
            attention_dropout=settings.dropout_rate,
            dtype=settings.dtype,
            param_dtype=settings.param_dtype,
            scan_layers=settings.scan_layers,
            remat_policy=settings.remat_policy,
        )

    def config_from_record(self, record: dict) -> DebertaV2Config:
        return DebertaV2Config(**record)

    def backbone(self, cfg: DebertaV2Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return DebertaV2(cfg, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["encoder_input_tokens"], batch.get("encoder_segment_ids"), **dropout_options(key))
        return logits, batch["encoder_target_tokens"], batch["encoder_loss_weights"], batch.get("encoder_segment_ids")

    def _forward_flops(
        self, cfg: DebertaV2Config, segments: int, positions: int, predicted: int, targets: int
    ) -> float:
        d, n = cfg.hidden_size, positions
        relative = _terms(cfg) * 2 * n * 2 * cfg.attention_span * d  # c2p, p2c: every position against every row
        layer = attention_flops(n, n, d, d) + relative + mlp_flops(n, d, cfg.intermediate_size)
        head = 2 * n * d * d + logits_flops(predicted, d, cfg.vocab_size)
        return segments * (cfg.num_layers * layer + head)

    def batch_flops(self, cfg: DebertaV2Config) -> float:
        # each layer projects the relative table (2 x span rows) once per term, whatever the batch
        return cfg.num_layers * _terms(cfg) * 2 * 2 * cfg.attention_span * cfg.hidden_size**2

    def load_hf(self, directory: Path) -> tuple[DebertaV2Config, dict]:
        return hf.load_hf_directory(directory)

    def save_hf(self, directory: Path, config: DebertaV2Config, params: dict) -> None:
        hf.save_hf_directory(directory, config, params)


DEBERTA_V3 = DebertaKind("deberta_v3", features.ENCODER_ONLY, None, False, "ForMaskedLM")
