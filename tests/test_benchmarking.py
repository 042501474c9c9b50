"""The benchmarks' timing helper: warm-up calls are not timed, and the median resists one slow outlier."""

from __future__ import annotations

import time

from t5x_tl.benchmarking import median_seconds


def test_median_skips_warmup_and_ignores_an_outlier():
    calls = []

    def fn() -> None:
        calls.append(None)
        time.sleep(0.2 if len(calls) in (1, 3) else 0.001)  # the warm-up call and one timed call are slow

    assert median_seconds(fn, repeats=5, warmup=1) < 0.05
    assert len(calls) == 6
