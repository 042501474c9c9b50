"""Training progress read one step late, so the host never waits for the device while it has work to queue.

A step's metrics are read (and its progress counted) once the next step has been dispatched: the device then
has that next step to run while the host blocks, and the rates count steps as the device finishes them, not
as they are queued (which showed bursts, then a stall at every log step).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jax
from tqdm import tqdm

from t5x_tl.train.metrics import MetricWriter


class LaggedProgress:
    """Logs train metrics every ``log_every`` steps and at ``last_step``, one step behind dispatch."""

    def __init__(
        self,
        writer: MetricWriter,
        bar: tqdm,
        *,
        log_every: int,
        last_step: int,
        tokens_per_step: int,
        flops_per_step: float,
        peak_flops: float | None,
    ) -> None:
        self.writer, self.bar = writer, bar
        self.log_every, self.last_step = log_every, last_step
        self.tokens_per_step, self.flops_per_step, self.peak_flops = tokens_per_step, flops_per_step, peak_flops
        self._pending: tuple[int, Mapping[str, jax.Array]] | None = None
        self._window_start, self._window_steps = time.perf_counter(), 0

    def dispatched(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        """Records a dispatched step and completes the one before it."""
        self.flush()
        self._pending = (step, metrics)

    def flush(self) -> None:
        """Completes the pending step (waits for the device to finish it)."""
        if self._pending is None:
            return
        (step, metrics), self._pending = self._pending, None
        metrics = jax.device_get(metrics)
        self._window_steps += 1
        self.bar.update(1)
        if step % self.log_every == 0 or step == self.last_step:
            self._log(step, metrics)

    def _log(self, step: int, metrics: Mapping) -> None:
        scalars = {name: float(value) for name, value in metrics.items()}
        elapsed = time.perf_counter() - self._window_start
        scalars["tokens_per_second"] = self.tokens_per_step * self._window_steps / elapsed
        scalars["model_flops_per_second"] = self.flops_per_step * self._window_steps / elapsed
        if self.peak_flops:
            scalars["mfu"] = scalars["model_flops_per_second"] / self.peak_flops
        self.writer.write(step, "train", scalars)
        self.bar.set_postfix(loss=f"{scalars['loss']:.3f}", tok_s=f"{scalars['tokens_per_second']:.0f}")
        self._window_start, self._window_steps = time.perf_counter(), 0
