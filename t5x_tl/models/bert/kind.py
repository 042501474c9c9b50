"""BERT and RoBERTa as model kinds: masked-LM encoders read through the encoder-only feature layout.

Trained here, the pad id is the task vocabulary's (0), so RoBERTa's positions start at 1; a Hugging Face import
keeps the checkpoint's own pad id. The masked-LM loss falls on the corrupted positions the layout marks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from t5x_tl.data import features
from t5x_tl.errors import UserError
from t5x_tl.models.bert import hf
from t5x_tl.models.bert.config import BertConfig
from t5x_tl.models.bert.model import Bert
from t5x_tl.models.flops import attention_flops, logits_flops, mlp_flops
from t5x_tl.models.kinds import Batch, ModelKind, ModelSettings, Prediction, dropout_options

# name: (hidden_size, num_layers, num_heads, intermediate_size), as the published checkpoints (tiny: for a CPU)
BERT_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (128, 2, 2, 512),
    "base": (768, 12, 12, 3072),
    "large": (1024, 24, 16, 4096),
}


def check_einsum_attention(settings: ModelSettings, family: str) -> None:
    """ValueError unless ``attention_impl`` is "auto": the family attends with einsums only."""
    if settings.attention_impl != "auto":
        raise ValueError(f"attention_impl={settings.attention_impl!r} applies to T5 kinds; {family} uses einsums")


def encoder_fields(size: str, vocab_size: int, settings: ModelSettings, family: str) -> dict[str, Any]:
    """The config fields BERT-like encoders share, for a named size and a job's settings (pad id 0, the task
    vocabulary's)."""
    check_einsum_attention(settings, family)
    hidden, layers, heads, intermediate = BERT_SIZES[size]
    return dict(
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


@dataclasses.dataclass(frozen=True)
class MaskedLMKind(ModelKind):
    """What BERT-like masked-LM encoders share: the sizes and how the encoder-only layout feeds them."""

    def sizes(self) -> tuple[str, ...]:
        return tuple(BERT_SIZES)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["encoder_input_tokens"], batch.get("encoder_segment_ids"), **dropout_options(key))
        return logits, batch["encoder_target_tokens"], batch["encoder_loss_weights"], batch.get("encoder_segment_ids")


@dataclasses.dataclass(frozen=True)
class BertKind(MaskedLMKind):
    model_type: str = "bert"

    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> BertConfig:
        roberta = self.model_type == "roberta"  # its positions start after the pad id 0
        return BertConfig(
            **encoder_fields(size, vocab_size, settings, self.name),
            max_position_embeddings=513 if roberta else 512,
            type_vocab_size=1 if roberta else 2,
            layer_norm_eps=1e-5 if roberta else 1e-12,
            model_type=self.model_type,
        )

    def config_from_record(self, record: dict) -> BertConfig:
        return BertConfig(**record)

    def backbone(self, cfg: BertConfig, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return Bert(cfg, rngs=rngs, **options)

    def _forward_flops(self, cfg: BertConfig, segments: int, positions: int, predicted: int, targets: int) -> float:
        d, n = cfg.hidden_size, positions
        layer = attention_flops(n, n, d, d) + mlp_flops(n, d, cfg.intermediate_size)
        head = 2 * n * d * d + logits_flops(predicted, d, cfg.vocab_size)  # the transform, then the tied decoder
        return segments * (cfg.num_layers * layer + head)

    def load_hf(self, directory: Path) -> tuple[BertConfig, dict]:
        cfg, params = hf.load_hf_directory(directory)
        if cfg.model_type != self.model_type:
            raise UserError(f"{directory} holds a {cfg.model_type} model, not {self.model_type}")
        return cfg, params

    def save_hf(self, directory: Path, config: BertConfig, params: dict) -> None:
        hf.save_hf_directory(directory, config, params)


BERT = BertKind("bert", features.ENCODER_ONLY, None, False, "ForMaskedLM")
ROBERTA = BertKind("roberta", features.ENCODER_ONLY, None, False, "ForMaskedLM", model_type="roberta")
