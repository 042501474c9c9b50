"""The in-context-learning study driver, reduced: a real (short) training run, N-shot evaluation by K with true
and shuffled labels, the table and chart, reuse of finished runs, and bad studies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from short_jobs import overridden, shorten, stop_and_continue

from t5x_tl.config import load_config_file
from t5x_tl.data.downstream import icl_mappings
from t5x_tl.errors import UserError
from t5x_tl.experiments.icl_study import run_study

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "icl_study.py"


def _study(**overrides):
    study = load_config_file(CONFIG)
    study.seeds = (0,)
    study.shots = (0, 1, 4)
    study.pool_size = 4
    study.eval_episodes = 12
    study.batch_size = 8
    shorten(study.train, batch_size=4, steps=3, eval_every=3, log_every=1)
    return overridden(study, overrides)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    study_dir = tmp_path_factory.mktemp("icl")
    run_study(_study(), study_dir)
    return study_dir


def test_the_study_writes_accuracy_by_k_with_true_and_shuffled_labels(finished):
    results = json.loads((finished / "results.json").read_text())
    (run,) = results["runs"]
    names = [spec.name for spec in icl_mappings.DEFAULT_SPECS]
    assert sorted(run["scores"]) == sorted(f"{n}/{labels}" for n in names for labels in ("true", "shuffled"))
    for name in names:
        true, shuffled = run["scores"][f"{name}/true"], run["scores"][f"{name}/shuffled"]
        assert sorted(true, key=int) == ["0", "1", "4"]
        assert true["0"] == shuffled["0"]  # no demonstration, nothing to shuffle: the same prompts
        assert all(0 <= v <= 100 for by_k in (true, shuffled) for m in by_k.values() for v in m.values())
    with (finished / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["k"]) for r in rows] == [(n, k) for n in names for k in ("0", "1", "4")]
    assert [float(r["chance"]) for r in rows[:1] + rows[-1:]] == [50.0, 33.3]
    table = (finished / "results.md").read_text()
    assert f"| {names[0]} | 4 |" in table
    assert (finished / "icl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerunning_reuses_the_finished_run(finished):
    result = finished / "runs" / "seed0" / "result.json"
    before = result.stat().st_mtime_ns
    run_study(_study(), finished)
    assert result.stat().st_mtime_ns == before


def test_a_stopped_run_stops_the_study_and_the_same_call_continues_it(finished):
    before, after = stop_and_continue(lambda: run_study(_study(), finished), finished, finished / "runs" / "seed0")
    assert after == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shots": (0, 8)}, "reach K=8 but config.pool_size=4"),
        ({"shots": ()}, "one or more K"),
        ({"seeds": ()}, "at least one seed"),
        ({"eval_episodes": 0}, "eval_episodes=0"),
        ({"split": "train"}, "must be 'validation' or 'test'"),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        run_study(_study(**overrides), tmp_path / "study")
    assert not (tmp_path / "study").exists()
