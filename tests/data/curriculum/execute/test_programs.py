"""Learning-to-Execute programs: every target is what Python prints, at every supported level."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from t5x_tl.data.curriculum.execute import programs


def _printed(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    return out.getvalue()


@pytest.mark.parametrize("nesting", range(1, programs.MAX_NESTING + 1))
def test_every_program_prints_its_target(nesting):
    rng = np.random.default_rng(nesting)
    for length in range(1, programs.MAX_LENGTH + 1):
        for _ in range(60):  # 8 x 12 x 60 = 5760 programs in all
            example = programs.program(rng, length, nesting)
            assert _printed(example.code) == example.output + "\n", example.code


def test_literals_have_at_most_length_digits_and_small_numbers_stay_small():
    rng = np.random.default_rng(0)
    for length in (1, 2, 4):
        for _ in range(300):
            numbers = [int(n) for n in re.findall(r"\d+", programs.program(rng, length, 3).code)]
            assert all(n < 10**length or n <= 4 * length for n in numbers)
            assert max(numbers) >= 1


def test_all_six_operations_occur():
    rng = np.random.default_rng(1)
    codes = [programs.program(rng, 3, 2).code for _ in range(500)]
    text = "\n".join(codes)
    for marker in ("+", "-", "*", " if ", "for ", "="):
        assert marker in text, marker
    # nesting 1 applies exactly one operation: one pair of brackets or one assignment/loop
    single = [programs.program(rng, 3, 1).code for _ in range(300)]
    assert all(c.count("print(") == 1 and c.count("for ") <= 1 and c.count(" if ") <= 1 for c in single)


def test_addition_and_copy():
    rng = np.random.default_rng(2)
    for length in (1, 5, 12):
        example = programs.addition(rng, length)
        assert _printed(example.code) == example.output + "\n"
        assert all(len(n) <= length for n in re.findall(r"\d+", example.code))
        digits = programs.copy(rng, length)
        assert digits.code == digits.output and len(digits.code) == length and digits.code.isdigit()


def test_same_generator_state_gives_the_same_program():
    a = [programs.program(np.random.default_rng(7), 4, 3) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize(
    ("length", "nesting", "message"),
    [
        (0, 1, "length=0 is outside"),
        (1, 0, "nesting=0 is outside"),
        (programs.MAX_LENGTH + 1, 1, "use an integer in 1..12"),
        (2, programs.MAX_NESTING + 1, "nesting=9 is outside"),
        (2.5, 1, "length=2.5"),
    ],
)
def test_unsupported_levels_are_clear_errors(length, nesting, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        programs.program(np.random.default_rng(0), length, nesting)
