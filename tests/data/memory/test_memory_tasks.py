"""Memory tasks: facts where the spec puts them, the question at the end of the last segment, answers that
follow from the facts, balanced few-way answers, SeqIO tasks of the exact length, and bad specs refused."""

from __future__ import annotations

import collections
import itertools
import math

import numpy as np
import pytest
import seqio

from t5x_tl.data.memory import tasks as mt

SPEC = dict(segments=4, segment_size=32)


def _take(task: str, count: int = 60, split: str = "train", seed: int = 0, **spec) -> list[dict]:
    spec = mt.MemoryTaskSpec(task, **{**SPEC, **spec})
    return list(itertools.islice(mt.examples(spec, split, seed), count))


def _find(inputs: list[int], span: list[int]) -> list[int]:
    return [i for i in range(len(inputs) - len(span) + 1) if inputs[i : i + len(span)] == span]


@pytest.fixture(scope="module")
def words() -> mt.Lexicon:
    return mt.lexicon()


def test_roles_are_disjoint_single_token_words(words):
    roles = [words.names, words.items, words.places, words.keys, words.symbols]
    assert all(len(role) == 16 for role in roles)
    assert len(set().union(*map(set, roles))) == 80
    for token in words.places:
        assert list(words.vocabulary.encode(words.vocabulary.decode([token]))) == [token]


@pytest.mark.parametrize("task", ["memorize", "detect"])
def test_the_fact_is_before_the_last_segment_and_the_question_ends_the_input(task, words):
    spec = mt.MemoryTaskSpec(task, **SPEC)
    starts = []
    for example in _take(task):
        inputs, (answer,) = example["inputs"], example["targets"]
        assert len(inputs) == spec.inputs_length - 1  # SeqIO's EOS makes it exact
        question_item = inputs[-1]
        assert inputs[-1 - len(words.glue["where is"]) : -1] == words.glue["where is"]
        fact = [question_item, *words.glue["is in"], answer]
        found = [i for i in _find(inputs, fact) if i + len(fact) <= spec.history_length]
        assert found, "the fact must lie wholly before the last segment"
        starts.append(found[0])
        assert answer in words.places[: spec.choices]
    if task == "memorize":
        assert set(starts) == {0}
    else:
        assert len(set(starts)) > 20 and max(starts) > spec.segment_size  # spread, not only in segment 0


def test_reasoning_needs_both_facts_of_the_one_who_took_the_item(words):
    g = words.glue
    for example in _take("reasoning"):
        inputs, (answer,) = example["inputs"], example["targets"]
        item = inputs[-1]
        took = [i for name in words.names for i in _find(inputs, [name, *g["took"], item])]
        assert len(took) == 1
        person = inputs[took[0]]
        assert _find(inputs[:96], [person, *g["went to"], answer])
        other_places = [p for p in words.places if p != answer]
        others = [n for n in words.names if n != person]
        assert any(_find(inputs, [n, *g["went to"], p]) for n in others for p in other_places)


def test_retrieval_answers_the_value_of_the_asked_key(words):
    for example in _take("retrieval"):
        inputs, (answer,) = example["inputs"], example["targets"]
        key = inputs[-1]
        assert _find(inputs[:96], [key, *words.glue["stands for"], answer])
        assert sum(bool(_find(inputs[:96], [k, *words.glue["stands for"]])) for k in words.keys) == 4


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_and_reverse_span_every_segment_but_the_last(task):
    (example,) = _take(task, 1)
    sequence = example["inputs"][:96]
    assert example["targets"] == (sequence[::-1] if task == "reverse" else sequence)
    assert mt.MemoryTaskSpec(task, **SPEC).targets_length == 97


@pytest.mark.parametrize("task", ["memorize", "reasoning", "retrieval"])
def test_answers_are_balanced_so_chance_is_one_over_choices(task):
    count, choices = 400, 4
    answers = collections.Counter(e["targets"][0] for e in _take(task, count))
    assert len(answers) == choices
    slack = 4 * math.sqrt(count * (1 / choices) * (1 - 1 / choices))  # four binomial standard deviations
    assert max(answers.values()) < count / choices + slack


def test_streams_are_seeded_and_splits_differ():
    assert _take("detect", 5) == _take("detect", 5)
    assert _take("detect", 5) != _take("detect", 5, seed=1)
    assert _take("detect", 5) != _take("detect", 5, split="validation")


def test_the_registered_task_gives_inputs_of_exactly_the_segments():
    spec = mt.MemoryTaskSpec("memorize", **SPEC)
    task = seqio.get_mixture_or_task(mt.register(spec))
    lengths = {"inputs": spec.inputs_length, "targets": spec.targets_length}
    first = next(task.get_dataset(lengths, split="validation", shuffle=False).as_numpy_iterator())
    assert first["inputs"].shape == (128,) and first["inputs"][-1] == 1
    assert first["targets"].shape == (2,) and first["targets"][-1] == 1
    assert np.array_equal(first["inputs"][:-1], next(mt.examples(spec, "validation", 0))["inputs"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(task="sorting"), "unknown memory task"),
        (dict(task="memorize", segments=1), "at least 2"),
        (dict(task="memorize", segment_size=8), "at least 16"),
        (dict(task="memorize", choices=1), "choices=1"),
        (dict(task="retrieval", pairs=0), "pairs=0"),
    ],
)
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        mt.MemoryTaskSpec(**spec)


def test_a_long_documents_label_is_the_majority_of_its_trips(words):
    spec = mt.MemoryTaskSpec("long_document", **SPEC)
    g = words.glue
    labels = collections.Counter()
    last_agrees = 0
    examples = _take("long_document", 200)
    for example in examples:
        inputs, (label,) = example["inputs"], example["targets"]
        trips = [(i, p) for n in words.names for p in words.places[:8] for i in _find(inputs, [n, *g["went to"], p])]
        assert len(trips) == 13
        assert [sum(i // 32 == s for i, _ in trips) for s in range(4)] == [4, 3, 3, 3]  # whole in their segment
        north = sum(p in words.places[:4] for _, p in trips)
        assert label == words.keys[int(north < 7)]  # the second label: most trips to the second region
        last = sum(p in words.places[:4] for i, p in trips if i >= 96)
        last_agrees += (last >= 2) == (north > 6)
        labels[label] += 1
    assert spec.chance == 0.5 and len(labels) == 2
    assert 0.55 < last_agrees / len(examples) < 0.9  # the last segment alone is informative, not decisive
