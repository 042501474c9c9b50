"""The study scripts' shared command line: a bad study is one line on stderr and exit code 2; a stopped one is one
message with the command that continues it, and exit code 128 + the signal."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from t5x_tl.experiments.study_cli import stop_message
from t5x_tl.experiments.study_runs import RunStopped

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "override", "message"),
    [
        ("objective_study", "--config.objectives=('span_magic',)", "unknown objectives ['span_magic']"),
        ("curriculum_study", "--config.strategies=('naive',)", "must include 'baseline'"),
    ],
)
def test_a_bad_study_is_one_error_line_and_exit_code_2(tmp_path, script, override, message):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), f"--config={ROOT / 'configs' / f'{script}.py'}",
         f"--study_dir={tmp_path / 'study'}", override],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "study").exists()


def test_a_stopped_study_is_one_message_with_the_command_that_continues_it(monkeypatch, capsys):
    argv = ["scripts/icl_study.py", "--config=configs/icl_study.py", "--study_dir=/tmp/my study"]
    monkeypatch.setattr(sys, "argv", argv)
    stopped = pickle.loads(pickle.dumps(RunStopped(Path("/tmp/my study/runs/seed0"), 7, signal.SIGTERM)))  # a worker's
    assert stop_message(str(stopped), stopped.signum) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == [
        "stopped: SIGTERM stopped the run in /tmp/my study/runs/seed0 at step 7; its checkpoint is saved and every "
        "finished run is kept. To continue where it stopped, rerun:",
        f"  {sys.executable} scripts/icl_study.py --config=configs/icl_study.py '--study_dir=/tmp/my study'",
    ]
