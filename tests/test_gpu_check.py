"""The prepared GPU check (scripts/gpu_check.py): its CPU dry run passes every check it can run, skips cuDNN's with
a reason, and writes its figures; the batch search around out-of-memory and the packed test batch are right."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dry_run_passes_skips_cudnn_and_writes_the_figures(gpu_check, tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ)
    # tiny programs: LLVM's optimisations off halve their compile time (the checks compare like with like)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    args = [sys.executable, str(SCRIPT), "--dry_run", f"--json={out}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for expected in (
        "PASS parity float32: loss rel diff",
        "PASS parity bfloat16: loss rel diff",
        "SKIP attention cudnn: no NVIDIA GPU",
        "PASS attention dot_product vs xla encoder",
        "PASS attention dot_product vs xla decoder",
        "PASS mfu base/auto: batch 8 x 32/8",
        "PASS mfu base/xla: batch 8 x 32/8",
        "PASS mfu large/auto: batch 8 x 32/8",
        "SKIP mfu base/auto target: MFU target 45% needs a peak",
    ):
        assert any(line.startswith(expected) for line in lines), f"{expected!r} not in:\n{result.stdout}"
    report = json.loads(out.read_text())
    assert report["summary"][gpu_check.FAIL] == 0 and report["summary"][gpu_check.ERROR] == 0
    assert report["meta"]["mode"].startswith("dry_run")
    parity = report["checks"]["parity"]
    assert parity["float32"]["matmul_precision"] == "highest"
    assert parity["bfloat16"]["loss_rel_diff"] < 2e-2 and parity["bfloat16"]["finite"]
    attention = report["checks"]["attention"]
    assert attention["setup"]["fused"] == "dot_product"
    assert attention["encoder"]["encoder_bias/embedding"]["norm_rel_err"] < 2e-2  # the relative-bias gradient
    base = report["checks"]["mfu"]["base/auto"]
    assert base["batch"] == 8 and base["step_s_median"] > 0 and len(base["step_s_all"]) == 2
    assert base["mfu"] is None  # no data-sheet peak for a CPU
    assert report["checks"]["mfu"]["base/xla"]["batch"] == 8  # started at base/auto's batch
    assert report["checks"]["mfu"]["nanoT5_published"]["step_s"] == 0.56


def test_the_batch_search_skips_sizes_predicted_not_to_fit(gpu_check):
    sizes = (512, 384, 256, 128, 64)
    # state 10 bytes (arguments 10 + outputs 10, the donated 10 aliased), activations 200 bytes at batch 512
    memory = SimpleNamespace(argument_size_in_bytes=10, output_size_in_bytes=10, alias_size_in_bytes=10,
                             temp_size_in_bytes=200)  # fmt: skip
    assert gpu_check.needed_bytes(memory) == 210
    assert gpu_check.predicted_bytes(memory, 512, 256) == 110
    assert gpu_check.next_batch_to_try(sizes, 0, memory, limit=100) == 3  # 384: 160, 256: 110, 128: 60 <= 92
    assert gpu_check.next_batch_to_try(sizes, 0, memory, limit=1000) == 1  # a runtime OOM: the next size down
    assert gpu_check.next_batch_to_try(sizes, 0, None, limit=None) == 1  # nothing to predict from
    assert gpu_check.next_batch_to_try(sizes, 0, memory, limit=5) == 4  # nothing fits: the smallest is tried
    assert gpu_check.next_batch_to_try(sizes, 4, memory, limit=5) == 5  # the list is exhausted


def test_out_of_memory_errors_are_told_from_other_errors(gpu_check):
    oom = RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 96.00GiB.")
    assert gpu_check.is_out_of_memory(oom)
    assert not gpu_check.is_out_of_memory(ValueError("cuDNN does not support this configuration"))


def test_the_packed_batch_has_packing_padding_and_shifted_decoder_inputs(gpu_check):
    batch = gpu_check.packed_batch(4, 32, 8, vocab=100, seed=0)
    segments = batch["encoder_segment_ids"]
    assert segments.max(axis=1).tolist() == [1, 2, 3, 1]  # 1, 2 or 3 examples a row
    assert (segments[0] == 0).sum() == 8 and (segments[1] == 0).sum() == 0  # every other row ends in padding
    assert np.array_equal(batch["encoder_input_tokens"] > 0, segments > 0)
    targets, inputs, decoder_segments = (batch[k] for k in ("decoder_target_tokens", "decoder_input_tokens",
                                                            "decoder_segment_ids"))  # fmt: skip
    assert np.array_equal(batch["decoder_loss_weights"] > 0, decoder_segments > 0)
    for row in range(4):
        for segment in range(1, decoder_segments[row].max() + 1):
            where = np.flatnonzero(decoder_segments[row] == segment)
            assert inputs[row, where[0]] == 0  # each example's decoder starts from token 0
            assert np.array_equal(inputs[row, where[1:]], targets[row, where[:-1]])
