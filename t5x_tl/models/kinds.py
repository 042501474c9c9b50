"""Model kinds: one object each, holding everything that differs between them.

A kind names its feature layout (which SeqIO converter feeds it, :mod:`t5x_tl.data.features`), builds its model
(with a Recurrent Memory Transformer around it when asked), turns a converted batch into (logits, targets,
loss weights, segment ids), counts its analytic FLOPs, and says whether it generates text and which
Hugging Face class it converts to. Adding a kind is one subclass and one :func:`register_kind` call; nothing else
in the package names kinds.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
from flax import nnx

from t5x_tl.data import features
from t5x_tl.data.features import FeatureLayout
from t5x_tl.models.config import T5Config
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.flops import decoder_flops, logits_flops, stack_flops
from t5x_tl.models.rmt import RecurrentDecoder, RecurrentEncoder, RecurrentEncoderDecoder, RecurrentMemory
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.t5 import EncoderDecoder

Batch = dict[str, jax.Array]
Prediction = tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]  # logits, targets, weights, segment ids


def dropout_options(key: jax.Array | None) -> dict[str, Any]:
    """A model call's dropout arguments: deterministic without a key, else dropout drawn from ``key``."""
    return dict(deterministic=key is None, rngs=None if key is None else nnx.Rngs(dropout=key))


@dataclasses.dataclass(frozen=True)
class ModelKind(abc.ABC):
    """A model kind: ``name`` (what ``config.model.kind`` says), its data layout and its model.

    ``memory_class``: the Recurrent Memory Transformer over its backbone, None where it has none.
    ``decodes``: it generates text (the evaluator, N-shot generation). ``hf_head``: the suffix of the Hugging
    Face class it converts to and from (``T5`` or ``UMT5`` + ``ForConditionalGeneration`` or ``EncoderModel``),
    None where Hugging Face has no twin.
    """

    name: str
    features: FeatureLayout
    memory_class: type[RecurrentMemory] | None
    decodes: bool
    hf_head: str | None = None

    @abc.abstractmethod
    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        """The model without memory; ``options`` go to its class (e.g. ``num_outputs`` for a pooled head)."""

    @abc.abstractmethod
    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        """How the layout's converted batch feeds the model; dropout with ``key``, deterministic without."""

    @abc.abstractmethod
    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        """Forward FLOPs of ``segments`` passes over ``positions`` each, ``predicted`` of them scored."""

    def build(self, cfg: T5Config, rngs: nnx.Rngs, memory: MemoryConfig | None = None, **options: Any) -> nnx.Module:
        """The model; with ``memory``, a Recurrent Memory Transformer over it (parameters under ``backbone/``,
        plus the initial ``memory``)."""
        if memory is not None:
            self.check_memory(memory)
        model = self.backbone(cfg, rngs, **options)
        return model if memory is None else self.memory_class(model, memory, rngs=rngs)

    def check_memory(self, memory: MemoryConfig) -> None:
        """ValueError when this kind has no recurrent memory, or when a segment is longer than the backbone may
        see."""
        if self.memory_class is None:
            raise ValueError(f"a {self.name} model has no recurrent memory: set segment_size to 0")
        self.memory_class.check(memory, self.name)

    def forward_flops(
        self, cfg: T5Config, inputs_length: int, targets_length: int, memory: MemoryConfig | None = None
    ) -> float:
        """Analytic forward FLOPs of one example; through a Recurrent Memory Transformer, every segment at its
        full length (memory, tokens, special and write positions)."""
        sequence = self.features.sequence_length(inputs_length, targets_length)
        if memory is None:
            return float(self._forward_flops(cfg, 1, sequence, sequence, targets_length))
        self.check_memory(memory)
        segments, positions = memory.num_segments(sequence), self.memory_class.segment_length(memory)
        return float(self._forward_flops(cfg, segments, positions, memory.segment_size, targets_length))


@dataclasses.dataclass(frozen=True)
class EncoderDecoderKind(ModelKind):
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
class DecoderOnlyKind(ModelKind):
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
        return segments * (stack_flops(cfg, cfg.num_decoder_layers, positions) + logits_flops(cfg, predicted))


@dataclasses.dataclass(frozen=True)
class EncoderOnlyKind(ModelKind):
    def backbone(self, cfg: T5Config, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        return EncoderOnly(cfg, rngs=rngs, **options)

    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        logits = model(batch["encoder_input_tokens"], batch.get("encoder_segment_ids"), **dropout_options(key))
        return logits, batch["encoder_target_tokens"], batch["encoder_loss_weights"], batch.get("encoder_segment_ids")

    def _forward_flops(self, cfg: T5Config, segments: int, positions: int, predicted: int, targets: int) -> float:
        return segments * (stack_flops(cfg, cfg.num_encoder_layers, positions) + logits_flops(cfg, predicted))


ENCODER_DECODER = EncoderDecoderKind(
    "encoder_decoder", features.ENCODER_DECODER, RecurrentEncoderDecoder, True, "ForConditionalGeneration"
)
DECODER_ONLY = DecoderOnlyKind("decoder_only", features.DECODER_ONLY, RecurrentDecoder, True)
PREFIX_LM = DecoderOnlyKind("prefix_lm", features.PREFIX_LM, RecurrentDecoder, True, prefix_lm=True)
ENCODER_ONLY = EncoderOnlyKind("encoder_only", features.ENCODER_ONLY, RecurrentEncoder, False, "EncoderModel")

MODEL_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Makes ``kind`` available by name (configs, checkpoints, scripts); ValueError if the name is taken."""
    if kind.name in MODEL_KINDS and MODEL_KINDS[kind.name] != kind:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    MODEL_KINDS[kind.name] = kind
    return kind


for _kind in (ENCODER_DECODER, DECODER_ONLY, PREFIX_LM, ENCODER_ONLY):
    register_kind(_kind)


def model_kind(name: str) -> ModelKind:
    """The registered kind called ``name``; ValueError naming the registered ones otherwise."""
    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {name!r}; choose one of {tuple(MODEL_KINDS)}")
    return MODEL_KINDS[name]
