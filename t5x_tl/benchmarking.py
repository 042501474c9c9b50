"""What the ``scripts/bench_*.py`` benchmarks share: medians, because this shared machine's times drift, and
the PyTorch settings that make a side-by-side run compare like with like."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (compilation, caches)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
