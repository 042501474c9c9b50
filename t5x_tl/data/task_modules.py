"""Importing the user modules that register SeqIO tasks, with one clear error for a module that is missing."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from t5x_tl.errors import UserError


def import_task_modules(modules: Sequence[str], setting: str) -> None:
    """Imports each module (registering its tasks); ``setting`` names where the list came from, for the error."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UserError(f"{setting}: cannot import {module!r} ({error})") from error
