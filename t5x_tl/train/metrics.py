"""Metric writers: a JSONL file and TensorBoard event files in the work directory.

Only the first process writes, so multi-host runs produce one record per step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import jax


class MetricWriter:
    """Appends ``{"step", "split", "time", ...}`` lines to ``metrics.jsonl`` and scalars to ``tensorboard/``."""

    def __init__(self, workdir: Path) -> None:
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        import tensorflow as tf

        self._tf = tf
        self._jsonl = (workdir / "metrics.jsonl").open("a")
        self._summary = tf.summary.create_file_writer(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        values = {name: float(value) for name, value in scalars.items()}
        self._jsonl.write(json.dumps({"step": step, "split": split, "time": time.time(), **values}) + "\n")
        self._jsonl.flush()
        with self._summary.as_default(step=step):
            for name, value in values.items():
                self._tf.summary.scalar(f"{split}/{name}", value)
        self._summary.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._summary.close()
