"""DeBERTa-v3 as a model kind: a masked-LM encoder with disentangled attention, read through the encoder-only
feature layout (v3's defaults: shared attention keys, c2p and p2c terms, 256 log buckets) in BERT's sizes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from flax import nnx

from t5x_tl.data import features
from t5x_tl.models.bert.kind import MaskedLMKind, encoder_fields
from t5x_tl.models.deberta import hf
from t5x_tl.models.deberta.config import DebertaV2Config
from t5x_tl.models.deberta.model import DebertaV2
from t5x_tl.models.flops import attention_flops, logits_flops, mlp_flops
from t5x_tl.models.kinds import ModelSettings


def _terms(cfg: DebertaV2Config) -> int:
    """The position terms attention adds (c2p, p2c) when relative attention is on."""
    return len([term for term in cfg.pos_att_type.split("|") if term]) if cfg.relative_attention else 0


@dataclasses.dataclass(frozen=True)
class DebertaKind(MaskedLMKind):
    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> DebertaV2Config:
        return DebertaV2Config(**encoder_fields(size, vocab_size, settings, self.name))  # v3's defaults otherwise

    def config_from_record(self, record: dict) -> DebertaV2Config:
        return DebertaV2Config(**record)

    def backbone(self, cfg: DebertaV2Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return DebertaV2(cfg, rngs=rngs, **options)

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
