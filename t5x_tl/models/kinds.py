"""What a model kind is: one object holding everything that differs between kinds.

A kind names its feature layout (which SeqIO converter feeds it, :mod:`t5x_tl.data.features`), makes its config
from a job's settings, builds its model (with a Recurrent Memory Transformer around it when asked), turns a
converted batch into (logits, targets, loss weights, segment ids), counts its analytic FLOPs, says whether it
generates text, and reads and writes its Hugging Face twin. The T5 family's kinds are in
:mod:`t5x_tl.models.t5_kinds`; :mod:`t5x_tl.models.registry` names them all. Adding a kind is one subclass and one
registry line; nothing else in the package names kinds.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from t5x_tl.data.features import FeatureLayout
from t5x_tl.errors import UserError
from t5x_tl.models.rmt import RecurrentMemory
from t5x_tl.models.segments import MemoryConfig

Batch = dict[str, jax.Array]
ModelConfig = Any  # a family's config dataclass (T5Config, BertConfig, GPT2Config)
# Config fields of how a model executes and regularises, not of its parameter tree.
_EXECUTION = re.compile(r"dtype|scan_layers|remat_policy|attention_impl|dropout|pdrop|initializer_range")
Prediction = tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]  # logits, targets, weights, segment ids


def dropout_options(key: jax.Array | None) -> dict[str, Any]:
    """A model call's dropout arguments: deterministic without a key, else dropout drawn from ``key``."""
    return dict(deterministic=key is None, rngs=None if key is None else nnx.Rngs(dropout=key))


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """A job's model settings (``config.model``) that any family's config takes."""

    dropout_rate: float = 0.0
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"
    attention_impl: str = "auto"


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
    def sizes(self) -> tuple[str, ...]:
        """The named sizes ``config.model.size`` may take."""

    @abc.abstractmethod
    def make_config(self, size: str, vocab_size: int, settings: ModelSettings) -> ModelConfig:
        """The config of a named size for ``vocab_size`` entries; ValueError for settings the family lacks."""

    @abc.abstractmethod
    def config_from_record(self, record: dict) -> ModelConfig:
        """The config a checkpoint's metadata recorded (``dataclasses.asdict`` of it), for this machine."""

    def shape_signature(self, config: ModelConfig) -> dict:
        """The config fields that fix the parameter tree (a checkpoint restores only onto an equal signature): all
        but how the model executes and regularises."""
        fields = dataclasses.asdict(config)
        return {name: value for name, value in fields.items() if not _EXECUTION.search(name)}

    def load_hf(self, directory: Path) -> tuple[ModelConfig, dict]:
        """The config and parameters of a Hugging Face directory of this kind's twin."""
        raise UserError(f"Hugging Face has no twin of a {self.name} model")

    def save_hf(self, directory: Path, config: ModelConfig, params: dict) -> None:
        """Writes the Hugging Face twin (``config.json``, ``model.safetensors``) of these parameters."""
        raise UserError(f"Hugging Face has no twin of a {self.name} model")

    @abc.abstractmethod
    def backbone(self, cfg: ModelConfig, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
        """The model without memory; ``options`` go to its class (e.g. ``num_outputs`` for a pooled head)."""

    @abc.abstractmethod
    def predict(self, model: nnx.Module, batch: Batch, key: jax.Array | None) -> Prediction:
        """How the layout's converted batch feeds the model; dropout with ``key``, deterministic without."""

    @abc.abstractmethod
    def _forward_flops(self, cfg: ModelConfig, segments: int, positions: int, predicted: int, targets: int) -> float:
        """Forward FLOPs of ``segments`` passes over ``positions`` each, ``predicted`` of them scored."""

    def build(self, cfg: ModelConfig, rngs: nnx.Rngs, memory: MemoryConfig | None = None, **options: Any) -> nnx.Module:
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

    def batch_flops(self, cfg: ModelConfig) -> float:
        """Forward FLOPs a batch costs whatever its size (0 unless the family computes per-batch tables)."""
        return 0.0

    def forward_flops(
        self, cfg: ModelConfig, inputs_length: int, targets_length: int, memory: MemoryConfig | None = None
    ) -> float:
        """Analytic forward FLOPs of one example; through a Recurrent Memory Transformer, every segment at its
        full length (memory, tokens, special and write positions)."""
        sequence = self.features.sequence_length(inputs_length, targets_length)
        if memory is None:
            return float(self._forward_flops(cfg, 1, sequence, sequence, targets_length))
        self.check_memory(memory)
        segments, positions = memory.num_segments(sequence), self.memory_class.segment_length(memory)
        return float(self._forward_flops(cfg, segments, positions, memory.segment_size, targets_length))
