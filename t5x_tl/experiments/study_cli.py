"""The command line every study script shares: --config and --study_dir, one-line errors, Ctrl-C to stop and
the same command to continue."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from t5x_tl.console import configure_logging
from t5x_tl.errors import UserError
from t5x_tl.host_allocator import keep_freed_host_memory


def run(default_config: str, driver: str) -> None:
    """Defines the flags and runs ``run_study(config, study_dir)`` of the ``driver`` module, printing
    results.md at the end. The driver (and JAX) is imported only after the flags parse."""
    config = config_flags.DEFINE_config_file("config", None, f"Study config ({default_config}).")
    study_dir = flags.DEFINE_string("study_dir", None, "Where runs and results go; an existing study is continued.")
    flags.mark_flags_as_required(["config", "study_dir"])

    def main(argv: list[str]) -> int:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}")
        configure_logging()
        keep_freed_host_memory()  # before JAX starts its CPU client
        try:
            importlib.import_module(driver).run_study(config.value, study_dir.value)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("stopped; rerun the same command to continue the study", file=sys.stderr)
            return 130
        print((Path(study_dir.value).expanduser() / "results.md").read_text())
        return 0

    app.run(lambda argv: sys.exit(main(argv)))
