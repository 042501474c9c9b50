"""The files every study driver keeps in its study directory: the config it belongs to, each run's result
(written atomically, so a killed study never leaves half a result), and the tables of the whole study."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict

from t5x_tl.errors import UserError

_ABSENT = object()
STUDY_RECORD = "study.json"


def claim_study_dir(study: ConfigDict, study_dir: Path) -> None:
    """Records ``study`` in a new ``study_dir``; refuses a directory that holds a study of another config."""
    record = study_dir / STUDY_RECORD
    wanted = json.loads(study.to_json())
    if record.exists():
        differing = _differing_keys(json.loads(record.read_text()), wanted)
        if differing:
            shown = ", ".join(differing[:6]) + (f" and {len(differing) - 6} more" if len(differing) > 6 else "")
            raise UserError(
                f"{study_dir} holds a study of another config ({shown} differ; see {record}); use a fresh "
                "--study_dir, or rerun with the config that started it to continue"
            )
        return
    study_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, wanted)


def _differing_keys(recorded: dict, wanted: dict, prefix: str = "") -> list[str]:
    """Dotted names of the keys whose values differ between two config dicts, or that only one of them has."""
    differing = []
    for key in sorted(set(recorded) | set(wanted)):
        old, new = recorded.get(key, _ABSENT), wanted.get(key, _ABSENT)
        if isinstance(old, dict) and isinstance(new, dict):
            differing += _differing_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            differing.append(f"{prefix}{key}")
    return differing


def _write_whole(path: Path, text: str) -> None:
    """Writes ``text`` through a scratch file and a rename: readers see all of it or nothing."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    scratch.rename(path)


def write_json(path: Path, payload: object) -> None:
    _write_whole(path, json.dumps(payload, indent=1))


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    """One JSON object per line."""
    _write_whole(path, "".join(json.dumps(record) + "\n" for record in records))


def read_result(path: Path) -> dict | None:
    """A finished run's result, or None when the run has not finished."""
    return json.loads(path.read_text()) if path.exists() else None


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN and 0 for none)."""
    if not values:
        return float("nan"), 0.0
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def write_results(study_dir: Path, runs: Sequence[dict], rows: Sequence[dict], markdown: str) -> None:
    """results.json (every run and the summary), results.csv (the summary) and results.md (the table)."""
    write_json(study_dir / "results.json", {"runs": list(runs), "summary": list(rows)})
    with (study_dir / "results.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (study_dir / "results.md").write_text(markdown)
