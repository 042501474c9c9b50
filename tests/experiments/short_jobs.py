"""Study configs cut to a few steps for the study tests: real runs, seconds each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml_collections import ConfigDict


def shorten(job: ConfigDict, *, batch_size: int, steps: int, eval_every: int, log_every: int) -> None:
    """A training job of ``steps`` steps of ``batch_size``, one validation batch, a checkpoint at the end."""
    job.data.batch_size = batch_size
    job.train.steps, job.train.eval_every, job.train.eval_batches, job.train.log_every = steps, eval_every, 1, log_every
    job.checkpoint.every = steps


def overridden(study: ConfigDict, overrides: Mapping[str, Any]) -> ConfigDict:
    """``study`` with keys replaced (the tests' bad values); a dotted key names a nested one."""
    for key, value in overrides.items():
        *parents, name = key.split(".")
        node = study
        for parent in parents:
            node = node[parent]
        node[name] = value
    return study
