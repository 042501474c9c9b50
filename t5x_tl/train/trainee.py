"""What the training loop trains of a job: its parameter tree, its training stream and its jitted steps.

Every config's run trains one model (:data:`ONE_MODEL`); the multi-task study also trains two task models
coupled by a sharing scheme (:class:`t5x_tl.train.pair_trainee.TaskPair`). The loop creates, restores, steps,
validates and checkpoints whatever its trainee lays out, so every run gets the same mesh, checkpoints and resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import jax
import optax
from flax import nnx
from ml_collections import ConfigDict

from t5x_tl.data.pipeline import BatchSpec
from t5x_tl.train.checkpoint_record import ModelSpec
from t5x_tl.train.evaluation import Batches, EvalStep
from t5x_tl.train.jitted import jit_eval_step, jit_train_step
from t5x_tl.train.job import Job, train_batches
from t5x_tl.train.state import TrainState, one_model


class TrainStream(Iterator[Batches], Protocol):
    """A host's training batches with a position that checkpoints save (metadata and iterator state) and restore."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def save_position(self, directory: Path) -> None: ...

    def restore_position(self, directory: Path) -> bool: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class StepContext:
    """What the loop's jitted steps are built from."""

    cfg: ConfigDict
    job: Job
    graphdef: nnx.GraphDef  # one model's
    optimizer: optax.GradientTransformation
    shardings: TrainState  # of the trained tree


class Trainee(Protocol):
    models_per_step: int  # models trained on a batch each per step: the loop's tokens/s and MFU count them all

    def layout(self, tree: dict) -> dict:
        """The trained tree from one model's parameter tree (of arrays, shapes or shardings alike)."""
        ...

    def signature(self, model: ModelSpec) -> dict:
        """What a checkpoint must record for this run to restore it."""
        ...

    def batches(self, cfg: ConfigDict, spec: BatchSpec) -> TrainStream: ...

    def train_step(self, context: StepContext) -> jax.stages.Wrapped:
        """``step(state, batch) -> (state, metrics)``, jitted on the job's mesh, the state donated."""
        ...

    def eval_step(self, context: StepContext) -> EvalStep:
        """``eval_step(params, batch)`` on the job's validation batches."""
        ...


@dataclasses.dataclass(frozen=True)
class OneModel:
    """The job's model on its training stream (or curriculum), with the steps ``t5x_tl-train`` runs."""

    models_per_step = 1

    def layout(self, tree: dict) -> dict:
        return one_model(tree)

    def signature(self, model: ModelSpec) -> dict:
        return model.signature()

    def batches(self, cfg: ConfigDict, spec: BatchSpec) -> TrainStream:
        return train_batches(cfg, spec)

    def train_step(self, context: StepContext) -> jax.stages.Wrapped:
        c = context
        return jit_train_step(c.cfg, c.graphdef, c.optimizer, c.shardings, c.job.mesh, c.job.rules)

    def eval_step(self, context: StepContext) -> EvalStep:
        c = context
        return jit_eval_step(c.cfg, c.graphdef, c.shardings, c.job.mesh, c.job.rules)


ONE_MODEL = OneModel()
