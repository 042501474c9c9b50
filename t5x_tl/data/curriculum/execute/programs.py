"""Programs of "Learning to Execute" (Zaremba & Sutskever, 2015): short Python that prints one integer.

Two knobs set a program's difficulty, as in the paper. ``length`` is the number of digits of its literals
(each drawn uniformly from ``[1, 10**length)``); ``nesting`` is how many operations are composed, each taking
the previous expression as one operand. The operations are the paper's: addition, subtraction, multiplication
by a small number, variable assignment, if-else expressions and for-loops. Assignments and loops become lines
before the final ``print``; the target is what Python prints. The paper's two simpler tasks, addition of two
numbers and memorisation (copy) of a digit sequence, use ``length`` alone.

Everything is computed alongside the text, never by running it; tests run thousands of programs through
Python to hold the two together.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable

import numpy as np

MAX_LENGTH = 12  # digits of a literal
MAX_NESTING = 8  # composed operations; each uses at most two fresh variable names
MAX_COPY_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class Program:
    code: str  # Python source; its last line prints the value
    output: str  # what the program prints, without the newline


@dataclasses.dataclass
class _Builder:
    """The lines written so far and the variable names still free, while one program is composed."""

    rng: np.random.Generator
    length: int
    lines: list[str] = dataclasses.field(default_factory=list)
    names: list[str] = dataclasses.field(default_factory=lambda: list(string.ascii_lowercase))

    def literal(self) -> int:
        return int(self.rng.integers(1, 10**self.length))

    def small(self) -> int:
        """The small factor and loop count: at most four times the length, as in the paper."""
        return int(self.rng.integers(1, 4 * self.length + 1))

    def fresh_name(self) -> str:
        return self.names.pop(int(self.rng.integers(len(self.names))))


Expression = tuple[str, int]  # source text and value


def _add(b: _Builder, x: Expression) -> Expression:
    n = b.literal()
    return (f"({x[0]}+{n})", x[1] + n) if b.rng.random() < 0.5 else (f"({n}+{x[0]})", n + x[1])


def _subtract(b: _Builder, x: Expression) -> Expression:
    n = b.literal()
    return (f"({x[0]}-{n})", x[1] - n) if b.rng.random() < 0.5 else (f"({n}-{x[0]})", n - x[1])


def _multiply(b: _Builder, x: Expression) -> Expression:
    k = b.small()
    return (f"({x[0]}*{k})", x[1] * k) if b.rng.random() < 0.5 else (f"({k}*{x[0]})", k * x[1])


def _assign(b: _Builder, x: Expression) -> Expression:
    name = b.fresh_name()
    b.lines.append(f"{name}={x[0]}")
    return name, x[1]


def _if_else(b: _Builder, x: Expression) -> Expression:
    left, right, other = b.literal(), b.literal(), b.literal()
    comparison, holds = (f"{left}<{right}", left < right) if b.rng.random() < 0.5 else (f"{left}>{right}", left > right)
    if b.rng.random() < 0.5:
        return f"({x[0]} if {comparison} else {other})", x[1] if holds else other
    return f"({other} if {comparison} else {x[0]})", other if holds else x[1]


def _for_loop(b: _Builder, x: Expression) -> Expression:
    name, counter = b.fresh_name(), b.fresh_name()
    times, step = b.small(), b.literal()
    sign = "+" if b.rng.random() < 0.5 else "-"
    b.lines += [f"{name}={x[0]}", f"for {counter} in range({times}):", f"  {name}{sign}={step}"]
    return name, x[1] + times * step if sign == "+" else x[1] - times * step


OPERATIONS: tuple[Callable[[_Builder, Expression], Expression], ...] = (
    _add,
    _subtract,
    _multiply,
    _assign,
    _if_else,
    _for_loop,
)


def check_level(length: int, nesting: int = 1, max_length: int = MAX_LENGTH) -> None:
    """Raises ValueError unless ``1 <= length <= max_length`` and ``1 <= nesting <= MAX_NESTING``."""
    for name, value, top in (("length", length, max_length), ("nesting", nesting, MAX_NESTING)):
        if not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"{name}={value!r} is outside what the generator supports: use an integer in 1..{top}")


def program(rng: np.random.Generator, length: int, nesting: int) -> Program:
    """A program of ``nesting`` composed operations over ``length``-digit literals."""
    check_level(length, nesting)
    builder = _Builder(rng, length)
    first = builder.literal()
    expression: Expression = (str(first), first)
    for _ in range(nesting):
        expression = OPERATIONS[int(rng.integers(len(OPERATIONS)))](builder, expression)
    return Program("\n".join([*builder.lines, f"print({expression[0]})"]), str(expression[1]))


def addition(rng: np.random.Generator, length: int) -> Program:
    """``print(a+b)`` for two ``length``-digit numbers."""
    check_level(length)
    builder = _Builder(rng, length)
    a, b = builder.literal(), builder.literal()
    return Program(f"print({a}+{b})", str(a + b))


def copy(rng: np.random.Generator, length: int) -> Program:
    """A ``length``-digit sequence to repeat verbatim (the paper's memorisation task)."""
    check_level(length, max_length=MAX_COPY_LENGTH)
    digits = "".join(str(d) for d in rng.integers(0, 10, size=length))
    return Program(digits, digits)
