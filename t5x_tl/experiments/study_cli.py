"""The command line every study script shares: --config and --study_dir, one-line errors, Ctrl-C to stop and
the same command to continue."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from t5x_tl.console import configure_logging
from t5x_tl.errors import UserError


def run(description: str, run_study: Callable[[], Callable]) -> None:
    """Defines the flags and runs ``run_study()(config, study_dir)``, printing results.md at the end.

    ``run_study`` is a thunk so that the driver (and JAX) load after the flags parse and only in the main
    process: worker processes that re-import the script define the flags and nothing else.
    """
    config = config_flags.DEFINE_config_file("config", None, f"Study config ({description}).")
    study_dir = flags.DEFINE_string("study_dir", None, "Where runs and results go; an existing study is continued.")
    flags.mark_flags_as_required(["config", "study_dir"])

    def main(argv: list[str]) -> int:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}")
        configure_logging()
        try:
            run_study()(config.value, study_dir.value)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("stopped; rerun the same command to continue the study", file=sys.stderr)
            return 130
        print((Path(study_dir.value).expanduser() / "results.md").read_text())
        return 0

    app.run(lambda argv: sys.exit(main(argv)))
