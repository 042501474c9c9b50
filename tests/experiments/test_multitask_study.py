"""The multi-task study driver, reduced: every method trains for real on the small corpus, the table, the chart,
reuse of finished runs, and bad studies."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from short_jobs import overridden, shorten, sigterm_after, stop_and_continue

from t5x_tl.config import load_config_file
from t5x_tl.errors import UserError
from t5x_tl.experiments.multitask_study import METHODS, run_study
from t5x_tl.experiments.study_runs import RunStopped
from t5x_tl.train.checkpointing import read_params

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "multitask_study.py"


def _study(small_data, **overrides):
    study = load_config_file(CONFIG)
    study.seeds = (0,)
    study.low_resource_examples, study.high_resource_examples, study.eval_examples = 16, 64, 8
    study.eval_batch_size = 8
    study.finetune_steps = 2
    t = study.train
    t.data.corpus.num_entities = small_data.corpus.num_entities
    t.data.corpus.num_train_documents = small_data.corpus.num_train_documents
    t.data.corpus.num_validation_documents = small_data.corpus.num_validation_documents
    t.data.sentencepiece_size = small_data.sentencepiece_size
    t.data.inputs_length = t.data.targets_length = 48
    shorten(t, batch_size=4, steps=3, eval_every=3, log_every=1)
    return overridden(study, overrides)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_data) -> Path:
    study_dir = tmp_path_factory.mktemp("multitask")
    rows = run_study(_study(small_data), study_dir)
    assert [r["method"] for r in rows] == list(METHODS)
    return study_dir


def test_every_method_runs_and_the_study_writes_its_table_csv_json_and_chart(finished):
    results = json.loads((finished / "results.json").read_text())
    assert sorted(r["method"] for r in results["runs"]) == sorted(METHODS)
    assert all(0 <= r["metrics"]["bleu"] <= 100 for r in results["runs"])
    table = (finished / "results.md").read_text()
    assert "16 training examples" in table and all(f"| {m} |" in table for m in METHODS)
    with (finished / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    single = next(r for r in rows if r["method"] == "single_task")
    assert float(single["vs_single_task"]) == 0.0
    for row in rows:
        run = next(r for r in results["runs"] if r["method"] == row["method"])
        assert float(row["bleu_mean"]) == pytest.approx(run["metrics"]["bleu"])
    assert (finished / "multitask.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the fine-tune started from the mixture's run and trained only its own steps
    log = (finished / "runs" / "hard_then_finetune" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(line).get("step", 0) for line in log) == 2


def test_rerunning_reuses_finished_runs(finished, small_data):
    results = sorted(finished.glob("runs/*/*/result.json"))
    before = [p.stat().st_mtime_ns for p in results]
    run_study(_study(small_data), finished)
    assert [p.stat().st_mtime_ns for p in results] == before, "no run trained again"


def test_a_stopped_pair_run_resumes_from_its_checkpoint_to_the_same_parameters(finished, small_data):
    run_dir = finished / "runs" / "shared_encoder" / "seed0"
    _, uninterrupted, _ = read_params(run_dir / "checkpoints")
    shutil.rmtree(run_dir)
    with sigterm_after(1), pytest.raises(RunStopped, match=rf"SIGTERM stopped the run in {run_dir} at step 1"):
        run_study(_study(small_data), finished)
    assert not (run_dir / "result.json").exists() and (run_dir / "checkpoints" / "1").is_dir()
    run_study(_study(small_data), finished)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3], "resumed at step 1, not restarted"
    _, resumed, _ = read_params(run_dir / "checkpoints")
    assert set(resumed["shared"]) == {"token_embed", "encoder"}
    for expected, actual in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_a_stopped_loop_run_stops_the_study_and_the_same_call_continues_it(finished, small_data):
    run_dir = finished / "runs" / "single_task" / "seed0"
    before, after = stop_and_continue(lambda: run_study(_study(small_data), finished), finished, run_dir)
    assert after["metrics"] == before["metrics"]


def test_a_directory_of_another_study_is_refused(finished, small_data):
    record = (finished / "study.json").read_text()
    with pytest.raises(UserError, match="holds a study of another config"):
        run_study(_study(small_data, seeds=(0, 1)), finished)
    assert (finished / "study.json").read_text() == record


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": ("hard_sharing", "soft_l2")}, "must include 'single_task'"),
        ({"methods": ("single_task", "soft_l3")}, "choose from"),
        ({"seeds": ()}, "at least one seed"),
        ({"low_resource_examples": 0}, "low_resource_examples=0 must be at least 1"),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(tmp_path, small_data, overrides, message):
    with pytest.raises(UserError, match=message):
        run_study(_study(small_data, **overrides), tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_bad_mixing_and_a_fine_tune_without_its_mixture_are_refused(tmp_path, small_data):
    study = _study(small_data)
    study.mixing.cap = 8  # equal mixing takes no cap
    with pytest.raises(UserError, match=r"config\.mixing: strategy='equal' takes neither cap nor temperature"):
        run_study(study, tmp_path / "a")
    with pytest.raises(UserError, match="hard_then_finetune without hard_sharing"):
        run_study(_study(small_data, methods=("single_task", "hard_then_finetune")), tmp_path / "b")
