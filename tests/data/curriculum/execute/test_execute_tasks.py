"""Learning-to-Execute SeqIO tasks: disjoint splits, byte tokens, fixed evaluation sets, per-host shards."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import seqio

from t5x_tl.data.curriculum.execute import tasks

LENGTHS = {"inputs": 128, "targets": 16}


def _codes(family: str, length: int, nesting: int, split: str, count: int, seed: int = 0) -> list[str]:
    return [e.code for e in itertools.islice(tasks.examples(family, length, nesting, split, seed), count)]


@pytest.mark.parametrize(("family", "length", "nesting"), [("program", 1, 1), ("program", 2, 2), ("copy", 1, 1)])
def test_no_text_is_in_two_splits(family, length, nesting):
    splits = {split: set(_codes(family, length, nesting, split, 2000)) for split in tasks.SPLITS}
    assert all(splits.values()), "even the smallest level has examples in every split"
    for a, b in itertools.combinations(tasks.SPLITS, 2):
        assert not splits[a] & splits[b], (a, b)
    assert all(tasks.split_of(code) == split for split, codes in splits.items() for code in codes)


def test_split_sizes_follow_the_hash_buckets():
    rng = np.random.default_rng(0)
    texts = [str(x) for x in rng.integers(0, 10**12, size=20_000)]
    share = np.mean([tasks.split_of(t) == "validation" for t in texts])
    assert abs(share - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(texts))


def test_task_reads_bytes_with_eos_and_its_metric_is_exact_match():
    task = seqio.get_mixture_or_task(tasks.task_name("program", 3, 2))
    example = next(task.get_dataset(LENGTHS, split="validation", shuffle=False, num_epochs=1).as_numpy_iterator())
    code = example["inputs_pretokenized"].decode()
    assert tasks.VOCABULARY.decode(example["inputs"][:-1].tolist()) == code
    assert example["inputs"][-1] == 1 and example["targets"][-1] == 1
    assert code.splitlines()[-1].startswith("print(")
    assert task.predict_metric_fns[0](["12", "7"], ["12", "8"]) == {"accuracy": 50.0}


def test_evaluation_sets_are_fixed_and_train_follows_the_seed():
    task = seqio.get_mixture_or_task(tasks.task_name("addition", 3))

    def read(split: str, seed: int, count: int) -> list[bytes]:
        dataset = task.get_dataset(LENGTHS, split=split, shuffle=False, seed=seed, num_epochs=1)
        return [e["inputs_pretokenized"] for e in itertools.islice(dataset.as_numpy_iterator(), count)]

    validation = read("validation", 0, tasks.EVAL_EXAMPLES + 5)
    assert len(validation) == tasks.EVAL_EXAMPLES
    assert read("validation", 5, 50) == validation[:50]
    assert read("train", 1, 50) != read("train", 2, 50)
    assert read("train", 1, 50) == read("train", 1, 50)


def test_hosts_split_the_evaluation_set_and_draw_different_train_streams():
    task = seqio.get_mixture_or_task(tasks.task_name("copy", 6))

    def read(split: str, host: int) -> list[bytes]:
        dataset = task.get_dataset(
            LENGTHS, split=split, shuffle=False, seed=3, num_epochs=1, shard_info=seqio.ShardInfo(host, 2)
        )
        return [e["inputs_pretokenized"] for e in itertools.islice(dataset.as_numpy_iterator(), 600)]

    whole = task.get_dataset(LENGTHS, split="test", shuffle=False, num_epochs=1)
    shards = read("test", 0) + read("test", 1)
    assert sorted(shards) == sorted(e["inputs_pretokenized"] for e in whole.as_numpy_iterator())
    assert read("train", 0) != read("train", 1)


def test_every_supported_level_is_registered():
    names = set(seqio.TaskRegistry.names())
    assert {"lte_program_l12_n8", "lte_program_l1_n1", "lte_addition_l12", "lte_copy_l64"} <= names
    assert tasks.register("program", 2, 3) == "lte_program_l2_n3"  # registering again is a no-op


@pytest.mark.parametrize(
    ("family", "length", "nesting", "message"),
    [
        ("sorting", 2, 1, "family='sorting' is unknown"),
        ("addition", 2, 2, "the addition task has no nesting"),
        ("program", 13, 1, "length=13 is outside what the generator supports"),
        ("copy", 65, 1, "use an integer in 1..64"),
    ],
)
def test_unsupported_tasks_are_clear_errors(family, length, nesting, message):
    with pytest.raises(ValueError, match=message):
        tasks.register(family, length, nesting)
