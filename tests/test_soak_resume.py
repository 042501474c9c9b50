"""The crash soak, reduced: a run killed with SIGKILL mid-training twice and resumed ends bit-identical."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak_resume.py"


def test_kill_9_twice_then_resume_ends_bit_identical(tmp_path):
    out = tmp_path / "soak.json"
    args = [sys.executable, str(SCRIPT), "--cycles=2", "--steps=12", f"--workdir={tmp_path / 'soak'}", f"--out={out}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["identical"] and report["steps"] == 12
    assert report["kills_landed"] == 2, "both kills landed while the run was training"
