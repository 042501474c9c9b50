"""The objective study driver, reduced: real pretraining and fine-tuning runs, the table, the chart, the
comparison with the paper, resuming, parallel workers, and bad studies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from short_jobs import overridden, shorten, sigterm_after, stop_and_continue

from t5x_tl.config import load_config_file
from t5x_tl.errors import UserError
from t5x_tl.experiments import objective_study, objective_tables
from t5x_tl.experiments.objective_study import NO_PRETRAINING, Job, check_study, jobs, run_study
from t5x_tl.experiments.study_runs import RunStopped

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "objective_study.py"
TASKS = ("synthetic_pairs", "synthetic_translation")


def _study(**overrides):
    study = load_config_file(CONFIG)
    study.unlock()  # the tests drop tasks and add bad ones
    study.objectives = ("random_spans_d15_s3", "deshuffling")
    for task in [t for t in study.tasks if t not in TASKS]:
        del study.tasks[task]
    study.seeds = (0,)
    study.eval_examples = 8
    study.eval_batch_size = 8
    for job in (study.pretrain, study.finetune):
        shorten(job, batch_size=8, steps=3, eval_every=3, log_every=3)
    study.pretrain.data.inputs_length = 64
    return overridden(study, overrides)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> Path:
    study_dir = tmp_path_factory.mktemp("objective_study")
    rows = run_study(_study(), study_dir)
    assert [r["objective"] for r in rows] == [NO_PRETRAINING, "random_spans_d15_s3", "deshuffling"]
    return study_dir


def test_the_study_pretrains_fine_tunes_and_writes_its_table_and_chart(finished):
    results = json.loads((finished / "results.json").read_text())
    pretrainings = [r for r in results["runs"] if "task" not in r]
    finetunes = [r for r in results["runs"] if "task" in r]
    assert sorted(r["objective"] for r in pretrainings) == ["deshuffling", "random_spans_d15_s3"]
    assert len(finetunes) == 3 * len(TASKS) and all(r["examples"] == 8 and r["steps"] == 3 for r in finetunes)
    pairs = next(r for r in finetunes if r["task"] == "synthetic_pairs")
    assert pairs["score"] == pytest.approx((pairs["metrics"]["accuracy"] + pairs["metrics"]["macro_f1"]) / 2)
    deshuffling = next(r for r in pretrainings if r["objective"] == "deshuffling")
    assert deshuffling["targets_length"] == 64  # the whole chunk (63 tokens and EOS) is the target
    assert all(r["tokens"] == 3 * 8 * 64 for r in pretrainings)
    table = (finished / "results.md").read_text()
    assert table.startswith("| objective | pairs (GLUE) | translation (WMT) | average | vs no pretraining | seeds |")
    assert "| deshuffling |" in table and "deshuffling last of the objectives" in table
    with (finished / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["objective"] for r in rows] == [NO_PRETRAINING, "random_spans_d15_s3", "deshuffling"]
    assert (finished / "objective_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_fine_tune_keeps_what_it_decoded(finished):
    run = Job("deshuffling", 0, "synthetic_translation").directory(finished)
    decoded = [json.loads(line) for line in (run / objective_study.PREDICTIONS).read_text().splitlines()]
    assert len(decoded) == 8 and all(set(d) == {"inputs", "target", "prediction"} for d in decoded)
    assert decoded[0]["inputs"].startswith("translate English to Synthetic")
    assert json.loads((run / "result.json").read_text())["examples"] == len(decoded)


def _step0_validation_loss(run_dir: Path) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in records if r["split"] == "validation" and r["step"] == 0)


def test_fine_tunes_start_from_their_pretraining(finished):
    pretrained = Job("deshuffling", 0, "synthetic_pairs")
    fresh = Job(NO_PRETRAINING, 0, "synthetic_pairs")
    assert objective_study.finetune_config(_study(), pretrained, finished).checkpoint.init_from == str(
        finished / "pretrain" / "deshuffling" / "seed0"
    )
    assert not objective_study.finetune_config(_study(), fresh, finished).checkpoint.init_from
    # same seed and task: only the starting parameters differ
    assert _step0_validation_loss(pretrained.directory(finished)) != _step0_validation_loss(fresh.directory(finished))


def test_rerunning_reuses_finished_runs_and_reruns_a_missing_one(finished, monkeypatch):
    ran = []
    real = objective_study.run_job
    monkeypatch.setattr(objective_study, "run_job", lambda s, job, d: ran.append(job) or real(s, job, d))
    metrics = sorted(finished.glob("**/metrics.jsonl"))
    before = {p: p.stat().st_mtime_ns for p in metrics}
    lost = Job("random_spans_d15_s3", 0, "synthetic_translation")
    (lost.directory(finished) / "result.json").unlink()
    run_study(_study(), finished)
    assert ran == [lost]
    assert [p for p in metrics if p.stat().st_mtime_ns != before[p]] == [], "a finished run does not train again"
    assert (lost.directory(finished) / "result.json").exists()


def test_a_directory_of_another_study_is_refused(finished):
    record = (finished / "study.json").read_text()
    with pytest.raises(UserError, match=r"holds a study of another config \(seeds differ; see .*study\.json\)"):
        run_study(_study(seeds=(0, 1)), finished)
    assert (finished / "study.json").read_text() == record


def test_parallel_workers_run_the_same_jobs(tmp_path, data_dir):
    study = _study(objectives=("iid_drop_tokens_d15",), workers=2)
    del study.tasks["synthetic_translation"]
    rows = run_study(study, tmp_path)
    assert [r["objective"] for r in rows] == [NO_PRETRAINING, "iid_drop_tokens_d15"]
    results = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert sorted((r["objective"], r.get("task", "")) for r in results) == [
        ("iid_drop_tokens_d15", ""),
        ("iid_drop_tokens_d15", "synthetic_pairs"),
        (NO_PRETRAINING, "synthetic_pairs"),
    ]
    lost = Job("iid_drop_tokens_d15", 0, "synthetic_pairs")  # its pretraining finished in the first call
    (lost.directory(tmp_path) / "result.json").unlink()
    run_study(study, tmp_path)
    assert (lost.directory(tmp_path) / "result.json").exists()


def test_a_stopped_study_keeps_its_checkpoint_and_continues_when_rerun(tmp_path, data_dir):
    study = _study(objectives=("prefix_lm",))
    del study.tasks["synthetic_translation"]
    first = jobs(study)[0]
    with sigterm_after(0), pytest.raises(RunStopped, match=rf"the run in {first.directory(tmp_path)} at step 0"):
        run_study(study, tmp_path)
    assert not (first.directory(tmp_path) / "result.json").exists()
    assert (first.directory(tmp_path) / "checkpoints" / "0").is_dir()
    rows = run_study(study, tmp_path)
    assert [r["seeds"] for r in rows] == [1, 1]
    assert json.loads((first.directory(tmp_path) / "result.json").read_text())["steps"] == 3


def test_a_stopped_fine_tune_stops_the_study_and_the_same_call_continues_it(finished):
    run_dir = Job("random_spans_d15_s3", 0, "synthetic_pairs").directory(finished)
    before, after = stop_and_continue(lambda: run_study(_study(), finished), finished, run_dir)
    assert after["metrics"] == before["metrics"]


def test_every_pretraining_comes_before_its_fine_tunes():
    order = jobs(_study(seeds=(0, 1)))
    assert len(order) == 2 * (len(TASKS) + 2 * (1 + len(TASKS)))
    for position, job in enumerate(order):
        if job.pretraining is not None:
            assert order.index(job.pretraining) < position
    assert all(job.pretraining is None for job in order if job.objective == NO_PRETRAINING)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"objectives": ("random_spans_d15_s3", "span_magic")}, "unknown objectives \\['span_magic'\\]"),
        ({"objectives": ()}, "unknown objectives"),
        ({"seeds": ()}, "must each name at least one"),
        ({"corpus": "c4"}, "no pretraining task 'c4_random_spans_d15_s3'"),
        ({"eval_split": "dev"}, "config.eval_split='dev'"),
        ({"workers": 0}, "config.workers=0"),
        (
            {"objectives": ("iid_replace_spans_d50",), "pretrain.data.inputs_length": 512},
            "iid_replace_spans_d50 with config.pretrain.data.inputs_length=512 may need 256 sentinels, but the "
            "vocabulary of builtin_iid_replace_spans_d50 has extra_ids=100",
        ),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        run_study(_study(**overrides), tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_an_unknown_task_or_metric_is_refused(tmp_path):
    study = _study()
    study.tasks["synthetic_chess"] = study.tasks["synthetic_pairs"]
    with pytest.raises(UserError, match="'synthetic_chess', which is not a registered SeqIO task"):
        check_study(study)
    study = _study()
    study.tasks.synthetic_pairs.metrics = ("accuracy", "rouge2")
    with pytest.raises(UserError, match=r"from the \['accuracy', 'macro_f1'\] the task reports"):
        check_study(study)


def _result(objective: str, seed: int, task: str, score: float) -> dict:
    return {"objective": objective, "seed": seed, "task": task, "score": score}


def test_the_summary_pairs_seeds_and_the_comparison_reads_the_ranking():
    study = _study(seeds=(0, 1))
    study.objectives = ("prefix_lm", "bert_style_d15", "deshuffling", "random_spans_d15_s3")
    scores = {NO_PRETRAINING: (10, 20), "prefix_lm": (30, 40), "bert_style_d15": (20, 30), "deshuffling": (28, 26),
              "random_spans_d15_s3": (50, 60)}  # fmt: skip
    results = [_result(o, seed, task, score + (seed * 4 if task == TASKS[1] else 0))
               for o, by_seed in scores.items() for seed, score in enumerate(by_seed) for task in TASKS]  # fmt: skip
    rows = {r["objective"]: r for r in objective_tables.summarise(study, results)}
    # seed 0: tasks score s and s; seed 1: s and s + 4 -> averages s0 and s1 + 2
    assert rows["prefix_lm"]["average"] == pytest.approx((30 + 42) / 2)
    assert rows["prefix_lm"]["vs_no_pretraining"] == pytest.approx(20)
    assert rows["deshuffling"]["vs_no_pretraining_std"] == pytest.approx(abs((28 - 10) - (28 - 22)) / 2**0.5)
    assert rows["deshuffling"]["seeds_above_no_pretraining"] == 2
    comparison = "\n".join(objective_tables.paper_comparison(list(rows.values())))
    assert "pretraining matters (paper: every objective beats no pretraining): agrees" in comparison
    assert "deshuffling last of the objectives (paper: last by far): DIFFERS; last here is bert_style_d15" in comparison
    assert "BERT-style above prefix LM (paper: above): DIFFERS, by -10.0 points" in comparison
    assert "a span objective at the top" in comparison and "agrees; the best here is random_spans_d15_s3" in comparison


def test_a_seed_missing_a_task_is_left_out_of_the_average():
    study = _study(seeds=(0, 1))
    results = [_result(NO_PRETRAINING, 0, t, 10) for t in TASKS] + [_result(NO_PRETRAINING, 1, TASKS[0], 90)]
    row = objective_tables.summarise(study, results)[0]
    assert row["seeds"] == 1 and row["average"] == 10


def test_the_pod_study_config_names_registered_tasks_and_metrics(monkeypatch, small_data):
    import importlib

    import tensorflow_datasets as tfds

    from t5x_tl.data.vocabularies import ensure_sentencepiece

    model = ensure_sentencepiece(small_data.files(), small_data.sentencepiece_size)
    monkeypatch.setenv("T5X_TL_SENTENCEPIECE_MODEL", str(model))
    c4_study_tasks = importlib.import_module("t5x_tl.data.tasks.c4_study")  # registers on import
    study = load_config_file(CONFIG.with_name("objective_study_c4.py"))
    assert study.pretrain.model.size == "base" and study.pretrain.data.task_modules == ("t5x_tl.data.tasks.c4_study",)
    for objective in study.objectives:
        assert objective_study.pretraining_task(study, objective) == f"c4_{objective}"
    with tfds.testing.mock_data(num_examples=2):
        check_study(study)  # every task registered, with sentinels enough, and each names metrics its task reports
    assert c4_study_tasks.VOCABULARY.extra_ids == 256  # i.i.d. replace spans at 50% with inputs 512 needs 256
    monkeypatch.delenv(c4_study_tasks.VOCABULARY_VARIABLE)
    with pytest.raises(UserError, match="set \\$T5X_TL_SENTENCEPIECE_MODEL"):
        c4_study_tasks.vocabulary()
