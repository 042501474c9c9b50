"""Command-line entry points (``t5x_tl-train``, ``scripts/train.py``), T5X style:

    t5x_tl-train --config=configs/pretrain_span_corruption.py --workdir=DIR --config.train.steps=200
"""

from __future__ import annotations

import logging
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from t5x_tl.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go; an existing one is resumed.")
flags.mark_flags_as_required(["config", "workdir"])


def _train(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; pass values as --config.KEY=VALUE")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", force=True)
    logging.getLogger("t5x_tl").setLevel(logging.INFO)  # libraries (Orbax, absl) stay at WARNING
    from t5x_tl.train.loop import train

    try:
        result = train(_CONFIG.value, _WORKDIR.value)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.stopped_by == signal.SIGINT:
        print(f"interrupted at step {result.step}; checkpoint saved, rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def train_main() -> None:
    app.run(lambda argv: sys.exit(_train(argv)))
