"""Where generated assets (the built-in corpus, vocabularies) live, and how they are written safely.

Assets are built once and reused. Each is written to a temporary sibling and renamed into place, so a killed
build never leaves a half-written asset that a later run would trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "T5X_TL_DATA_DIR"


def default_data_dir() -> Path:
    """``$T5X_TL_DATA_DIR``, else the checkout's ``data/`` folder, else ``~/.cache/t5x_tl``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    checkout_data = Path(__file__).resolve().parents[2] / "data"
    if checkout_data.is_dir():
        return checkout_data
    return Path.home() / ".cache" / "t5x_tl"


def resolve_data_dir(configured: str) -> Path:
    """The configured cache folder, or the default when the config leaves it empty."""
    return Path(configured).expanduser() if configured else default_data_dir()


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yields a scratch folder that becomes ``final`` only if the block finishes without error."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every user of the checkout
    try:
        yield scratch
        if final.exists():  # another process finished first; its copy is identical by construction
            shutil.rmtree(scratch)
        else:
            os.replace(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
