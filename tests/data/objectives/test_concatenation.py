"""T5's document concatenation: windows of long documents, groups of consecutive documents, and the example
counts and lengths of T5's span corruption when an objective follows it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import seqio
import tensorflow as tf

from t5x_tl.data.objectives.concatenation import concatenate_documents
from t5x_tl.data.objectives.preprocessors import objective_lengths, objective_preprocessor

VOCAB = seqio.ByteVocabulary(extra_ids=100)
FEATURES = {key: seqio.Feature(VOCAB) for key in ("inputs", "targets")}


def _documents(lengths: list[int]) -> tf.data.Dataset:
    """Document i holds tokens 1000 * (i + 1) + 0, 1, ..., so every token names its document and position."""
    documents = [np.arange(length, dtype=np.int32) + 1000 * (i + 1) for i, length in enumerate(lengths)]
    return tf.data.Dataset.from_generator(
        lambda: ({"targets": doc, "id": i} for i, doc in enumerate(documents)),
        output_signature={"targets": tf.TensorSpec([None], tf.int32), "id": tf.TensorSpec([], tf.int32)},
    )


def _concatenated(lengths: list[int], seed: int = 0, **options: int) -> list[list[int]]:
    with seqio.map_seed_manager(seed):
        dataset = concatenate_documents(_documents(lengths), **options)
    return [example["targets"].tolist() for example in dataset.as_numpy_iterator()]


def test_consecutive_documents_are_concatenated_in_groups_and_empty_ones_skipped():
    groups = _concatenated([3, 0, 2, 4, 1], documents_per_group=2)  # as T5, the empty one takes no place
    first, third, fourth, fifth = ([1000 * i + j for j in range(n)] for i, n in ((1, 3), (3, 2), (4, 4), (5, 1)))
    assert groups == [first + third, fourth + fifth]


def test_a_long_document_keeps_one_aligned_window_chosen_at_random():
    windows = {tuple(_concatenated([25], seed=seed, window_tokens=10)[0]) for seed in range(30)}
    aligned = {tuple(range(1000 + start, 1000 + min(start + 10, 25))) for start in (0, 10, 20)}
    assert windows == aligned


@pytest.mark.parametrize("options", [{"documents_per_group": 0}, {"window_tokens": 2.5}, {"documents_per_group": True}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError, match="must be a positive integer"):
        concatenate_documents(_documents([3]), **options)


def test_span_corruption_after_concatenation_gives_t5s_example_counts_and_lengths():
    """T5's span_corruption: 128 documents per group, each group cut into raw-length chunks, every full chunk
    filling the inputs exactly (512 -> raw 568, targets 114). Lengths are scaled down to inputs 64."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 120, size=300).tolist()  # empty ones included: groups of 128 non-empty documents
    raw, targets_length = objective_lengths("random_spans", {}, 64)
    with seqio.map_seed_manager(0):
        dataset = concatenate_documents(_documents(lengths))
        dataset = objective_preprocessor("random_spans")(dataset, {"inputs": 64, "targets": targets_length}, FEATURES)
    examples = list(dataset.as_numpy_iterator())
    nonempty = [length for length in lengths if length]
    totals = [sum(nonempty[start : start + 128]) for start in range(0, len(nonempty), 128)]
    assert len(examples) == sum(math.ceil(total / raw) for total in totals)
    tails = sorted(total % raw for total in totals if total % raw)
    assert all(tail >= 2 for tail in tails), "a one-token tail would be dropped here, kept by T5"
    full = [e for e in examples if len(e["inputs"]) == 64 - 1]  # EOS comes later (append_eos_after_trim)
    assert len(full) == len(examples) - len(tails)
    assert all(len(e["targets"]) == targets_length - 1 for e in full)
