"""A training checkpoint scored on a whole split of its job's task, teacher-forced: the figures the training loop
validates with, so that a study compares runs on held-out data by the same measure."""

from __future__ import annotations

from pathlib import Path

import jax
from ml_collections import ConfigDict

from t5x_tl.config import validate
from t5x_tl.errors import UserError
from t5x_tl.train.checkpoint_record import recorded_signature
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.evaluation import evaluate, validation_batches
from t5x_tl.train.job import resolve_job
from t5x_tl.train.state import abstract_model
from t5x_tl.train.step import make_eval_step


def evaluate_checkpoint(cfg: ConfigDict, workdir: str | Path, split: str = "test") -> dict[str, float]:
    """Teacher-forced loss, token accuracy and sequence accuracy (= greedy exact match) of the newest checkpoint
    in ``workdir`` on the whole ``split`` of the config's task (with a curriculum: the target level's task)."""
    validate(cfg)
    job = resolve_job(cfg, split, pack=False)  # an example is a sequence
    _, params, saved = read_params(Path(workdir) / "checkpoints")
    if recorded_signature(saved) != job.model.signature():
        raise UserError(f"{workdir} holds a checkpoint of another model shape {recorded_signature(saved)}")
    batches = validation_batches(job.spec, None, job.data_sharding, split=split)
    eval_step = jax.jit(make_eval_step(abstract_model(job.model.build)[0], cfg.train.z_loss, job.model.kind))
    with jax.set_mesh(job.mesh):
        return evaluate(eval_step, params, batches)
