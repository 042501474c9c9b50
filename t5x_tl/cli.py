"""Command-line entry points (``t5x_tl-train``, ``scripts/train.py``), T5X style:

t5x_tl-train --config=configs/pretrain_span_corruption.py --workdir=DIR --config.train.steps=200
"""

from __future__ import annotations

import difflib
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from t5x_tl.console import configure_logging
from t5x_tl.errors import UserError
from t5x_tl.host_allocator import keep_freed_host_memory

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; an existing one is resumed.")
flags.mark_flags_as_required(["config", "workdir"])


def _train(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; pass values as --config.KEY=VALUE")
    configure_logging()
    keep_freed_host_memory()  # before JAX starts its CPU client
    from t5x_tl.train.loop import train

    try:
        result = train(_CONFIG.value, _WORKDIR.value)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the first step: committed checkpoints stay as they were
        print("interrupted; the last committed checkpoint is intact, rerun the same command to resume", file=sys.stderr)
        return 130
    if result.stopped_by is not None:
        name = signal.Signals(result.stopped_by).name
        print(
            f"{name}: stopped at step {result.step} with a checkpoint saved; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130 if result.stopped_by == signal.SIGINT else 0  # SIGTERM is a preemption, not a failure
    return 0


def _unknown_override(argv: list[str]) -> str:
    """Names the first ``--config.KEY=...`` override whose KEY is not in the schema, with a suggestion."""
    from t5x_tl.config import base_config, flat_keys

    known = flat_keys(base_config())
    for arg in argv:
        if arg.startswith("--config."):
            key = arg[len("--config.") :].split("=", 1)[0]
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(known)}"
                return f"unknown config key {key!r} in {arg}{hint}"
    return "a --config override names a key the config does not have"


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError):  # ml_collections' error for an override of a missing key
        print(f"error: {_unknown_override(argv)}", file=sys.stderr)
        sys.exit(2)


def train_main() -> None:
    app.run(lambda argv: sys.exit(_train(argv)), flags_parser=_parse_flags)
