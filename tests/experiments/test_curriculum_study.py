"""The curriculum study driver, reduced: real runs, the table, the chart, resuming, and bad studies."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
from short_jobs import overridden, shorten, stop_and_continue

from t5x_tl.config import load_config_file
from t5x_tl.data.curriculum.strategies import Level
from t5x_tl.errors import UserError
from t5x_tl.experiments.curriculum_study import feature_lengths, run_study, summarise, wins

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "curriculum_study.py"


def _study(**overrides):
    study = load_config_file(CONFIG)
    study.family = "copy"
    study.targets = ((3, 1),)
    study.strategies = ("baseline", "naive", "combined")
    study.seeds = (0, 1)
    shorten(study.train, batch_size=8, steps=4, eval_every=2, log_every=2)
    study.train.curriculum.patience = 1
    return overridden(study, overrides)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("study")
    rows = run_study(_study(), study_dir)
    assert [r["strategy"] for r in rows] == ["baseline", "naive", "combined"]
    return study_dir


def test_the_study_writes_its_table_csv_json_and_chart(finished):
    results = json.loads((finished / "results.json").read_text())
    assert len(results["runs"]) == 6
    assert all(0 <= r["character_accuracy"] <= 100 and 0 <= r["sequence_accuracy"] <= 100 for r in results["runs"])
    assert all(r["steps"] == 4 for r in results["runs"])
    table = (finished / "results.md").read_text()
    assert "| 3 | 1 | combined |" in table and "combined beats naive at (length 3, nesting 1) on" in table
    with (finished / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["strategy"] for r in rows] == ["baseline", "naive", "combined"]
    assert float(rows[0]["vs_baseline"]) == 0.0
    assert (finished / "relative_to_baseline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    naive = [r for r in results["runs"] if r["strategy"] == "naive"]
    assert all(r["curriculum"]["history"][0] == [0, 1, 1] for r in naive)


def test_rerunning_reuses_finished_runs(finished):
    metrics = sorted(finished.glob("runs/*/*/*/metrics.jsonl"))
    before = [p.stat().st_mtime_ns for p in metrics]
    run_study(_study(), finished)
    assert [p.stat().st_mtime_ns for p in metrics] == before, "no run trained again"


def test_a_stopped_run_stops_the_study_and_the_same_call_continues_it(finished):
    (run_dir,) = finished.glob("runs/*/naive/seed1")
    before, after = stop_and_continue(lambda: run_study(_study(), finished), finished, run_dir)
    assert after["character_accuracy"] == before["character_accuracy"] and after["steps"] == 4


def test_a_directory_of_another_study_is_refused(finished):
    record = (finished / "study.json").read_text()
    with pytest.raises(UserError, match="holds a study of another config"):
        run_study(_study(seeds=(0, 1, 2)), finished)
    assert (finished / "study.json").read_text() == record


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"strategies": ("naive", "combined")}, "must include 'baseline'"),
        ({"strategies": ("baseline", "greedy")}, "choose from"),
        ({"targets": ((70, 1),)}, "use an integer in 1..64"),
        ({"family": "program", "targets": ((2, 9),)}, "nesting=9 is outside"),
        ({"seeds": ()}, "at least one"),
    ],
)
def test_bad_studies_are_clear_errors(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        run_study(_study(**overrides), tmp_path / "study")
    assert not (tmp_path / "study").exists()


def _result(strategy: str, seed: int, char: float) -> dict:
    return {"target": [2, 2], "strategy": strategy, "seed": seed, "character_accuracy": char,
            "sequence_accuracy": char / 2, "seconds": 60.0}  # fmt: skip


def test_summary_pairs_each_strategy_with_the_baseline_of_the_same_seed():
    results = [_result("baseline", 0, 50), _result("baseline", 1, 60), _result("combined", 0, 55),
               _result("combined", 1, 62), _result("naive", 0, 40), _result("naive", 1, 70)]  # fmt: skip
    rows = {r["strategy"]: r for r in summarise(copy.deepcopy(results))}
    assert rows["combined"]["vs_baseline"] == pytest.approx(3.5)
    assert rows["combined"]["vs_baseline_std"] == pytest.approx(2.1213, abs=1e-3)
    assert rows["naive"]["character_accuracy"] == 55 and rows["naive"]["minutes_per_run"] == 1.0
    assert wins(results, "combined", "naive") == {(2, 2): (1, 2)}


def test_feature_lengths_hold_every_evaluation_example():
    inputs, targets = feature_lengths("program", Level(2, 2))
    assert inputs % 8 == 0 and targets % 8 == 0
    assert 72 <= inputs <= 88 and targets >= 6
