"""What the command-line entry points print: our progress at INFO, libraries (Orbax, absl) at WARNING."""

from __future__ import annotations

import logging


def configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", force=True)
    logging.getLogger("t5x_tl").setLevel(logging.INFO)
