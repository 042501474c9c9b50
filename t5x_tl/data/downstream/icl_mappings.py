"""Sequences that each carry a fresh symbol -> label mapping: where in-context learning can be trained and shown.

An episode draws ``items`` distinct letters and deals them the labels (digits below ``labels``, each label to as
many letters as the others, give or take one) at random, then lists pairs ``"k1,b0,k1,..."`` drawn from them.
The mapping is new in every sequence, so nothing about it can be stored in the weights: a label is predictable
only from an earlier pair of the same letter in the same sequence, which is what a few-shot prompt provides.
Balanced labels leave no shortcut: how often a label occurs says nothing about which letter has it. A mapping's
split is fixed by a hash of the mapping (90/5/5), so the mappings evaluated on are never trained on.

The mixture ``icl_mappings`` adds ``icl_repeats``, fresh random strings repeated: there copying pays from the
first repetition, so the model forms induction heads (attend to what followed the last occurrence of the
current token: Olsson et al. 2022) within a few hundred steps, and reuses them on the mappings. Trained on the
mappings alone, the tiny model stayed at chance on the labels for 2,000 steps. Importing this module registers
the tasks and the mixture; the vocabulary is bytes (one token per character).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import string
from collections.abc import Iterator

import seqio

from t5x_tl.data.generated_source import GeneratedSource, Stream
from t5x_tl.data.mixtures import register_mixture
from t5x_tl.eval.prompts import Example, Template

VOCABULARY = seqio.ByteVocabulary()
TEMPLATE = Template(question="{inputs}", answer="{targets}", separator=",")
MIXTURE = "icl_mappings"
REPEATS = "icl_repeats"
EVAL_EPISODES = 1000
_SYMBOLS = string.ascii_lowercase
_SPLIT_BUCKETS = {"train": range(0, 90), "validation": range(90, 95), "test": range(95, 100)}

Mapping = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class MappingSpec:
    """Episodes of ``items`` letters mapped to ``labels`` labels; training sequences hold ``pairs`` pairs."""

    items: int = 4
    labels: int = 2
    pairs: int = 16

    def __post_init__(self) -> None:
        if not 2 <= self.items <= len(_SYMBOLS):
            raise ValueError(f"items={self.items} must be between 2 and {len(_SYMBOLS)}")
        if not 2 <= self.labels <= 10:
            raise ValueError(f"labels={self.labels} must be between 2 and 10 (one digit each)")
        if self.pairs < 1:
            raise ValueError(f"pairs={self.pairs} must be at least 1")

    @property
    def name(self) -> str:
        return f"icl_mappings_i{self.items}_l{self.labels}"

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(label) for label in range(self.labels))


DEFAULT_SPECS = (MappingSpec(items=4, labels=2), MappingSpec(items=6, labels=3))


def split_of(mapping: Mapping) -> str:
    """The split a mapping belongs to, from a hash of its sorted pairs."""
    text = ",".join(f"{x}{y}" for x, y in sorted(mapping))
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % 100
    return next(split for split, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


def mappings(spec: MappingSpec, split: str, seed: int) -> Iterator[Mapping]:
    """The endless stream of ``split``'s mappings for ``seed``."""
    if split not in _SPLIT_BUCKETS:
        raise ValueError(f"split={split!r} is unknown; choose one of {tuple(_SPLIT_BUCKETS)}")
    rng = random.Random(f"{spec.name}:{split}:{seed}")
    while True:
        letters = rng.sample(_SYMBOLS, spec.items)
        labels = [spec.choices[i % spec.labels] for i in range(spec.items)]
        rng.shuffle(labels)  # balanced: how often a label occurs says nothing about which letter has it
        mapping = tuple(zip(letters, labels, strict=True))
        if split_of(mapping) == split:
            yield mapping


def _pairs(mapping: Mapping, count: int, rng: random.Random) -> list[dict[str, str]]:
    return [{"inputs": x, "targets": y} for x, y in (rng.choice(mapping) for _ in range(count))]


def text_of(pairs: list[dict[str, str]]) -> str:
    """Pairs as one sequence, in the few-shot template's format."""
    return TEMPLATE.separator.join(TEMPLATE.demonstration(p) for p in pairs)


def sequences(spec: MappingSpec, split: str, seed: int) -> Iterator[dict[str, str]]:
    """Training sequences: ``spec.pairs`` pairs of one fresh mapping each."""
    rng = random.Random(f"{spec.name}:pairs:{split}:{seed}")
    for mapping in mappings(spec, split, seed):
        yield {"targets": text_of(_pairs(mapping, spec.pairs, rng))}


def episodes(
    spec: MappingSpec, split: str, count: int, pool_size: int, seed: int = 0
) -> tuple[list[Example], list[list[Example]]]:
    """``count`` evaluation queries (a letter and its label) and each one's pool of ``pool_size`` pairs of the
    same mapping, where its demonstrations come from."""
    rng = random.Random(f"{spec.name}:episodes:{split}:{seed}")
    queries, pools = [], []
    stream = mappings(spec, split, seed)
    for _ in range(count):
        mapping = next(stream)
        queries.append(_pairs(mapping, 1, rng)[0])
        pools.append(_pairs(mapping, pool_size, rng))
    return queries, pools


def repeats(split: str, seed: int, length: int = 3 * MappingSpec.pairs - 1) -> Iterator[dict[str, str]]:
    """Training sequences of ``length`` characters: a fresh string of 6 to 20 letters, repeated."""
    rng = random.Random(f"icl_repeats:{split}:{seed}")
    while True:
        letters = "".join(rng.choices(_SYMBOLS, k=rng.randint(6, 20)))
        yield {"targets": (letters * (length // len(letters) + 1))[:length]}


def _register_task(name: str, stream: Stream) -> str:
    if name not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            name,
            source=GeneratedSource(stream, ("targets",), EVAL_EPISODES),
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
            output_features={"targets": seqio.Feature(VOCABULARY, add_eos=True)},
        )
    return name


def register(spec: MappingSpec) -> str:
    """Registers (once) the decoder-only training task of ``spec`` and returns its name."""
    return _register_task(spec.name, lambda split, seed: sequences(spec, split, seed))


if MIXTURE not in seqio.MixtureRegistry.names():
    tasks = [register(spec) for spec in DEFAULT_SPECS] + [_register_task(REPEATS, repeats)]
    register_mixture(MIXTURE, tasks, strategy="equal")
