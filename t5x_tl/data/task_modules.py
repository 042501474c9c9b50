"""Importing the user modules that register SeqIO tasks, with one clear error for a module that is missing."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from t5x_tl.errors import UserError

# Task modules of t5x_tl that moved when data/ became subpackages: a config naming the old path gets the new one.
MOVED_TASK_MODULES = {
    "t5x_tl.data.tasks": "t5x_tl.data.tasks.builtin",
    "t5x_tl.data.pretraining_tasks": "t5x_tl.data.tasks.pretraining",
    "t5x_tl.data.tfds_tasks": "t5x_tl.data.tasks.tfds",
    "t5x_tl.data.c4_study_tasks": "t5x_tl.data.tasks.c4_study",
    "t5x_tl.data.text_files": "t5x_tl.data.tasks.text_files",
    "t5x_tl.data.icl_mappings": "t5x_tl.data.downstream.icl_mappings",
    "t5x_tl.data.execute.tasks": "t5x_tl.data.curriculum.execute.tasks",
    "t5x_tl.data.memory_tasks": "t5x_tl.data.memory.tasks",
    "t5x_tl.data.long_documents": "t5x_tl.data.memory.long_documents",
}


def import_task_modules(modules: Sequence[str], setting: str) -> None:
    """Imports each module (registering its tasks); ``setting`` names where the list came from, for the error."""
    for module in modules:
        if module in MOVED_TASK_MODULES:
            raise UserError(f"{setting}: {module!r} moved to {MOVED_TASK_MODULES[module]!r}; name that one instead")
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UserError(f"{setting}: cannot import {module!r} ({error})") from error
