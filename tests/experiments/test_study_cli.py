"""The study scripts' shared command line: a bad study is one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
