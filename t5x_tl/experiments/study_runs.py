"""How every study driver gets one run's result: the saved one of a finished run, or the run trained (resumed from
its checkpoint where an earlier attempt was stopped or killed), scored and saved atomically. A run stopped by a
signal stops its study with :class:`RunStopped`; rerunning the study's command continues where it stopped."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.experiments.study_files import read_result, write_json
from t5x_tl.train.loop import TrainResult, train
from t5x_tl.train.trainee import ONE_MODEL, Trainee

log = logging.getLogger("t5x_tl")
RESULT = "result.json"

# score(trained, training seconds) -> the run's result (JSON); the run's checkpoints are in its directory
Score = Callable[[TrainResult, float], dict]


class RunStopped(Exception):
    """A signal stopped a study's run after it saved its checkpoint; the study stops too."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        super().__init__(run_dir, step, signum)  # the arguments, so that it pickles out of a worker process
        self.run_dir, self.step, self.signum = run_dir, step, signum

    def __str__(self) -> str:
        return (
            f"{signal.Signals(self.signum).name} stopped the run in {self.run_dir} at step {self.step}; its checkpoint "
            "is saved and every finished run is kept"
        )


def run_or_reuse(run_dir: Path, cfg: ConfigDict, score: Score, trainee: Trainee = ONE_MODEL) -> dict:
    """``run_dir``'s result: read back when the run finished, else trained (or resumed) by ``cfg`` and scored.
    The result is returned as a later reuse reads it (JSON: integer keys become strings)."""
    if (done := read_result(run_dir / RESULT)) is not None:
        return done
    log.info("training %s", run_dir)
    start = time.perf_counter()
    trained = train(cfg, run_dir, trainee)
    if trained.stopped_by is not None:
        raise RunStopped(run_dir, trained.step, trained.stopped_by)
    result = json.loads(json.dumps(score(trained, time.perf_counter() - start)))
    write_json(run_dir / RESULT, result)
    return result
