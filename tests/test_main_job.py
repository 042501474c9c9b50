"""The README's main job end to end (as a user launches it), resuming, Ctrl-C, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t5x_tl.config import validate
from t5x_tl.errors import UserError

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "configs" / "pretrain_span_corruption.py"
SMALL = [
    "--config.data.corpus.num_entities=60",
    "--config.data.corpus.num_train_documents=40",
    "--config.data.corpus.num_validation_documents=8",
    "--config.data.sentencepiece_size=256",
    "--config.data.inputs_length=64",
    "--config.data.batch_size=8",
    "--config.train.eval_batches=2",
    "--config.train.log_every=1",
]


def _command(workdir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        f"--config={JOB}",
        f"--workdir={workdir}",
        *SMALL,
        *overrides,
    ]


def _train(workdir: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_command(workdir, *overrides), capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _records(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("job")
    result = _train(workdir, "--config.train.steps=4", "--config.train.eval_every=2", "--config.checkpoint.every=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No checkpoint in" in result.stderr
    return workdir


def test_main_job_writes_metrics_checkpoints_and_tensorboard(trained):
    records = _records(trained)
    evals = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["loss"] > 0 for r in evals)
    assert evals[-1]["loss"] < evals[0]["loss"], "four steps of training lower the validation loss"
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(r["tokens_per_second"] > 0 and r["target_tokens"] > 0 for r in train)
    assert all(r["model_flops_per_second"] > 0 and "mfu" not in r for r in train), "no peak is known for a CPU"
    assert _steps(trained) == [2, 4]
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))


def test_model_info_lists_every_parameter_with_its_sharding(trained):
    table = (trained / "model-info.txt").read_text().splitlines()
    assert table[0].split() == ["parameter", "shape", "dtype", "logical", "axes", "mesh", "axes", "per-device", "shape"]
    row = next(line for line in table if line.startswith("decoder/layers/stacked/mlp/wi_0 "))
    # the job runs on one CPU device: the rules put mlp on model, whose size 1 splits nothing
    assert "(layers, embed, mlp)" in row and "(-, -, model)" in row and row.split()[-3:] == row.split()[1:4]
    assert "parameters; mesh replica 1 x data 1 x fsdp 1 x model 1;" in table[-1]


def test_rerun_resumes_from_the_latest_checkpoint(trained):
    result = _train(trained, "--config.train.steps=6", "--config.checkpoint.every=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored step 4 from {trained / 'checkpoints' / '4'}" in result.stderr
    assert "Restored the input position of step 4 from its iterator state" in result.stderr
    assert "Replaying" not in result.stderr  # constant-time resume: no batch of the stream is recomputed
    assert (trained / "checkpoints" / "6" / "data" / "host_0-of-1.index").is_file()
    assert [r["step"] for r in _records(trained) if r["split"] == "train"][-2:] == [5, 6]
    assert _steps(trained)[-1] == 6


def test_checkpoint_of_another_model_shape_is_refused(trained):
    before = {p: p.stat().st_mtime_ns for p in (trained / "checkpoints").rglob("*")}
    result = _train(trained, "--config.model.size=small", "--config.train.steps=8")
    assert result.returncode == 2
    assert "holds a checkpoint of another model shape" in result.stderr and "fresh --workdir" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in (trained / "checkpoints").rglob("*")} == before


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_stop_signal_saves_and_the_next_run_resumes(data_dir, tmp_path, signum, exit_code):
    process = subprocess.Popen(
        _command(tmp_path, "--config.train.steps=100000", "--config.checkpoint.every=100000"),
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = tmp_path / "metrics.jsonl"
        if metrics.exists() and any(r["split"] == "train" and r["step"] >= 2 for r in _records(tmp_path)):
            break
        time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr[-3000:]
    (stopped,) = _steps(tmp_path)
    assert stopped >= 2
    assert f"{signal.Signals(signum).name}: stopped at step {stopped} with a checkpoint saved" in stderr
    result = _train(tmp_path, f"--config.train.steps={stopped + 1}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Restored step {stopped} from" in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "--config.train.stepz=3",
            "unknown config key 'train.stepz' in --config.train.stepz=3; did you mean 'train.steps'?",
        ),
        ("--config.train.steps=-5", "config.train.steps=-5 is invalid: it must be a positive integer"),
        ("--config.model.size=huge", "config.model.size='huge' is invalid: choose one of"),
        ("--config.model.kind=gpt", "config.model.kind='gpt' is invalid: choose one of ('encoder_decoder', "),
        ("--config.model.remat_policy=most", "config.model.remat_policy='most' is invalid: choose one of ('none', "),
    ],
)
def test_bad_config_values_exit_with_one_clear_message(override, message, tmp_path):
    result = _train(tmp_path / "run", override, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unwritable_workdir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _train(blocker / "run", "--config.train.steps=1", timeout=120)
    assert result.returncode == 2
    assert f"cannot write to work directory {blocker / 'run'}" in result.stderr


def test_validate_names_missing_and_unknown_keys():
    from t5x_tl.config import base_config

    cfg = base_config()
    cfg.train.extra = 1
    with pytest.raises(UserError, match=r"unknown config keys \['train.extra'\]"):
        validate(cfg)
    cfg = base_config()
    del cfg.optimizer["name"]
    with pytest.raises(UserError, match=r"missing keys \['optimizer.name'\]"):
        validate(cfg)


def test_console_entry_point_runs_the_same_command(tmp_path):
    command = ["t5x_tl-train", f"--config={JOB}", f"--workdir={tmp_path}", "--config.optimizer.name=sgd"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "config.optimizer.name='sgd' is invalid: choose one of ('adafactor', 'adamw')" in result.stderr


def _job_config(**data):
    from t5x_tl.config import base_config

    cfg = base_config()
    cfg.data.update({"inputs_length": 64, "batch_size": 4, **data})
    cfg.train.update(dict(steps=2, eval_every=2, eval_batches=1, log_every=1))
    return cfg


def test_a_user_task_from_a_user_module_trains(tmp_path, user_tasks):
    from t5x_tl.train.loop import train

    cfg = _job_config(task="user_bytes_span_corruption", task_modules=(user_tasks,), targets_length=16)
    result = train(cfg, tmp_path / "run")
    assert result.step == 2 and result.stopped_by is None
    assert 0.0 <= result.last_eval["accuracy"] <= 1.0


@pytest.mark.parametrize("unrolled_remat", [False, True])
def test_a_prefix_lm_trains_on_a_user_task(tmp_path, user_tasks, unrolled_remat):
    from t5x_tl.train.loop import train

    cfg = _job_config(task="user_bytes_span_corruption", task_modules=(user_tasks,), targets_length=16)
    cfg.model.kind = "prefix_lm"
    if unrolled_remat:
        cfg.model.update(scan_layers=False, remat_policy="full")
    result = train(cfg, tmp_path / "run")
    assert result.step == 2 and 0.0 <= result.last_eval["accuracy"] <= 1.0
    from t5x_tl.train.checkpointing import read_params

    _, _, metadata = read_params(tmp_path / "run" / "checkpoints", None)
    assert metadata["model"]["kind"] == "prefix_lm"


def test_model_kinds_that_do_not_fit_the_data_are_clear_errors(tmp_path, user_tasks):
    from t5x_tl.train.loop import train

    cfg = _job_config(task="user_bytes_span_corruption", task_modules=(user_tasks,), targets_length=16)
    cfg.model.kind = "decoder_only"
    with pytest.raises(UserError, match="cannot feed a decoder_only model"):
        train(cfg, tmp_path / "run")

    cfg = _job_config()
    cfg.model.kind = "decoder_only"
    with pytest.raises(UserError, match=r"config\.model\.kind='decoder_only' needs config\.data\.task"):
        train(cfg, tmp_path / "run")
    cfg = _job_config(task="builtin_bert_style_d15", targets_length=80)
    cfg.data.task_modules = ("t5x_tl.data.tasks.pretraining",)
    cfg.model.kind = "encoder_only"
    with pytest.raises(UserError, match=r"does not fit config\.model\.kind: .*targets_length=80 must equal"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (dict(task="no_such_task", targets_length=8), "is not a registered SeqIO task or mixture"),
        (dict(task="x", task_modules=("no_such_module",), targets_length=8), "cannot import 'no_such_module'"),
        (
            dict(task="x", task_modules=("t5x_tl.data.memory_tasks",), targets_length=8),
            "'t5x_tl.data.memory_tasks' moved to 't5x_tl.data.memory.tasks'",
        ),
        (
            dict(task="synthetic_pairs", task_modules=("t5x_tl.data.downstream.registry",)),
            "targets_length must be set for synthetic_pairs, which is not an objective task",
        ),
        (dict(targets_length=5), r"targets_length=5 is too short for builtin_span_corruption\w* .* it needs 14"),
        (dict(inputs_length=1), "inputs_length=1 is too short"),
    ],
)
def test_unknown_tasks_and_modules_are_clear_errors(tmp_path, data, message):
    from t5x_tl.train.loop import train

    with pytest.raises(UserError, match=message):
        train(_job_config(**data), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_convert_script_exports_and_imports_the_trained_model(trained, tmp_path):
    import numpy as np
    import orbax.checkpoint as ocp
    import transformers

    from t5x_tl.models.hf_convert import load_hf_directory
    from t5x_tl.train.checkpointing import read_params

    script = [sys.executable, str(REPO / "scripts" / "convert_hf.py")]
    hf_dir, imported = tmp_path / "hf", tmp_path / "imported"
    result = subprocess.run(
        [*script, "export", f"--workdir={trained}", f"--out={hf_dir}"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    step, params, _ = read_params(trained / "checkpoints")
    assert f"exported step {step}" in result.stdout
    _, exported = load_hf_directory(hf_dir)
    wo = lambda p: p["decoder"]["layers"]["stacked"]["mlp"]["wo"]
    np.testing.assert_array_equal(wo(exported), wo(params))
    assert transformers.T5ForConditionalGeneration.from_pretrained(hf_dir).config.d_model == 128
    result = subprocess.run(
        [*script, "import", f"--hf_dir={hf_dir}", f"--out={imported}"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(imported / "params")
    np.testing.assert_array_equal(restored["lm_head"], params["lm_head"])
    recorded = json.loads((imported / "model_config.json").read_text())
    assert recorded["d_model"] == 128 and recorded["kind"] == "encoder_decoder"
    result = subprocess.run(
        [*script, "export", f"--workdir={tmp_path}", f"--out={hf_dir}"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "error: no checkpoint in" in result.stderr


def test_evaluate_script_loads_the_checkpoint_and_reports_bad_requests(trained):
    script = [sys.executable, str(REPO / "scripts" / "evaluate.py"), f"--workdir={trained}", "--inputs_length=64"]
    run = lambda *args: subprocess.run([*script, "--max_decode_length=8", *args], capture_output=True, text=True)
    result = run("--task=no_such_task")
    assert result.returncode == 2 and "error: 'no_such_task' is not a registered SeqIO task" in result.stderr
    result = run("--task=x", "--task_modules", "no_such_module")
    assert result.returncode == 2 and "--task_modules: cannot import 'no_such_module'" in result.stderr
    result = run("--task=x", "--step=999")
    assert result.returncode == 2 and "no checkpoint at step 999" in result.stderr
