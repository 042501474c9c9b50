"""SeqIO tasks of "Learning to Execute": one task per family and difficulty level, read character by character.

Importing this module registers every supported level of the three families:

=================================  ===============================================  =========================
task                               inputs -> targets                                levels
=================================  ===============================================  =========================
``lte_program_l{L}_n{N}``          a program (:func:`programs.program`) -> output   L 1..12, N 1..8
``lte_addition_l{L}``              ``print(a+b)`` -> the sum                        L 1..12
``lte_copy_l{L}``                  L digits -> the same digits                      L 1..64
=================================  ===============================================  =========================

Examples are generated on the fly, so the train split never ends. A text's split is fixed by a hash of the text
itself (90% train, 5% validation, 5% test), so no program appears in two splits. Validation and test are the
first :data:`EVAL_EXAMPLES` examples of a fixed stream, the same for every run; the train stream follows the
run's seed and each host's shard. The vocabulary is bytes: one token per character, as the paper's models read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import seqio

from t5x_tl.data.curriculum.execute import programs
from t5x_tl.data.generated_source import SPLITS, GeneratedSource
from t5x_tl.eval import metrics

EVAL_EXAMPLES = 1000
_SPLIT_BUCKETS = {"train": range(0, 90), "validation": range(90, 95), "test": range(95, 100)}
_MAX_REJECTIONS = 100_000
VOCABULARY = seqio.ByteVocabulary()


def _family_generators() -> dict[str, Callable[[np.random.Generator, int, int], programs.Program]]:
    return {
        "program": programs.program,
        "addition": lambda rng, length, nesting: programs.addition(rng, length),
        "copy": lambda rng, length, nesting: programs.copy(rng, length),
    }


FAMILIES = tuple(_family_generators())


def task_name(family: str, length: int, nesting: int = 1) -> str:
    """``lte_program_l4_n2``; addition and copy have no nesting: ``lte_addition_l4``."""
    return f"lte_{family}_l{length}" + (f"_n{nesting}" if family == "program" else "")


def check_level(family: str, length: int, nesting: int = 1) -> None:
    """Raises ValueError naming the bad value unless the generator supports this level."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is unknown; choose one of {FAMILIES}")
    if family != "program" and nesting != 1:
        raise ValueError(f"the {family} task has no nesting (it must be 1, got {nesting!r})")
    programs.check_level(length, nesting, programs.MAX_COPY_LENGTH if family == "copy" else programs.MAX_LENGTH)


def split_of(text: str) -> str:
    """The split a text belongs to, from a hash of the text: the same program is never in two splits."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % 100
    return next(split for split, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


def examples(family: str, length: int, nesting: int, split: str, seed: int) -> Iterator[programs.Program]:
    """The endless stream of ``split``'s examples at this level for ``seed``."""
    generate = _family_generators()[family]
    rng = np.random.default_rng([FAMILIES.index(family), length, nesting, SPLITS.index(split), seed])
    rejected = 0
    while True:
        example = generate(rng, length, nesting)
        if split_of(example.code) == split:
            rejected = 0
            yield example
            continue
        rejected += 1
        if rejected > _MAX_REJECTIONS:
            raise RuntimeError(f"{task_name(family, length, nesting)} has (almost) no {split} examples to draw")


def _program_source(family: str, length: int, nesting: int) -> GeneratedSource:
    """Generated examples of one level as a SeqIO source, sharded per host at the source."""
    check_level(family, length, nesting)

    def stream(split: str, seed: int) -> Iterator[dict[str, str]]:
        for example in examples(family, length, nesting, split, seed):
            yield {"inputs": example.code, "targets": example.output}

    return GeneratedSource(stream, ("inputs", "targets"), EVAL_EXAMPLES)


def register(family: str, length: int, nesting: int = 1) -> str:
    """Registers (once) the task of this level and returns its name; ValueError for an unsupported level."""
    check_level(family, length, nesting)
    name = task_name(family, length, nesting)
    if name not in seqio.TaskRegistry.names():
        features = {key: seqio.Feature(VOCABULARY, add_eos=True) for key in ("inputs", "targets")}
        seqio.TaskRegistry.add(
            name,
            source=_program_source(family, length, nesting),
            preprocessors=[
                seqio.preprocessors.tokenize,
                seqio.preprocessors.append_eos_after_trim,
            ],
            output_features=features,
            metric_fns=[metrics.accuracy],
        )
    return name


def _register_all() -> None:
    for length in range(1, programs.MAX_LENGTH + 1):
        register("addition", length)
        for nesting in range(1, programs.MAX_NESTING + 1):
            register("program", length, nesting)
    for length in range(1, programs.MAX_COPY_LENGTH + 1):
        register("copy", length)


_register_all()
