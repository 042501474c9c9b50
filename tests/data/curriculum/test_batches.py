"""Curriculum batches: each example comes from the level drawn for it, and a restored stream continues exactly."""

from __future__ import annotations

import numpy as np
import pytest

from t5x_tl.data.curriculum.batches import CurriculumBatches, check_template
from t5x_tl.data.curriculum.execute import tasks  # noqa: F401 - registers the level tasks
from t5x_tl.data.curriculum.strategies import Curriculum, Level, PlateauRule
from t5x_tl.data.pipeline import BatchSpec

COPY = "lte_copy_l{length}"
SPEC = BatchSpec(task="", split="train", inputs_length=8, targets_length=8, batch_size=16, seed=5)


def _stream(strategy: str) -> CurriculumBatches:
    return CurriculumBatches(Curriculum(strategy, Level(5), PlateauRule(patience=1)), COPY, SPEC)


def _lengths(batch: dict[str, np.ndarray]) -> list[int]:
    """A copy example's level is its digit count: the non-padding input tokens less EOS."""
    return [int(n) - 1 for n in (batch["encoder_input_tokens"] > 0).sum(axis=1)]


def test_every_example_is_drawn_at_its_level():
    stream = _stream("mixed")
    batch = next(stream)
    assert batch["encoder_input_tokens"].shape == (16, 8) and batch["decoder_target_tokens"].shape == (16, 8)
    rng = np.random.default_rng([SPEC.seed, SPEC.host_index, 0])
    assert _lengths(batch) == [level.length for level in stream.curriculum.draw(rng, 16)]
    np.testing.assert_array_equal(batch["encoder_input_tokens"], batch["decoder_target_tokens"])  # copy task
    assert stream.consumed == {f"lte_copy_l{n}": _lengths(batch).count(n) for n in set(_lengths(batch))}


def test_naive_batches_follow_the_level_as_it_moves():
    stream = _stream("naive")
    assert set(_lengths(next(stream))) == {1}
    stream.curriculum.observe(1, 0.5)
    stream.curriculum.observe(1, 0.5)  # plateau with patience 1
    assert set(_lengths(next(stream))) == {2}


@pytest.mark.parametrize("strategy", ["naive", "combined"])
def test_a_restored_stream_gives_exactly_the_batches_that_followed(strategy):
    straight = _stream(strategy)
    saved: dict | None = None
    batches = []
    for step in range(1, 9):
        batches.append(next(straight))
        if step % 2 == 0:
            straight.curriculum.observe(step, 0.1 * (step % 3))  # moves on at some evaluations, not others
        if step == 5:
            saved = straight.state_dict()
    assert straight.curriculum.level != Level(1), "the curriculum moved during the run"
    resumed = _stream(strategy)
    resumed.load_state_dict(saved)
    for step in range(6, 9):
        batch = next(resumed)
        if step % 2 == 0:
            resumed.curriculum.observe(step, 0.1 * (step % 3))
        for key, value in batches[step - 1].items():
            np.testing.assert_array_equal(batch[key], value)
    assert resumed.state_dict() == straight.state_dict()
    resumed.close()


def test_a_stream_of_another_plan_is_refused():
    saved = _stream("naive").state_dict()
    with pytest.raises(ValueError, match="resume with the config that wrote it"):
        _stream("combined").load_state_dict(saved)
    with pytest.raises(ValueError, match="not a curriculum"):
        _stream("naive").load_state_dict({"batches": 3})


def test_templates_must_name_registered_tasks_for_every_level():
    with pytest.raises(ValueError, match=r"must contain '\{length\}' and '\{nesting\}'"):
        check_template("lte_program_l4_n2", Curriculum("mixed", Level(2, 2)))
    with pytest.raises(ValueError, match=r"not registered: \['lte_copy_l65'"):
        check_template(COPY, Curriculum("mixed", Level(66)))
