"""What the ``scripts/bench_*.py`` benchmarks share: medians of interleaved calls, because this shared machine's
speed drifts (its matmul peak measured 270 and 360 GFLOP/s an hour apart), and the PyTorch settings that make
a side-by-side run compare like with like."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (compilation, caches)."""
    return interleaved_median_seconds({"fn": fn}, repeats, warmup)["fn"]


def interleaved_median_seconds(
    fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time of each of ``fns``, called in turn in every round, so that a drift in the machine's
    speed during the run falls on every side alike rather than on whichever ran last."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def run_torch_as_xla_cpu_runs() -> None:
    """Gives PyTorch the CPU terms XLA's CPU client runs on: every core, and denormal floats flushed to zero.

    XLA:CPU flushes denormals; PyTorch computes with them by default, at a large cost per operation. Training
    with AdamW drifts second moments into that range within a few steps: transformers' T5-small step here went
    from 4.6 s to 12.9 s over its first four steps, which credited XLA with a 1.4-2x lead it had not earned.
    """
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if not torch.set_flush_denormal(True):
        raise RuntimeError("PyTorch cannot flush denormals on this CPU, so its timings would not match XLA's terms")
