"""Fresh-mapping sequences for in-context learning: disjoint splits, balanced labels, the few-shot format, and
episodes whose demonstrations come from the query's own mapping."""

from __future__ import annotations

import collections
import itertools
import re

import pytest
import seqio

from t5x_tl.data.downstream import icl_mappings
from t5x_tl.data.downstream.icl_mappings import MappingSpec

SPEC = MappingSpec(items=4, labels=2, pairs=12)


def _mapping_of(text: str) -> dict[str, str]:
    pairs = [(p[0], p[1:]) for p in text.split(",")]
    mapping = dict(pairs)
    assert len(mapping) == len(set(pairs)), f"a letter has two labels in {text!r}"
    return mapping


def test_sequences_are_pairs_of_one_balanced_mapping_in_the_template_format():
    for example in itertools.islice(icl_mappings.sequences(SPEC, "train", 0), 200):
        text = example["targets"]
        assert re.fullmatch(r"([a-z][01],){11}[a-z][01]", text)
        assert len(_mapping_of(text)) <= SPEC.items
    for mapping in itertools.islice(icl_mappings.mappings(SPEC, "train", 0), 200):
        assert len({x for x, _ in mapping}) == 4
        assert collections.Counter(y for _, y in mapping) == {"0": 2, "1": 2}


def test_splits_share_no_mapping_and_streams_follow_the_seed():
    seen = {
        split: {tuple(sorted(m)) for m in itertools.islice(icl_mappings.mappings(SPEC, split, 0), 300)}
        for split in ("train", "validation", "test")
    }
    for a, b in itertools.combinations(seen, 2):
        assert not seen[a] & seen[b]
    first = list(itertools.islice(icl_mappings.sequences(SPEC, "train", 1), 5))
    assert first == list(itertools.islice(icl_mappings.sequences(SPEC, "train", 1), 5))
    assert first != list(itertools.islice(icl_mappings.sequences(SPEC, "train", 2), 5))


def test_episode_queries_are_answered_by_their_own_pool():
    queries, pools = icl_mappings.episodes(SPEC, "validation", 50, pool_size=16)
    assert len(queries) == len(pools) == 50 and all(len(p) == 16 for p in pools)
    for query, pool in zip(queries, pools, strict=True):
        mapping = {p["inputs"]: p["targets"] for p in pool}
        assert len(mapping) == len({(p["inputs"], p["targets"]) for p in pool})  # one label per letter
        if query["inputs"] in mapping:
            assert mapping[query["inputs"]] == query["targets"]
    context = icl_mappings.TEMPLATE.context(pools[0][:3], queries[0])
    assert context == ",".join(p["inputs"] + p["targets"] for p in pools[0][:3]) + "," + queries[0]["inputs"]


def test_the_mixture_and_its_tasks_are_registered():
    mixture = seqio.get_mixture_or_task(icl_mappings.MIXTURE)
    expected = [s.name for s in icl_mappings.DEFAULT_SPECS] + [icl_mappings.REPEATS]
    assert sorted(t.name for t in mixture.tasks) == sorted(expected)
    task = seqio.get_mixture_or_task(icl_mappings.DEFAULT_SPECS[0].name)
    example = next(task.get_dataset({"targets": 128}, split="validation", shuffle=False).as_numpy_iterator())
    assert example["targets"][-1] == 1 and len(example["targets"]) == 3 * 16  # 16 pairs, no last comma, EOS


def test_repeats_repeat_a_fresh_string():
    for example in itertools.islice(icl_mappings.repeats("train", 0), 50):
        text = example["targets"]
        period = next(n for n in range(6, 21) if text[n:] == text[:-n])
        assert len(text) == 47 and len(set(text)) <= period


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(items=1), "items=1"),
        (dict(items=27), "items=27"),
        (dict(labels=11), "labels=11"),
        (dict(pairs=0), "pairs"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MappingSpec(**kwargs)


def test_an_unknown_split_is_refused_rather_than_searched_forever():
    with pytest.raises(ValueError, match="split='dev' is unknown"):
        next(icl_mappings.mappings(SPEC, "dev", 0))
