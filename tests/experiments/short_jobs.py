"""Study configs cut to a few steps for the study tests: real runs, seconds each."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from ml_collections import ConfigDict

from t5x_tl.experiments.study_runs import RunStopped
from t5x_tl.train import loop


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


@contextlib.contextmanager
def sigterm_after(steps: int) -> Iterator[None]:
    """Every training run inside stops as if SIGTERM arrived once it had trained ``steps`` more steps (0: before
    its first; a finished run restored at its last step reports the stop too)."""

    class StopAfter(loop.StopRequest):
        @property
        def signal(self) -> int | None:  # the loop reads it before every step and once at the end
            self.reads = getattr(self, "reads", 0) + 1
            return signal.SIGTERM if self.reads > steps else None

        @signal.setter
        def signal(self, value: int | None) -> None:
            pass

    with mock.patch.object(loop, "StopRequest", StopAfter):
        yield


def stop_and_continue(run_study: Callable[[], object], study_dir: Path, run_dir: Path) -> tuple[dict, dict]:
    """The study policy on a stop, cheaply: ``run_dir``'s finished run loses its result and, restored at its last
    step, reports a stop, which stops the study with RunStopped naming it; the same call again finishes that run
    and reuses every other. Returns the run's result before and after."""
    result = run_dir / "result.json"
    before = json.loads(result.read_text())
    result.unlink()
    kept = {path: path.stat().st_mtime_ns for path in study_dir.glob("**/result.json")}
    with sigterm_after(0), pytest.raises(RunStopped, match=rf"SIGTERM stopped the run in {re.escape(str(run_dir))} "):
        run_study()
    assert not result.exists()
    run_study()
    assert {path: path.stat().st_mtime_ns for path in kept} == kept, "a finished run does not run again"
    return before, json.loads(result.read_text())
