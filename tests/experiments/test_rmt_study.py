"""The RMT study driver, reduced: real (short) runs of every variant, the controls, the table in the course's
format, reuse of finished runs, and bad studies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from short_jobs import overridden, shorten, stop_and_continue

from t5x_tl.config import load_config_file
from t5x_tl.errors import UserError
from t5x_tl.experiments import rmt_study

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "rmt_study.py"


def _study(**overrides):
    study = load_config_file(CONFIG)
    study.seeds = (0,)
    study.tasks = ("memorize",)
    study.variants = ("rmt", "no_memory", "full_attention")
    study.eval_examples = 10
    study.eval_batch_size = 4
    shorten(study.train, batch_size=4, steps=2, eval_every=2, log_every=1)
    return overridden(study, overrides)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("rmt")
    rmt_study.run_study(_study(), study_dir)
    return study_dir


def test_every_variant_trains_and_is_scored_with_its_controls(finished):
    runs = {run["variant"]: run for run in json.loads((finished / "results.json").read_text())["runs"]}
    assert set(runs) == {"rmt", "no_memory", "full_attention"}
    assert set(runs["rmt"]) >= {"accuracy", "accuracy_2n", "accuracy_reset", "swap_follows_donor", "swap_keeps_own"}
    assert "accuracy_reset" not in runs["no_memory"]
    for run in runs.values():
        assert all(0 <= run[m] <= 100 for m in rmt_study.METRICS if m in run)


def test_variants_differ_only_in_their_memory_settings():
    study = _study()
    jobs = {v: rmt_study.job_config(study, "memorize", v, 3) for v in rmt_study.VARIANTS}
    assert jobs["rmt"].model.rmt.memory_size == 10 and jobs["no_memory"].model.rmt.memory_size == 0
    assert jobs["full_attention"].model.rmt.segment_size == 0
    assert jobs["bptt_1"].model.rmt.bptt_depth == 1 and not jobs["no_write"].model.rmt.write
    assert all(job.seed == 3 and job.data.inputs_length == 128 for job in jobs.values())
    assert len({job.data.task for job in jobs.values()}) == 1


def test_the_table_has_the_courses_columns_and_chance(finished):
    with (finished / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["rmt", "no_memory", "full_attention"]
    assert [(r["segment_size"], r["memory_size"], r["n_segments"]) for r in rows] == [
        ("32", "10", "4"),
        ("32", "0", "4"),
        ("128", "0", "1"),
    ]
    assert {r["chance"] for r in rows} == {"25.0"}
    table = (finished / "results.md").read_text()
    assert "| task | model | segment_size | memory_size | n_segments |" in table
    assert (finished / "rmt.png").stat().st_size > 0


def test_a_rerun_reuses_finished_runs_and_redoes_a_deleted_one(finished):
    result = finished / "runs" / "memorize" / "no_memory" / "seed0" / "result.json"
    before = {p: p.stat().st_mtime_ns for p in finished.glob("runs/*/*/*/result.json") if p != result}
    result.unlink()
    rmt_study.run_study(_study(), finished)
    assert result.exists()
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_stopped_run_stops_the_study_and_the_same_call_continues_it(finished):
    run_dir = finished / "runs" / "memorize" / "rmt" / "seed0"
    before, after = stop_and_continue(lambda: rmt_study.run_study(_study(), finished), finished, run_dir)
    assert after == before


def test_donors_are_the_next_row_of_each_batch():
    answers = np.array([10, 11, 12, 13, 14])
    np.testing.assert_array_equal(rmt_study._donors(answers, 2), [11, 10, 13, 12, 14])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(seeds=()), "seed"),
        (dict(tasks=("copy",)), "config.tasks"),
        (dict(variants=("no_memory",)), "must include 'rmt'"),
        (dict(variants=("rmt", "wider")), "must include 'rmt'"),
        (dict(eval_examples=1), "eval_examples"),
    ],
)
def test_bad_studies_are_refused(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        rmt_study.run_study(_study(**overrides), tmp_path)
    assert not (tmp_path / "study.json").exists()


def test_a_directory_of_another_study_is_refused(finished):
    with pytest.raises(UserError, match="another config"):
        rmt_study.run_study(_study(eval_examples=12), finished)
