"""The benchmarks' shared parts: warm-up calls are not timed, the median resists one slow outlier, sides compared
are timed in turn, and PyTorch runs on the terms XLA:CPU runs on."""

from __future__ import annotations

import os
import time

import jax
import numpy as np
import torch

from t5x_tl.benchmarking import interleaved_median_seconds, median_seconds, run_torch_as_xla_cpu_runs


def test_median_skips_warmup_and_ignores_an_outlier():
    calls = []

    def fn() -> None:
        calls.append(None)
        time.sleep(0.2 if len(calls) in (1, 3) else 0.001)  # the warm-up call and one timed call are slow

    assert median_seconds(fn, repeats=5, warmup=1) < 0.05
    assert len(calls) == 6


def test_sides_are_timed_in_turn_so_a_slowdown_falls_on_both():
    calls: list[str] = []
    slow_from = 6  # the machine slows down for good partway through (two warm-up calls, then 2 of 4 rounds)

    def side(name: str):
        def fn() -> None:
            calls.append(name)
            time.sleep(0.05 if len(calls) > slow_from else 0.001)

        return fn

    seconds = interleaved_median_seconds({"a": side("a"), "b": side("b")}, repeats=4, warmup=1)
    assert calls == ["a", "b"] * 5
    # run one after the other, "b" would take every slow call and "a" none; in turn, each takes two of four
    assert 0.02 < seconds["a"] < 0.06 and 0.02 < seconds["b"] < 0.06


def test_torch_is_given_the_denormal_flushing_that_xla_cpu_applies():
    small, tenth = np.float32(1e-38), np.float32(0.1)  # float32's smallest normal number is 1.2e-38
    assert small * tenth != 0.0  # the exact product, 1e-39, is denormal
    assert jax.jit(lambda x: x * tenth)(small) == 0.0  # XLA:CPU flushes it
    threads = torch.get_num_threads()
    try:
        torch.set_flush_denormal(False)
        assert torch.tensor([small]).mul(tenth).item() != 0.0  # PyTorch's default keeps it
        run_torch_as_xla_cpu_runs()
        assert torch.tensor([small]).mul(tenth).item() == 0.0
        assert torch.get_num_threads() == os.cpu_count()
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def test_the_curriculum_data_benchmark_runs_and_reports_every_rate(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_curriculum_data.py"
    out = tmp_path / "bench.json"
    args = [sys.executable, str(script), "--seconds=0.2", "--steps=1", "--batch=4", f"--out={out}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["rates"]) == {
        "generator programs/s",
        "train-split programs/s",
        "SeqIO task examples/s",
        "baseline curriculum examples/s",
        "combined curriculum examples/s",
    }
    assert all(rate > 0 for rate in report["rates"].values()) and report["train_step_s"] > 0
    assert "combined curriculum feeds the step" in result.stdout
