"""The ahead-of-time pod simulation (``t5x_tl.train.aot``, ``scripts/aot_pod_memory.py``) on the 4 forced CPU
devices of the test session: a tiny T5 compiled from shapes under FSDP and FSDP + tensor parallelism."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from t5x_tl.errors import UserError
from t5x_tl.models.sizes import padded_vocab_size, t5_config
from t5x_tl.train.aot import PodSetup, analyze, mesh_axes, pod_config
from t5x_tl.train.flops import train_step_flops

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import aot_pod_memory

TINY = dict(size="tiny", devices=4, batch_size=8, inputs_length=32, targets_length=8, vocab_size=500)


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    return {
        "fsdp": analyze(PodSetup(preset="fsdp", remat="none", **TINY)),
        "fsdp_tensor_parallel": analyze(PodSetup(preset="fsdp_tensor_parallel", remat="full", model_axis=2, **TINY)),
    }


def test_memory_collectives_and_flops_per_device(results):
    expected_flops = train_step_flops(t5_config("tiny", padded_vocab_size(500)), 8, 32, 8) / 4
    for preset, result in results.items():
        memory = result["memory_bytes_per_device"]
        for field in ("argument", "output", "temp", "total"):
            assert memory[field] > 0, (preset, field)
        assert memory["total"] == memory["argument"] + memory["output"] + memory["temp"] - memory["alias"]
        # the donated state comes back in place; the batch (also donated, int32) is in the arguments alone
        assert 0 < memory["alias"] <= memory["output"] and memory["argument"] > result["state_bytes_per_device"]
        assert result["flops_per_device"] == pytest.approx(expected_flops, rel=1e-12)
        assert result["vocab_size_padded"] == 512
    fsdp, hybrid = results["fsdp"], results["fsdp_tensor_parallel"]
    assert fsdp["mesh"] == dict(replica=1, data=1, fsdp=4, model=1)
    assert hybrid["mesh"] == dict(replica=1, data=1, fsdp=2, model=2)
    # FSDP gathers each layer's parameter shards (forward and backward): more gathers than layers
    assert fsdp["collectives_per_step"]["all-gather"]["count"] > 4
    assert fsdp["collective_bytes_per_step"] > 0
    # tensor parallelism all-reduces activations over the model axis in every layer: more all-reduces than FSDP's
    # gradient reductions; and it gathers parameters over 2 fsdp shards only, half of each (the rest is on `model`)
    hybrid_stats, fsdp_stats = hybrid["collectives_per_step"], fsdp["collectives_per_step"]
    assert hybrid_stats["all-reduce"]["count"] > fsdp_stats["all-reduce"]["count"]
    assert hybrid_stats["all-gather"]["bytes"] < fsdp_stats["all-gather"]["bytes"]
    # the parameters are split 4 ways under both meshes (embed over fsdp, heads/MLP/vocabulary over model)
    assert hybrid["parameter_bytes_per_device"] < hybrid["parameters"] * 4 / 2


def test_tables_name_each_configuration_and_chip(results):
    rows = list(results.values())
    memory, fit = aot_pod_memory.memory_table(rows), aot_pod_memory.fit_table(rows)
    assert memory.count("\n| tiny | 4 |") == 2 and "fsdp 2 x model 2" in memory
    assert fit.count("yes (") == 8  # a tiny step fits every chip
    assert all(aot_pod_memory.fits(r)["TPU v5e"] for r in rows)
    assert aot_pod_memory.summary_table(rows).count("| all |") == 2


def test_unknown_size_preset_or_remat_is_a_clear_error():
    base = PodSetup(preset="fsdp", **TINY)
    with pytest.raises(UserError, match=r"model\.size='huge'.*choose one of"):
        pod_config(dataclasses.replace(base, size="huge"))
    with pytest.raises(UserError, match=r"partitioning\.preset='zero3'.*choose one of"):
        pod_config(dataclasses.replace(base, preset="zero3"))
    with pytest.raises(UserError, match=r"remat_policy='some'.*choose one of"):
        pod_config(dataclasses.replace(base, remat="some"))
    with pytest.raises(UserError, match="does not divide"):
        pod_config(dataclasses.replace(base, preset="fsdp_tensor_parallel", model_axis=3))
    with pytest.raises(UserError, match="no tensor parallelism"):
        mesh_axes(dataclasses.replace(base, model_axis=2))
    assert aot_pod_memory.main(["--sizes", "tiny", "--devices", "4", "--batch", "6"]) == 2  # 6 rows over 4 shards
    with pytest.raises(SystemExit):
        aot_pod_memory.main(["--sizes", "huge"])
