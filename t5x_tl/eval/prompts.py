"""GPT-3-style prompts for zero-, one- and few-shot evaluation (Brown et al. 2020, section 2).

A prompt is an optional instruction, then K demonstrations (each an example's question and its answer), then
the evaluated example's question, joined by a separator; the model continues it with the answer. Fields of the
templates are ``str.format`` names of the examples' fields (``"{inputs}"``, ``" {targets}"``).

Demonstrations are drawn without replacement, with a seed, from a pool (a task's training split, or an episode's
own pairs); the evaluated example is never one of its own demonstrations.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Mapping, Sequence

from t5x_tl.errors import UserError

Example = Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Template:
    """How an example reads: ``question`` (what the model is given), ``answer`` (what it should continue with).

    ``answer`` has a single field, the one answers are scored or generated in (``targets`` by default).
    """

    question: str = "{inputs}"
    answer: str = " {targets}"
    separator: str = " "
    instruction: str = ""

    def fields(self, part: str) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(getattr(self, part)) if name)

    @property
    def answer_field(self) -> str:
        (field,) = self.fields("answer")
        return field

    def check(self, example_fields: Sequence[str]) -> None:
        """Refuses a template whose answer has no single field, or that names a field the examples lack."""
        if len(self.fields("answer")) != 1:
            raise UserError(
                f"answer template {self.answer!r} must hold exactly one field, the answer (e.g. ' {{targets}}')"
            )
        if not self.fields("question"):
            raise UserError(f"question template {self.question!r} holds no field of the example (e.g. '{{inputs}}')")
        missing = sorted(set(self.fields("question") + self.fields("answer")) - set(example_fields))
        if missing:
            raise UserError(
                f"template fields {missing} are missing from the examples, which have fields {sorted(example_fields)}"
            )

    def question_of(self, example: Example) -> str:
        return self.question.format(**example)

    def answer_of(self, answer: str) -> str:
        return self.answer.format(**{self.answer_field: answer})

    def demonstration(self, example: Example) -> str:
        return self.question_of(example) + self.answer_of(example[self.answer_field])

    def context(self, demonstrations: Sequence[Example], query: Example) -> str:
        """The text the model continues: instruction, demonstrations and the query's question."""
        parts = [self.demonstration(d) for d in demonstrations] + [self.question_of(query)]
        return (self.instruction + self.separator if self.instruction else "") + self.separator.join(parts)


def demonstration_indices(pool_size: int, k: int, seed: int, query_index: int, exclude: int | None = None) -> list[int]:
    """``k`` distinct pool indices for query ``query_index``, drawn by a seed of their own, never ``exclude``
    (the query's own index when the pool is the evaluated split)."""
    available = pool_size - (exclude is not None and 0 <= exclude < pool_size)
    if k < 0:
        raise UserError(f"K={k} demonstrations: K must be 0 or more")
    if k > available:
        raise UserError(
            f"K={k} demonstrations but the pool holds only {available} candidate examples; lower K or use a "
            "larger demonstration split"
        )
    rng = random.Random(f"{seed}:{query_index}")
    candidates = [i for i in range(pool_size) if i != exclude]
    return rng.sample(candidates, k)


def shuffled_labels(demonstrations: Sequence[Example], field: str, seed: int) -> list[dict[str, str]]:
    """The demonstrations with their answers permuted among them (a control: the format survives, the
    question-answer mapping does not)."""
    answers = [d[field] for d in demonstrations]
    random.Random(seed).shuffle(answers)
    return [{**d, field: a} for d, a in zip(demonstrations, answers, strict=True)]
