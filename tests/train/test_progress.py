"""Train progress read one step late: a step counts (and logs) only once the next one is dispatched."""

from __future__ import annotations

import jax.numpy as jnp

from t5x_tl.train.progress import LaggedProgress


class _Writer:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str, dict]] = []

    def write(self, step: int, split: str, scalars: dict) -> None:
        self.lines.append((step, split, dict(scalars)))


class _Bar:
    def __init__(self) -> None:
        self.n, self.postfix = 0, {}

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix(self, **postfix: str) -> None:
        self.postfix = postfix


def test_each_step_completes_when_the_next_is_dispatched_and_logs_with_its_own_metrics():
    writer, bar = _Writer(), _Bar()
    progress = LaggedProgress(
        writer, bar, log_every=2, last_step=5, tokens_per_step=100, flops_per_step=1e6, peak_flops=1e9
    )
    for step in range(1, 6):
        progress.dispatched(step, {"loss": jnp.float32(step)})
        assert bar.n == step - 1  # the newest step is still in flight
        assert [line[0] for line in writer.lines] == [s for s in (2, 4) if s < step]
    progress.flush()
    progress.flush()  # nothing pending: a no-op
    assert bar.n == 5
    assert [(step, scalars["loss"]) for step, _, scalars in writer.lines] == [(2, 2.0), (4, 4.0), (5, 5.0)]
    for _, split, scalars in writer.lines:
        assert split == "train" and scalars["tokens_per_second"] > 0
        assert scalars["mfu"] == scalars["model_flops_per_second"] / 1e9
    assert bar.postfix["loss"] == "5.000"
