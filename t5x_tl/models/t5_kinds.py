"""The T5 family's model kinds: encoder-decoder, decoder-only (causal and prefix LM) and encoder-only, over one
config (:class:`~t5x_tl.models.config.T5Config`), the T5 v1.1 sizes and Hugging Face's T5/UMT5 classes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from t5x_tl.data import features
from t5x_tl.models import hf_convert
from t5x_tl.models.config import T5Config
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.flops import decoder_flops, logits_flops, stack_flops
from t5x_tl.models.kinds import Batch, ModelKind, ModelSettings, Prediction, dropout_options
from t5x_tl.models.rmt import RecurrentDecoder, RecurrentEncoder, RecurrentEncoderDecoder
from t5x_tl.models.sizes import T5_1_1_SIZES, t5_config
from t5x_tl.models.t5 import EncoderDecoder


def _logits(cfg: T5Config, n: int) -> float:
    return logits_flops(n, cfg.d_model, cfg.vocab_size)


@dataclasses.dataclass(frozen=True)
class T5Kind(ModelKind):
    """What the T5 family's kinds share: the config, its sizes and the Hugging Face conversion."""

    def sizes(self) -> tuple[str, ...]:
        return tuple(T5_1_1_SIZES)

    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> T5Config:
        return t5_config(size, vocab_size, **dataclasses.asdict(settings))

    def shape_signature(self, config: T5Config) -> dict:
        return config.shape_signature()

    def config_from_record(self, record: dict) -> T5Config:
        # The attention kernel is the machine's choice, not the checkpoint's (one trained with cuDNN evaluates on a
        # CPU), so it is "auto" whatever was trained with.
        return T5Config(**{**record, "attention_impl": "auto"})

    def load_hf(self, directory: Path) -> tuple[T5Config, dict]:
        if not self.hf_head:
            return super().load_hf(directory)
        return hf_convert.load_hf_directory(directory, self.hf_head)

    def save_hf(self, directory: Path, config: T5Config, params: dict) -> None:
        if not self.hf_head:
            return super().save_hf(directory, config, params)  # raises: no twin
        hf_convert.save_hf_directory(directory, config, params, self.hf_head)


@dataclasses.dataclass(frozen=True)
class EncoderDecoderKind(T5Kind):
    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return EncoderDecoder(cfg, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(
            batch["encoder_input_tokens"],
            batch["decoder_input_tokens"],
            batch.get("encoder_segment_ids"),
            batch.get("decoder_segment_ids"),
            **dropout_options(key),
        )
        return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")

    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        # the decoder reads the last segment's encoding and predicts the targets
        return segments * stack_flops(cfg, cfg.num_encoder_layers, positions) + decoder_flops(cfg, positions, targets)


@dataclasses.dataclass(frozen=True)
class DecoderOnlyKind(T5Kind):
    prefix_lm: bool = False

    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return DecoderOnly(cfg, prefix_lm=self.prefix_lm, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(
            batch["decoder_input_tokens"],
            batch.get("decoder_segment_ids"),
            batch.get("decoder_causal_attention"),
            **dropout_options(key),
        )
        return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")

    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        return segments * (
            stack_flops(cfg, cfg.num_decoder_layers, positions) + logits_flops(predicted, cfg.d_model, cfg.vocab_size)
        )


@dataclasses.dataclass(frozen=True)
class EncoderOnlyKind(T5Kind):
    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return EncoderOnly(cfg, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["encoder_input_tokens"], batch.get("encoder_segment_ids"), **dropout_options(key))
        return logits, batch["encoder_target_tokens"], batch["encoder_loss_weights"], batch.get("encoder_segment_ids")

    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        return segments * (
            stack_flops(cfg, cfg.num_encoder_layers, positions) + logits_flops(predicted, cfg.d_model, cfg.vocab_size)
        )


ENCODER_DECODER = EncoderDecoderKind(
    "encoder_decoder", features.ENCODER_DECODER, RecurrentEncoderDecoder, True, hf_convert.FULL_MODEL
)
DECODER_ONLY = DecoderOnlyKind("decoder_only", features.DECODER_ONLY, RecurrentDecoder, True)
PREFIX_LM = DecoderOnlyKind("prefix_lm", features.PREFIX_LM, RecurrentDecoder, True, prefix_lm=True)
ENCODER_ONLY = EncoderOnlyKind("encoder_only", features.ENCODER_ONLY, RecurrentEncoder, False, hf_convert.ENCODER)
T5_KINDS = (ENCODER_DECODER, DECODER_ONLY, PREFIX_LM, ENCODER_ONLY)
