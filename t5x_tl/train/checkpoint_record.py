"""The metadata a training checkpoint step records, written and read only here.

Each step's ``metadata`` holds the model (``model``: its shape signature, which a restore must match;
``model_config`` and, with memory, ``memory_config``: enough to rebuild it for evaluation or export) and the
data position (``data_batches`` consumed, ``task``, ``data_state``: the training stream's state). Steps written
by older versions lack some keys; the readers give what those versions meant, so every old checkpoint restores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.kinds import ModelConfig, ModelKind
from t5x_tl.models.registry import model_kind
from t5x_tl.models.segments import MemoryConfig


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model kind, its config and its Recurrent Memory Transformer settings: what a job builds and a checkpoint
    records, so that training, restoring and evaluating build the same model."""

    kind: ModelKind
    config: ModelConfig
    memory: MemoryConfig | None = None

    def build(self, rngs: nnx.Rngs) -> nnx.Module:
        return self.kind.build(self.config, rngs, self.memory)

    def signature(self) -> dict:
        """What fixes the parameter tree: a checkpoint restores only onto an equal one."""
        extra = {} if self.memory is None else {"rmt_memory_size": self.memory.memory_size}
        return {"kind": self.kind.name, **self.kind.shape_signature(self.config), **extra}

    def record(self, signature: dict | None = None) -> dict:
        """The model's part of every step's metadata, enough to rebuild it (see :func:`recorded_model`); with the
        ``signature`` a restore must match where the run trains more than this model (a task pair)."""
        record = {"model": signature or self.signature(), "model_config": dataclasses.asdict(self.config)}
        if self.memory is not None:
            record["memory_config"] = dataclasses.asdict(self.memory)
        return record


def step_metadata(model_record: dict, step: int, task: str, data_state: dict) -> dict:
    """One step's metadata: the model's :meth:`ModelSpec.record` (computed once per run), the batches consumed,
    the task trained on and the training stream's state."""
    return {**model_record, "data_batches": step, "task": task, "data_state": data_state}


def recorded_signature(metadata: dict) -> dict | None:
    """The model signature a step recorded (None in a checkpoint not written by the loop)."""
    return metadata.get("model")


def recorded_batches(metadata: dict, step: int) -> int:
    """The batches consumed at ``step`` (one per step in checkpoints that predate the count)."""
    return metadata.get("data_batches", step)


def recorded_data_state(metadata: dict, step: int) -> dict:
    """The training stream's state at ``step``; checkpoints that predate it record only one batch per step."""
    return metadata.get("data_state", {"batches": step})


def recorded_model(metadata: dict, checkpoint: Path) -> ModelSpec:
    """The model a step (at ``checkpoint``, named in errors) records; an encoder-decoder when older ones name no
    kind; the kind reads its config for this machine (:meth:`ModelKind.config_from_record`)."""
    if "model_config" not in metadata:
        raise UserError(f"checkpoint {checkpoint} does not record its model config")
    name = metadata.get("model", {}).get("kind", "encoder_decoder")
    try:
        kind = model_kind(name)
    except ValueError as error:
        raise UserError(f"checkpoint {checkpoint}: {error} (register that kind before restoring it)") from error
    config = kind.config_from_record(metadata["model_config"])
    memory = MemoryConfig(**metadata["memory_config"]) if "memory_config" in metadata else None
    return ModelSpec(kind, config, memory)
