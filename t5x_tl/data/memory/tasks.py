"""Tasks where the answer sits segments away from the question: what a Recurrent Memory Transformer must carry.

Every example is laid out in tokens of the built-in SentencePiece vocabulary, so that where a fact lands is
exact: inputs of ``segments x segment_size`` positions (EOS included) whose last segment ends with the question,
the rest distractor text from the built-in corpus (as the RMT scaling report hides bAbI facts in PG-19 text).
Names, items, places and answers are whole-word pieces of the vocabulary (one token each), so every answer is
one token and a few-way choice.

- ``memorize``: one fact ("<item> is in <place>") at the very start; "where is <item>".
- ``detect``: the same fact anywhere before the last segment (detect-and-memorise).
- ``reasoning``: two people each take an item and go to a place, the four facts scattered before the last
  segment; "where is <item>" needs both facts of the one who took it (bAbI's two supporting facts).
- ``retrieval``: pairs "<key> stands for <value>" spread before the last segment; "what is <key>" asks one.
- ``copy`` / ``reverse``: a sequence of word tokens filling every segment but the last; the targets are the
  sequence, or the sequence reversed.
- ``long_document``: classification of a long document by evidence spread through all of it (an analogue of
  Hyperpartisan news detection): three trips ("<name> went to <place>") in every segment, four in the first,
  each to a place of one of two regions at random; the label says which region most trips went to. The last
  segment alone decides the label only as often as its own three trips agree with all of them.

Facts are drawn afresh for every example; the evaluation splits are fixed streams of their own seed. The same
fact can occur in training and evaluation: what is measured is carrying it across segments, not knowing it.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Iterator, Sequence

import seqio

from t5x_tl.data.generated_source import GeneratedSource
from t5x_tl.data.tasks.builtin import BuiltinData, builtin_vocabulary
from t5x_tl.eval import metrics

TASKS = ("memorize", "detect", "reasoning", "retrieval", "copy", "reverse", "long_document")
MENTIONS_PER_SEGMENT = 3  # long documents: evidence in every segment
EVAL_EXAMPLES = 1000
DEFAULT_DATA = BuiltinData()
_WORDS_PER_ROLE = 16  # names, items, places, keys: disjoint sets of whole-word tokens


@dataclasses.dataclass(frozen=True)
class MemoryTaskSpec:
    """``task`` over inputs of ``segments`` segments of ``segment_size`` tokens; ``choices`` answers (for
    ``retrieval``, values) and ``pairs`` key-value pairs."""

    task: str
    segments: int = 4
    segment_size: int = 32
    choices: int = 4
    pairs: int = 4

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown memory task {self.task!r}; choose one of {TASKS}")
        if self.segments < 2:
            raise ValueError(f"segments={self.segments}: a memory task needs at least 2 (facts, then the question)")
        if self.segment_size < 16:
            raise ValueError(f"segment_size={self.segment_size} must be at least 16, to hold a fact or a question")
        if not 2 <= self.choices <= _WORDS_PER_ROLE:
            raise ValueError(f"choices={self.choices} must be between 2 and {_WORDS_PER_ROLE}")
        if not 1 <= self.pairs <= _WORDS_PER_ROLE:
            raise ValueError(f"pairs={self.pairs} must be between 1 and {_WORDS_PER_ROLE}")

    @property
    def name(self) -> str:
        suffix = f"_c{self.choices}" + (f"_p{self.pairs}" if self.task == "retrieval" else "")
        return f"rmt_{self.task}_n{self.segments}_s{self.segment_size}{suffix}"

    @property
    def inputs_length(self) -> int:
        return self.segments * self.segment_size

    @property
    def targets_length(self) -> int:
        """Answer and EOS; the whole sequence and EOS for copy and reverse."""
        return self.history_length + 1 if self.task in ("copy", "reverse") else 2

    @property
    def chance(self) -> float:
        """The accuracy of guessing: one over the answers (two labels for long documents)."""
        return 1 / (2 if self.task == "long_document" else self.choices)

    @property
    def history_length(self) -> int:
        """Positions before the last segment, where facts live."""
        return (self.segments - 1) * self.segment_size


class Lexicon:
    """Whole-word single-token pieces of a vocabulary, dealt into roles, and tokenized distractor text."""

    def __init__(self, vocabulary: seqio.SentencePieceVocabulary, texts: Sequence[str]):
        self.vocabulary = vocabulary
        tokenizer = vocabulary.tokenizer
        words = []
        for index in range(3, tokenizer.get_piece_size()):
            piece = tokenizer.id_to_piece(index)
            if piece.startswith("\u2581") and piece[1:].isalpha() and len(piece) >= 4:
                if list(vocabulary.encode(piece[1:])) == [index]:
                    words.append(index)
        if len(words) < 5 * _WORDS_PER_ROLE:
            raise ValueError(f"the vocabulary has {len(words)} whole-word pieces; memory tasks need 80")
        random.Random("lexicon").shuffle(words)
        roles = [words[i * _WORDS_PER_ROLE : (i + 1) * _WORDS_PER_ROLE] for i in range(5)]
        self.names, self.items, self.places, self.keys, self.symbols = roles
        glue = ("is in", "took", "went to", "where is", "stands for", "what is")  # the corpus has no "?" or "="
        self.glue = {words: list(vocabulary.encode(words)) for words in glue}
        self.filler = [token for text in texts[:400] for token in vocabulary.encode(text)]

    def distractors(self, rng: random.Random, count: int) -> list[int]:
        """``count`` tokens of corpus text from a random place."""
        start = rng.randrange(len(self.filler) - count)
        return self.filler[start : start + count]


@functools.cache
def lexicon(data: BuiltinData = DEFAULT_DATA) -> Lexicon:
    return Lexicon(builtin_vocabulary(data), data.files().texts("train"))


def _place(spans: Sequence[tuple[int, list[int]]], length: int, rng: random.Random, words: Lexicon) -> list[int]:
    """``length`` tokens: each span at its position, distractor text everywhere else."""
    out = words.distractors(rng, length)
    for position, tokens in spans:
        out[position : position + len(tokens)] = tokens
    return out


def _positions(rng: random.Random, sizes: Sequence[int], end: int, start: int = 0) -> list[int]:
    """Non-overlapping random starts in ``[start, end)`` for spans of ``sizes``, in a random order."""
    free = end - start - sum(sizes)
    if free < 0:
        raise ValueError(f"spans of {sum(sizes)} tokens do not fit in {end - start} positions")
    gaps = sorted(rng.randint(0, free) for _ in sizes)
    order = list(range(len(sizes)))
    rng.shuffle(order)
    starts, cursor = [0] * len(sizes), start
    for gap_index, span in enumerate(order):
        cursor += gaps[gap_index] - (gaps[gap_index - 1] if gap_index else 0)
        starts[span] = cursor
        cursor += sizes[span]
    return starts


def _example(spec: MemoryTaskSpec, rng: random.Random, words: Lexicon) -> dict[str, list[int]]:
    g = words.glue
    history, length = spec.history_length, spec.inputs_length - 1  # SeqIO appends EOS
    answers = words.places[: spec.choices]
    if spec.task == "long_document":
        return _long_document(spec, rng, words)
    if spec.task in ("copy", "reverse"):
        sequence = [rng.choice(words.symbols) for _ in range(history)]
        instruction = words.vocabulary.encode(f"{spec.task} the sequence")
        inputs = _place([(0, sequence), (length - len(instruction), instruction)], length, rng, words)
        return {"inputs": inputs, "targets": sequence[::-1] if spec.task == "reverse" else sequence}
    if spec.task == "retrieval":
        keys = rng.sample(words.keys, spec.pairs)
        values = [rng.choice(answers) for _ in keys]
        facts = [[key, *g["stands for"], value] for key, value in zip(keys, values, strict=True)]
        asked = rng.randrange(spec.pairs)
        question, answer = [*g["what is"], keys[asked]], values[asked]
    else:
        item, place = rng.choice(words.items), rng.choice(answers)
        facts = [[item, *g["is in"], place]]
        if spec.task == "reasoning":
            person, other = rng.sample(words.names, 2)
            other_item = rng.choice([i for i in words.items if i != item])
            other_place = rng.choice([p for p in answers if p != place])
            facts = [
                [person, *g["took"], item],
                [person, *g["went to"], place],
                [other, *g["took"], other_item],
                [other, *g["went to"], other_place],
            ]
        question, answer = [*g["where is"], item], place
    if spec.task == "memorize":
        starts = [0]
    else:
        starts = _positions(rng, [len(f) for f in facts], history)
    spans = [*zip(starts, facts, strict=True), (length - len(question), question)]
    return {"inputs": _place(spans, length, rng, words), "targets": [answer]}


def _long_document(spec: MemoryTaskSpec, rng: random.Random, words: Lexicon) -> dict[str, list[int]]:
    regions = (words.places[:4], words.places[4:8])
    labels = (words.keys[0], words.keys[1])
    spans, votes = [], 0
    for segment in range(spec.segments):
        count = MENTIONS_PER_SEGMENT + (segment == 0)  # an odd total: no ties
        sides = [rng.randrange(2) for _ in range(count)]
        trips = [[rng.choice(words.names), *words.glue["went to"], rng.choice(regions[side])] for side in sides]
        end = min((segment + 1) * spec.segment_size, spec.inputs_length - 1)
        starts = _positions(rng, [len(t) for t in trips], end, start=segment * spec.segment_size)
        spans += zip(starts, trips, strict=True)
        votes += sum(sides)
    total = spec.segments * MENTIONS_PER_SEGMENT + 1
    return {"inputs": _place(spans, spec.inputs_length - 1, rng, words), "targets": [labels[votes * 2 > total]]}


def examples(spec: MemoryTaskSpec, split: str, seed: int, data: BuiltinData = DEFAULT_DATA) -> Iterator[dict]:
    """The endless stream of ``spec``'s examples (token ids) for ``split`` and ``seed``."""
    words = lexicon(data)
    rng = random.Random(f"{spec.name}:{split}:{seed}")
    while True:
        yield _example(spec, rng, words)


def register(spec: MemoryTaskSpec, data: BuiltinData = DEFAULT_DATA) -> str:
    """Registers (once) ``spec``'s task over ``data``'s vocabulary and returns its name."""
    name = spec.name if data == DEFAULT_DATA else f"{spec.name}_{data.fingerprint()}"
    if name not in seqio.TaskRegistry.names():
        vocabulary = builtin_vocabulary(data)
        seqio.TaskRegistry.add(
            name,
            source=GeneratedSource(
                lambda split, seed: examples(spec, split, seed, data), ("inputs", "targets"), EVAL_EXAMPLES, tokens=True
            ),
            preprocessors=[seqio.preprocessors.append_eos_after_trim],
            output_features={key: seqio.Feature(vocabulary, add_eos=True) for key in ("inputs", "targets")},
            metric_fns=[metrics.accuracy],
        )
    return name


# every task at 4 segments of 32 tokens; the memorisation and document tasks also at 8 (trained on 4, evaluated on 8)
DEFAULT_SPECS = tuple(MemoryTaskSpec(task) for task in TASKS) + tuple(
    MemoryTaskSpec(task, segments=8) for task in ("memorize", "detect", "reasoning", "long_document")
)
for _spec in DEFAULT_SPECS:
    register(_spec)
