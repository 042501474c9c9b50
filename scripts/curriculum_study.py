"""Run (or continue) the Learning-to-Execute curriculum study and write its table and chart.

python scripts/curriculum_study.py --config=configs/curriculum_study.py --study_dir=/tmp/t5x_tl_curriculum \
  [--config.seeds="(0,1)" --config.study.train.train.steps=300 ...]

Writes results.md, results.csv, results.json and relative_to_baseline.png in --study_dir; rerunning the same
command after a stop reuses finished runs and resumes the interrupted one from its checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from t5x_tl.console import configure_logging
from t5x_tl.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config (configs/curriculum_study.py).")
_STUDY_DIR = flags.DEFINE_string("study_dir", None, "Where runs and results go; an existing study is continued.")
flags.mark_flags_as_required(["config", "study_dir"])


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    configure_logging()
    from t5x_tl.experiments.curriculum_study import run_study

    try:
        run_study(_CONFIG.value, _STUDY_DIR.value)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; rerun the same command to continue the study", file=sys.stderr)
        return 130
    print((Path(_STUDY_DIR.value).expanduser() / "results.md").read_text())
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
