"""Curriculum strategies of "Learning to Execute" over a grid of difficulty levels (length x nesting).

A :class:`Curriculum` decides, for every training example, the level it is drawn at; for the naive strategy
it also listens to validation accuracy at its current level and moves on when learning stops making progress.
It is pure bookkeeping (no data, no model), and its whole state is a small JSON record, saved with each
checkpoint so that a resumed run continues the curriculum where it was.

==========  =====================================================================================
strategy    each example is drawn at
==========  =====================================================================================
baseline    the target level (length a, nesting b)
naive       the current level, which starts at (1, 1); on a plateau length rises by 1, and after
            length a it resets to 1 while nesting rises by 1; it stops at (a, b)
mixed       length uniform in 1..a and nesting uniform in 1..b, independently
combined    naive or mixed, with equal probability
==========  =====================================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

STRATEGIES = ("baseline", "naive", "mixed", "combined")


@dataclasses.dataclass(frozen=True, order=True)
class Level:
    length: int
    nesting: int = 1


@dataclasses.dataclass(frozen=True)
class PlateauRule:
    """When the naive level moves on: after ``patience`` evaluations in a row without an improvement of more
    than ``min_delta`` over the level's best accuracy, or at once when accuracy reaches ``advance_at``.
    ``patience=0`` leaves only the threshold."""

    patience: int = 3
    min_delta: float = 0.0
    advance_at: float = 1.0

    def check(self, evaluations: int) -> None:
        """Raises ValueError if the rule is malformed or can never fire within ``evaluations`` evaluations."""
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience={self.patience!r} must be an integer >= 0 (0: advance on the threshold only)")
        if self.min_delta < 0:
            raise ValueError(f"min_delta={self.min_delta!r} must be >= 0")
        if self.patience == 0 and self.advance_at > 1:
            raise ValueError(
                f"patience=0 with advance_at={self.advance_at} can never fire: accuracy never exceeds 1; "
                "set advance_at <= 1 or patience >= 1"
            )
        if self.patience > evaluations:
            raise ValueError(
                f"patience={self.patience} can never fire: the run evaluates only {evaluations} times; "
                "lower the patience or evaluate more often"
            )


@dataclasses.dataclass
class NaiveProgress:
    """Where the naive strategy is, and how its level has been doing."""

    level: Level
    best: float = -1.0
    stale: int = 0
    history: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)  # (step, length, nesting)


class Curriculum:
    """Draws example levels for ``strategy`` towards ``target``; ``observe`` feeds it validation accuracy."""

    def __init__(self, strategy: str, target: Level, rule: PlateauRule = PlateauRule()):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is unknown; choose one of {STRATEGIES}")
        if target.length < 1 or target.nesting < 1:
            raise ValueError(f"the target level {target} must have length and nesting >= 1")
        self.strategy, self.target, self.rule = strategy, target, rule
        self.progress = NaiveProgress(Level(1, 1), history=[(0, 1, 1)])

    @property
    def listens(self) -> bool:
        """Whether validation accuracy at :attr:`level` changes what is drawn."""
        return self.strategy in ("naive", "combined")

    @property
    def level(self) -> Level:
        """The naive strategy's current level."""
        return self.progress.level

    def level_at(self, batch: int) -> Level:
        """The naive level that batch number ``batch`` (0-based) was drawn at, from the recorded history."""
        length, nesting = next((a, b) for step, a, b in reversed(self.progress.history) if step <= batch)
        return Level(length, nesting)

    def draw(self, rng: np.random.Generator, count: int, naive_level: Level | None = None) -> list[Level]:
        """The levels of ``count`` examples (the naive ones at ``naive_level``, by default the current one)."""
        naive_level = naive_level or self.level
        if self.strategy == "baseline":
            return [self.target] * count
        lengths = rng.integers(1, self.target.length + 1, size=count)
        nestings = rng.integers(1, self.target.nesting + 1, size=count)
        mixed = [Level(int(a), int(b)) for a, b in zip(lengths, nestings, strict=True)]
        if self.strategy == "mixed":
            return mixed
        if self.strategy == "naive":
            return [naive_level] * count
        naive = rng.random(count) < 0.5
        return [naive_level if n else m for n, m in zip(naive, mixed, strict=True)]

    def observe(self, step: int, accuracy: float) -> bool:
        """Records validation accuracy at :attr:`level` after ``step``; returns whether the level moved on."""
        progress, rule = self.progress, self.rule
        if accuracy > progress.best + rule.min_delta:
            progress.best, progress.stale = accuracy, 0
        else:
            progress.stale += 1
        plateau = rule.patience > 0 and progress.stale >= rule.patience
        if not (plateau or accuracy >= rule.advance_at) or progress.level == self.target:
            return False
        length, nesting = progress.level.length + 1, progress.level.nesting
        if length > self.target.length:
            length, nesting = 1, nesting + 1
        self.progress = NaiveProgress(Level(length, nesting), history=[*progress.history, (step, length, nesting)])
        return True

    def state_dict(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "length": progress.level.length,
            "nesting": progress.level.nesting,
            "best": progress.best,
            "stale": progress.stale,
            "history": [list(entry) for entry in progress.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = NaiveProgress(
            Level(state["length"], state["nesting"]),
            state["best"],
            state["stale"],
            [tuple(entry) for entry in state["history"]],
        )

    def levels(self) -> list[Level]:
        """Every level any strategy may draw: the grid up to the target."""
        return [Level(a, b) for b in range(1, self.target.nesting + 1) for a in range(1, self.target.length + 1)]
