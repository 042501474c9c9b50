"""Mixing rates of the T5 study (Raffel et al. 2020, section 3.5.2) as SeqIO rate functions.

A rate function maps a task to an unnormalised rate; a ``seqio.Mixture`` draws each example from task ``i`` with
probability ``rate_i / sum(rates)``. Strategies: ``examples_proportional`` (rate ``min(n, cap)``),
``temperature`` (rate ``min(n, cap) ** (1 / temperature)``; temperature 1 is examples-proportional) and
``equal`` (every task alike).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import seqio

STRATEGIES = ("examples_proportional", "temperature", "equal")

RateFn = Callable[[seqio.Task], float]


def _check_cap(cap: int | None) -> None:
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 1):
        raise ValueError(f"cap={cap!r} must be None (no cap) or an integer of at least 1")


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} must be a finite number above 0")


def num_examples(task: seqio.Task, counts: Mapping[str, int] | None = None, split: str = "train") -> int:
    """``counts[task.name]`` when given, else the source's ``task.num_input_examples(split)``.

    The source counts examples before preprocessing (documents, for span corruption, which cuts each into
    several examples). SeqIO's ``mixing_rate_num_examples`` reads the cached stats of a cached task instead, and
    the same source count otherwise; ``counts`` covers tasks whose source does not know its size (the built-in
    corpus) and lets a caller give preprocessed counts.
    """
    count = (counts or {}).get(task.name)
    if count is None:
        count = task.num_input_examples(split)
    if count is None:
        raise ValueError(f"task {task.name!r} does not know its number of {split!r} examples; pass it in counts")
    if count < 0:
        raise ValueError(f"task {task.name!r} has a negative number of {split!r} examples: {count}")
    return count


def examples_rate(
    cap: int | None = None,
    temperature: float = 1.0,
    scale: float = 1.0,
    counts: Mapping[str, int] | None = None,
    split: str = "train",
) -> RateFn:
    """The rate ``min(scale * n, cap) ** (1 / temperature)`` of a task of ``n`` examples (see ``num_examples``).

    The order (scale, then cap, then temperature) is that of ``seqio.mixing_rate_num_examples``; unlike it, a
    cap of 0 is refused rather than read as no cap.
    """
    _check_cap(cap)
    _check_positive("temperature", temperature)
    _check_positive("scale", scale)

    def rate(task: seqio.Task) -> float:
        scaled = scale * num_examples(task, counts, split)
        capped = scaled if cap is None else min(scaled, cap)
        return float(capped ** (1.0 / temperature))

    return rate


def equal_rate(task: seqio.Task) -> float:
    """Every task sampled alike, whatever its size."""
    return 1.0


def rate_function(
    strategy: str,
    cap: int | None = None,
    temperature: float = 1.0,
    counts: Mapping[str, int] | None = None,
) -> RateFn:
    """The rate function of a strategy, refusing parameters it would ignore (a silent misconfiguration)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is unknown; choose one of {STRATEGIES}")
    _check_cap(cap)
    _check_positive("temperature", temperature)
    if strategy == "equal":
        if cap is not None or temperature != 1.0:
            raise ValueError("strategy='equal' takes neither cap nor temperature")
        return equal_rate
    if strategy == "examples_proportional" and temperature != 1.0:
        raise ValueError("temperature applies to strategy='temperature'; examples_proportional is temperature=1")
    return examples_rate(cap=cap, temperature=temperature, counts=counts)


def register_mixture(
    name: str,
    tasks: Sequence[str | seqio.Task],
    strategy: str = "examples_proportional",
    cap: int | None = None,
    temperature: float = 1.0,
    counts: Mapping[str, int] | None = None,
) -> seqio.Mixture:
    """Registers a mixture of ``tasks`` (names or tasks, not mixtures) mixed by ``strategy``.

    Every rate is computed once here, so a task of unknown size fails now rather than at the first read, and a
    failed call registers nothing. Read the mixture with ``num_epochs=None`` (the default of
    ``seqio.Mixture.get_dataset``, and of ``BatchSpec(repeat=True)``): every task then repeats, so the stream
    keeps the rates forever. With a finite ``num_epochs`` the stream ends when its first task runs out (SeqIO
    samples with ``stop_on_empty_dataset=True``).
    """
    rate = rate_function(strategy, cap, temperature, counts)
    resolved = [seqio.TaskRegistry.get(task) if isinstance(task, str) else task for task in tasks]
    if not resolved:
        raise ValueError(f"tasks is empty; mixture {name!r} needs at least one task")
    for task in resolved:
        rate(task)
    return seqio.MixtureRegistry.add(name, [(task, rate) for task in resolved])
