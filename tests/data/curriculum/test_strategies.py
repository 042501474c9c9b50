"""Curriculum strategies: what each draws, when the naive level moves on, and its saved state."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from t5x_tl.data.curriculum.strategies import Curriculum, Level, PlateauRule

TARGET = Level(3, 2)
GRID = [Level(a, b) for b in (1, 2) for a in (1, 2, 3)]


def _draws(curriculum: Curriculum, count: int = 6000) -> collections.Counter:
    return collections.Counter(curriculum.draw(np.random.default_rng(0), count))


def test_baseline_draws_only_the_target():
    assert set(_draws(Curriculum("baseline", TARGET))) == {TARGET}


def test_mixed_draws_every_level_of_the_grid_uniformly():
    counts, n = _draws(Curriculum("mixed", TARGET)), 6000
    assert set(counts) == set(GRID)
    p = 1 / len(GRID)
    assert all(abs(counts[level] / n - p) < 4 * np.sqrt(p * (1 - p) / n) for level in GRID)


def test_combined_draws_half_naive_and_half_mixed():
    curriculum, n = Curriculum("combined", TARGET), 6000
    counts = _draws(curriculum, n)
    assert curriculum.level == Level(1, 1)
    p_naive_level = 0.5 + 0.5 / len(GRID)  # the naive half, plus the mixed draws that land there
    assert abs(counts[Level(1, 1)] / n - p_naive_level) < 4 * np.sqrt(p_naive_level * (1 - p_naive_level) / n)
    assert set(counts) == set(GRID)


def test_naive_walks_length_first_then_nesting_and_stops_at_the_target():
    curriculum = Curriculum("naive", TARGET, PlateauRule(patience=5, advance_at=0.9))
    visited = [curriculum.level]
    for step in range(1, 10):
        curriculum.observe(step, 0.95)
        visited.append(curriculum.level)
    assert visited[:6] == GRID
    assert visited[6:] == [TARGET] * 4, "the target level is the last"
    assert set(_draws(curriculum)) == {TARGET}
    assert [tuple(h) for h in curriculum.state_dict()["history"]] == [
        (0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 1, 2), (4, 2, 2), (5, 3, 2)
    ]  # fmt: skip


def test_plateau_needs_patience_evaluations_without_enough_improvement():
    curriculum = Curriculum("naive", TARGET, PlateauRule(patience=2, min_delta=0.05))
    moves = [curriculum.observe(step, accuracy) for step, accuracy in enumerate([0.3, 0.5, 0.53, 0.6, 0.62, 0.64], 1)]
    # 0.3 and 0.5 improve; 0.53 is within min_delta (stale 1); 0.6 improves on 0.5 by more; 0.62, 0.64: stale 1, 2
    assert moves == [False, False, False, False, False, True]
    assert curriculum.level == Level(2, 1)
    assert curriculum.state_dict()["best"] == -1.0, "a new level starts with no best"


def test_patience_zero_moves_only_on_the_threshold():
    curriculum = Curriculum("naive", TARGET, PlateauRule(patience=0, advance_at=0.8))
    assert not any(curriculum.observe(step, 0.5) for step in range(1, 50))
    assert curriculum.observe(50, 0.8)


def test_history_answers_which_level_a_past_batch_was_drawn_at():
    curriculum = Curriculum("naive", TARGET, PlateauRule(patience=1))
    curriculum.observe(10, 0.5)  # first observation is an improvement
    curriculum.observe(20, 0.5)  # stale -> moves on after step 20
    assert curriculum.level == Level(2, 1)
    assert [curriculum.level_at(b) for b in (0, 19, 20, 99)] == [Level(1, 1), Level(1, 1), Level(2, 1), Level(2, 1)]


def test_state_round_trips_through_json_types():
    import json

    a = Curriculum("combined", TARGET, PlateauRule(patience=1))
    for step, accuracy in enumerate([0.2, 0.2, 0.4, 0.1], 1):
        a.observe(step, accuracy)
    b = Curriculum("combined", TARGET, PlateauRule(patience=1))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict() and b.level == a.level
    assert b.draw(np.random.default_rng(3), 50) == a.draw(np.random.default_rng(3), 50)


@pytest.mark.parametrize(
    ("rule", "evaluations", "message"),
    [
        (PlateauRule(patience=11), 10, "patience=11 can never fire: the run evaluates only 10 times"),
        (PlateauRule(patience=0, advance_at=1.5), 10, "can never fire: accuracy never exceeds 1"),
        (PlateauRule(patience=-1), 10, "patience=-1 must be an integer >= 0"),
        (PlateauRule(min_delta=-0.1), 10, "min_delta=-0.1 must be >= 0"),
    ],
)
def test_rules_that_cannot_work_are_refused(rule, evaluations, message):
    with pytest.raises(ValueError, match=message):
        rule.check(evaluations)


def test_unknown_strategy_and_bad_target_are_refused():
    with pytest.raises(ValueError, match="strategy='greedy' is unknown"):
        Curriculum("greedy", TARGET)
    with pytest.raises(ValueError, match="must have length and nesting >= 1"):
        Curriculum("naive", Level(0, 1))
