"""Training with a curriculum: the level moves with validation accuracy, and an interrupted run resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from t5x_tl.config import load_config_file
from t5x_tl.errors import UserError
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.loop import train

JOB = Path(__file__).resolve().parents[2] / "configs" / "learning_to_execute.py"


def _config(**overrides):
    cfg = load_config_file(JOB)
    small = {
        "curriculum.task": "lte_copy_l{length}",
        "curriculum.length": 3,
        "curriculum.nesting": 1,
        "curriculum.strategy": "naive",
        "curriculum.patience": 0,
        "curriculum.advance_at": 0.0,  # move on at every evaluation
        "data.inputs_length": 8,
        "data.targets_length": 8,
        "data.batch_size": 8,
        "optimizer.schedule": "constant",
        "train.steps": 6,
        "train.eval_every": 1,
        "train.eval_batches": 1,
        "train.log_every": 1,
        "train.microbatches": 2,  # the loop path of gradient accumulation
        "checkpoint.every": 3,
    }
    for key, value in {**small, **overrides}.items():
        group, name = key.split(".")
        cfg[group][name] = value
    return cfg


def _records(workdir: Path, split: str) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("straight")
    result = train(_config(), workdir)
    assert result.step == 6 and result.data_state["curriculum"]["length"] == 3
    return workdir


def test_the_naive_level_moves_at_each_evaluation_and_is_logged(straight):
    levels = [(r["step"], r["length"]) for r in _records(straight, "curriculum")]
    assert levels == [(1, 1), (2, 2), (3, 3), (4, 3), (5, 3), (6, 3)], "stops at the target"
    validation = _records(straight, "validation")
    assert all(0.0 <= r["sequence_accuracy"] <= r["accuracy"] + 1e-9 or r["accuracy"] == 0 for r in validation)
    _, _, metadata = read_params(straight / "checkpoints")
    assert metadata["data_state"]["curriculum"]["history"] == [[0, 1, 1], [1, 2, 1], [2, 3, 1]]
    assert metadata["data_state"]["batches"] == 6


def test_a_run_interrupted_and_resumed_ends_bit_identical(straight, tmp_path):
    first = train(_config(**{"train.steps": 3}), tmp_path)
    assert first.step == 3
    second = train(_config(), tmp_path)
    assert second.step == 6 and second.data_state == train_state(straight)
    _, resumed, _ = read_params(tmp_path / "checkpoints")
    _, uninterrupted, _ = read_params(straight / "checkpoints")
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("part", ["state", "metadata"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(straight, tmp_path, caplog, part):
    train(_config(), tmp_path)
    for path in (tmp_path / "checkpoints" / "6" / part).rglob("*"):
        if path.is_file():
            path.write_bytes(b"damaged")
    with caplog.at_level("WARNING", logger="t5x_tl"):
        resumed = train(_config(), tmp_path)
    assert "Checkpoint step 6 is unreadable" in caplog.text and "falling back to the previous step" in caplog.text
    assert (tmp_path / "checkpoints" / "6.unreadable").is_dir(), "kept for inspection, not deleted"
    assert resumed.step == 6 and resumed.data_state == train_state(straight)
    _, params, _ = read_params(tmp_path / "checkpoints")
    _, uninterrupted, _ = read_params(straight / "checkpoints")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fine_tuning_starts_from_the_pretrained_parameters_with_another_optimizer(straight, tmp_path, caplog):
    overrides = {"checkpoint.init_from": str(straight), "optimizer.name": "adafactor", "train.steps": 1}
    with caplog.at_level("INFO", logger="t5x_tl"):
        train(_config(**overrides), tmp_path)
    assert f"Warm start from {straight}: loaded " in caplog.text and ", 0 initialised fresh, " in caplog.text
    pretrained = _records(straight, "validation")[-1]["loss"]
    assert _records(tmp_path, "validation")[0]["loss"] == pytest.approx(pretrained, rel=1e-6)


def test_a_mapped_subset_loads_and_the_rest_starts_fresh(straight, tmp_path, caplog):
    mapping = ((r"decoder/.*", "not_pretrained"),)
    overrides = {"checkpoint.init_from": str(straight / "checkpoints"), "checkpoint.init_mapping": mapping}
    with caplog.at_level("INFO", logger="t5x_tl"):
        train(_config(**{**overrides, "train.steps": 1}), tmp_path)
    assert "  fresh   decoder/final_norm/scale (no pretrained not_pretrained)" in caplog.text
    assert "  ignored decoder/final_norm/scale" in caplog.text and "  loaded  encoder/" in caplog.text


def train_state(workdir: Path) -> dict:
    return read_params(workdir / "checkpoints")[2]["data_state"]


def test_resuming_with_another_curriculum_is_refused_and_nothing_is_written(straight):
    before = {p: p.stat().st_mtime_ns for p in (straight / "checkpoints").rglob("*")}
    with pytest.raises(UserError, match="resume with the config that wrote it"):
        train(_config(**{"curriculum.strategy": "combined", "train.steps": 8}), straight)
    assert {p: p.stat().st_mtime_ns for p in (straight / "checkpoints").rglob("*")} == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"curriculum.patience": 7, "curriculum.advance_at": 1.0}, "patience=7 can never fire"),
        ({"curriculum.patience": 0, "curriculum.advance_at": 2.0}, "accuracy never exceeds 1"),
        ({"curriculum.task": "lte_copy_l3"}, r"holding \{length\}|with \{length\}"),
        ({"data.task": "lte_copy_l3"}, "leave data.task empty"),
        ({"curriculum.length": 70}, "'lte_copy_l70', which is not a registered SeqIO task"),
        ({"curriculum.task": "my_l{length}"}, "'my_l3', which is not a registered SeqIO task"),
        ({"curriculum.strategy": "greedy"}, "choose one of \\('none', 'baseline'"),
        ({"train.microbatches": 3}, "divisible by config.train.microbatches=3 times the batch's mesh shards"),
        ({"partitioning.data": 3}, r"config.partitioning: mesh \(1, 3, 1, 1\) does not divide the 4 available devices"),
        ({"partitioning.preset": "zero3"}, "config.partitioning.preset='zero3' is invalid: choose one of"),
        ({"checkpoint.init_from": "/nonexistent/run"}, "no pretrained checkpoint at /nonexistent/run"),
        ({"checkpoint.init_mapping": (("(", "x"),)}, r"init_mapping rule \('\(', 'x'\) is invalid"),
        ({"train.microbatches": 0}, "config.train.microbatches=0 is invalid: it must be a positive integer"),
    ],
)
def test_bad_configs_are_clear_errors_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
