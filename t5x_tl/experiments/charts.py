"""The chart every study writes: a headless matplotlib figure, laid out and saved as PNG, then closed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def chart(path: Path, figsize: tuple[float, float]) -> Iterator:
    """Yields the axes of a new figure; on exit the figure is saved to ``path`` (150 dpi) and closed.

    matplotlib is imported here, with the Agg backend, so that studies need no display and importing a driver
    costs nothing until it draws.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=figsize)
    try:
        yield axes
        figure.tight_layout()
        figure.savefig(path, dpi=150)
    finally:
        plt.close(figure)
