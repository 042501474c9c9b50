"""Two task models (:mod:`t5x_tl.train.task_pair`) as a run of the training loop: the pair's parameters on the
job's mesh, one batch of each task per step, the pair's step jitted, validated on the job's task with its own
model, checkpointed with both streams' positions. A stopped pair run resumes from its last checkpoint as any run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import jax
from flax import nnx
from ml_collections import ConfigDict

from t5x_tl.data.pipeline import BatchSpec, TaskBatches
from t5x_tl.errors import UserError
from t5x_tl.models.kinds import Batch
from t5x_tl.models.sharding import activation_rules
from t5x_tl.platform import compiler_options
from t5x_tl.train.checkpoint_record import ModelSpec, recorded_model
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.evaluation import EvalStep
from t5x_tl.train.jitted import jit_eval_step
from t5x_tl.train.state import TrainState, abstract_model
from t5x_tl.train.step import Metrics
from t5x_tl.train.task_pair import Coupling, make_pair_step, pair_layout, task_params
from t5x_tl.train.trainee import StepContext


class PairBatches(Iterator[tuple[Batch, Batch]]):
    """The two tasks' streams in step: one batch of each per step, each with its own saved position."""

    def __init__(self, first: TaskBatches, second: TaskBatches) -> None:
        self.streams = (first, second)

    def __next__(self) -> tuple[Batch, Batch]:
        return next(self.streams[0]), next(self.streams[1])

    def state_dict(self) -> dict:
        return {"batches": self.streams[0].batches, "tasks": [stream.state_dict() for stream in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        for stream, saved in zip(self.streams, state["tasks"], strict=True):
            stream.load_state_dict(saved)

    def save_position(self, directory: Path) -> None:
        for index, stream in enumerate(self.streams):
            (directory / f"task{index}").mkdir(parents=True, exist_ok=True)
            stream.save_position(directory / f"task{index}")

    def restore_position(self, directory: Path) -> bool:
        return all([stream.restore_position(directory / f"task{i}") for i, stream in enumerate(self.streams)])

    def close(self) -> None:
        for stream in self.streams:
            stream.close()


@dataclasses.dataclass(frozen=True)
class TaskPair:
    """The job's task (task 0: validated, and the model a study scores) trained beside ``second_task`` (task 1)
    under ``coupling``; both read the job's lengths, batch size and seed."""

    coupling: Coupling
    second_task: str
    models_per_step = 2  # each task's model on its own batch (a KL penalty's extra forward passes uncounted)

    def layout(self, tree: dict) -> dict:
        try:
            self.coupling.check(tuple(tree))
        except ValueError as error:
            raise UserError(f"task pair: {error}") from error
        return pair_layout(tree, self.coupling.tied)

    def signature(self, model: ModelSpec) -> dict:
        return {**model.signature(), "pair_tied": list(self.coupling.tied)}  # the tied subtrees fix the tree

    def batches(self, cfg: ConfigDict, spec: BatchSpec) -> PairBatches:
        """Both tasks' streams; refuses what the pair's step does not do (a curriculum, microbatches)."""
        if cfg.curriculum.strategy != "none" or cfg.train.microbatches != 1:
            raise UserError("a task pair trains without config.curriculum and with config.train.microbatches=1")
        return PairBatches(TaskBatches(spec), TaskBatches(dataclasses.replace(spec, task=self.second_task)))

    def train_step(self, context: StepContext) -> jax.stages.Wrapped:
        c = context
        step = make_pair_step(c.graphdef, c.optimizer, self.coupling, c.job.model.kind, c.cfg.train.z_loss)

        def pair_step(state: TrainState, batches: tuple[Batch, Batch]) -> tuple[TrainState, Metrics]:
            with activation_rules(c.job.rules):
                return step(state, *batches)

        return jax.jit(
            pair_step,
            in_shardings=(c.shardings, c.job.data_sharding),
            out_shardings=(c.shardings, None),
            donate_argnums=0,
            compiler_options=compiler_options(),
        )

    def eval_step(self, context: StepContext) -> EvalStep:
        """Task 0's model on the job's validation batches: the eval step of one model, on its part of the pair."""
        c = context
        first_task = c.shardings.replace(params=task_params(c.shardings.params, 0))
        first = jit_eval_step(c.cfg, c.graphdef, first_task, c.job.mesh, c.job.rules)
        return lambda pair, batch: first(task_params(pair, 0), batch)


def task_model(workdir: Path, task: int = 0) -> nnx.Module:
    """Task ``task``'s model (0: the job's own task) at the newest checkpoint of a pair run in ``workdir``."""
    step, pair, metadata = read_params(Path(workdir) / "checkpoints")
    model = recorded_model(metadata, Path(workdir) / "checkpoints" / str(step))
    graphdef, _ = abstract_model(model.build)
    return nnx.merge(graphdef, task_params(pair, task))
