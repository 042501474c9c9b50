"""Validation inside the training loop: fixed batches of a split, summed eval-step metrics, and the curriculum
listener that turns the naive level's validation accuracy into curriculum progress."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable

import jax
import numpy as np

from t5x_tl.data.curriculum.batches import CurriculumBatches
from t5x_tl.data.curriculum.strategies import Level
from t5x_tl.data.pipeline import BatchSpec, numpy_batches
from t5x_tl.errors import UserError
from t5x_tl.train.metrics import MetricWriter

log = logging.getLogger("t5x_tl")

# eval_step(params, batch) -> summed metrics (jitted in training)
EvalStep = Callable[[dict, dict[str, jax.Array]], dict[str, jax.Array]]
Batches = dict | tuple[dict, ...]  # one batch of features, or one per task of a task pair


def _padded(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """A short last batch filled up with all-zero rows, which carry no loss weight and no sequence."""
    return {k: np.pad(v, [(0, rows - len(v))] + [(0, 0)] * (v.ndim - 1)) for k, v in batch.items()}


def validation_batches(
    spec: BatchSpec, count: int | None, sharding: jax.sharding.NamedSharding, split: str = "validation"
) -> list[dict]:
    """The first ``count`` batches of ``split`` (``None``: all of it, the last batch padded); also the first
    read of the task, so a task that cannot feed the model kind fails here, before anything is written."""
    eval_spec = dataclasses.replace(spec, split=split, shuffle=False, repeat=False)
    try:
        host_batches = itertools.islice(numpy_batches(eval_spec), count)
        eval_batches = [global_batch(_padded(batch, spec.batch_size), sharding) for batch in host_batches]
    except (ValueError, KeyError) as error:
        raise UserError(
            f"task {spec.task!r} cannot feed a {spec.features.name} model ({error}); a decoder_only model reads only "
            "'targets', prefix_lm and encoder_decoder read 'inputs' and 'targets', encoder_only aligned ones"
        ) from error
    if not eval_batches:
        raise UserError(f"the {split} split of task {spec.task!r} yields no examples")
    return eval_batches


def global_batch(batch: Batches, sharding: jax.sharding.NamedSharding) -> Batches:
    """Every host's local rows of ``batch`` (a batch, or a task pair's two) as one global array per feature."""
    return jax.tree.map(lambda rows: jax.make_array_from_process_local_data(sharding, rows), batch)


def evaluate(eval_step: EvalStep, params: dict, batches: list[dict[str, jax.Array]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for batch in batches:
        for name, value in jax.device_get(eval_step(params, batch)).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    tokens = max(totals.get("weight_sum", 0.0), 1.0)
    return {
        "loss": totals["cross_entropy_sum"] / tokens,
        "accuracy": totals["correct_sum"] / tokens,
        "sequence_accuracy": totals["sequence_correct_sum"] / max(totals["sequence_sum"], 1.0),
    }


class CurriculumListener:
    """Feeds the naive level's validation accuracy to the curriculum after each evaluation."""

    def __init__(
        self, batches: CurriculumBatches, count: int, sharding: jax.sharding.NamedSharding, writer: MetricWriter
    ) -> None:
        self._batches, self._count, self._sharding, self._writer = batches, count, sharding, writer
        self._validation: dict[Level, list[dict]] = {}

    def __call__(self, step: int, eval_step: EvalStep, params: dict) -> None:
        curriculum = self._batches.curriculum
        level = curriculum.level
        if level not in self._validation:
            spec = self._batches.spec_for(level)
            self._validation[level] = validation_batches(spec, self._count, self._sharding)
        accuracy = evaluate(eval_step, params, self._validation[level])["accuracy"]
        moved = curriculum.observe(step, accuracy)
        record = {"length": level.length, "nesting": level.nesting, "level_accuracy": accuracy}
        self._writer.write(step, "curriculum", record)
        if moved:
            log.info("step %d: curriculum level %s -> %s (accuracy %.4f)", step, level, curriculum.level, accuracy)
