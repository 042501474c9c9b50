"""The command line every study script shares: --config and --study_dir, one-line errors, and one stop policy:
a study whose run is stopped (Ctrl-C, SIGTERM) exits nonzero with one message that names the command that
continues it (finished runs reused, the stopped one resumed from its checkpoint)."""

from __future__ import annotations

import importlib
import shlex
import signal
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
        from t5x_tl.experiments.study_runs import RunStopped  # imports JAX

        try:
            importlib.import_module(driver).run_study(config.value, study_dir.value)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except RunStopped as stopped:
            return stop_message(str(stopped), stopped.signum)
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside training: the finished runs are saved
            return stop_message("SIGINT interrupted the study; every finished run is kept", signal.SIGINT)
        print((Path(study_dir.value).expanduser() / "results.md").read_text())
        return 0

    app.run(lambda argv: sys.exit(main(argv)))


def stop_message(what: str, signum: int) -> int:
    """Prints what stopped the study and the command that continues it; returns the exit status, 128 + signal."""
    command = shlex.join([sys.executable, *sys.argv])
    print(f"stopped: {what}. To continue where it stopped, rerun:\n  {command}", file=sys.stderr)
    return 128 + signum
