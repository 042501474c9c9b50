"""Span corruption: lengths, noise statistics, and inputs+targets reassembling the original text."""

from __future__ import annotations

import numpy as np
import pytest
import seqio
import tensorflow as tf

from t5x_tl.data import tasks
from t5x_tl.data.span_corruption import (
    random_spans_noise_mask,
    raw_length_for,
    span_corruption_lengths,
    spans_to_sentinels,
)


@pytest.mark.parametrize(("inputs_length", "expected"), [(512, (568, 114)), (128, (141, 29)), (256, (284, 58))])
def test_raw_length_fills_inputs_exactly(inputs_length, expected):
    raw, targets = raw_length_for(inputs_length, 0.15, 3.0)
    assert (raw, targets) == expected
    assert span_corruption_lengths(raw, 0.15, 3.0)[0] == inputs_length
    assert span_corruption_lengths(raw + 1, 0.15, 3.0)[0] > inputs_length


def test_noise_mask_density_and_span_count():
    length, density, mean_span = 568, 0.15, 3.0
    for i in range(20):
        mask = random_spans_noise_mask(tf.constant(length), density, mean_span, tf.constant([i, 7])).numpy()
        assert mask.sum() == round(length * density)
        starts = np.flatnonzero(mask[1:] & ~mask[:-1]) + 1
        assert len(starts) == round(round(length * density) / mean_span)
        assert not mask[0], "the first span is non-noise"


def test_noise_mask_is_seeded():
    seed_a, seed_b = tf.constant([1, 2]), tf.constant([3, 4])
    a1 = random_spans_noise_mask(tf.constant(200), 0.15, 3.0, seed_a).numpy()
    a2 = random_spans_noise_mask(tf.constant(200), 0.15, 3.0, seed_a).numpy()
    b = random_spans_noise_mask(tf.constant(200), 0.15, 3.0, seed_b).numpy()
    np.testing.assert_array_equal(a1, a2)
    assert (a1 != b).any()


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_noise_mask_on_tiny_chunks(length):
    mask = random_spans_noise_mask(tf.constant(length), 0.15, 3.0, tf.constant([0, 0])).numpy()
    assert mask.shape == (length,)
    assert mask.sum() == (1 if length >= 2 else 0)


def _fill_sentinels(inputs: list[int], targets: list[int], vocab_size: int) -> list[int]:
    """Rebuilds the original tokens: each sentinel in the inputs is replaced by the span that follows it in targets."""
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token >= vocab_size - 100:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[token] if token >= vocab_size - 100 else [token])
    return out


def test_sentinels_count_down_from_last_id():
    tokens = tf.range(10, 25)
    mask = tf.constant([False] * 3 + [True] * 2 + [False] * 5 + [True] * 3 + [False] * 1 + [True] * 1)
    inputs = spans_to_sentinels(tokens, mask, 1000).numpy().tolist()
    targets = spans_to_sentinels(tokens, ~mask, 1000).numpy().tolist()
    assert inputs == [10, 11, 12, 999, 15, 16, 17, 18, 19, 998, 23, 997]
    # Random-span masks end in noise, so targets end with a span, not a sentinel (T5's convention).
    assert targets == [999, 13, 14, 998, 20, 21, 22, 997, 24]


def test_random_masks_end_in_noise():
    for i in range(10):
        mask = random_spans_noise_mask(tf.constant(50 + i), 0.15, 3.0, tf.constant([i, 1])).numpy()
        assert mask[-1] and not mask[0]


def test_task_outputs_fit_lengths_and_decode_to_original(small_data):
    task = tasks.builtin_span_corruption_task(small_data)
    vocab = task.output_features["targets"].vocabulary
    raw, targets_length = raw_length_for(128, 0.15, 3.0)
    dataset = task.get_dataset({"inputs": 128, "targets": targets_length}, split="validation", shuffle=False, seed=3)
    documents = [vocab.encode(text) for text in small_data.files().texts("validation")]
    stream = [t for doc in documents for t in doc]
    examples = list(dataset.take(30).as_numpy_iterator())
    assert len(examples) == 30
    position = 0
    for example in examples:
        inputs, targets = example["inputs"].tolist(), example["targets"].tolist()
        assert len(inputs) <= 128 and len(targets) <= targets_length
        assert inputs[-1] == vocab.eos_id and targets[-1] == vocab.eos_id
        original = _fill_sentinels(inputs[:-1], targets[:-1], vocab.vocab_size)
        assert 0 < len(original) <= raw
        assert original == stream[position : position + len(original)], "chunks follow the documents in order"
        position += len(original)
    assert vocab.decode(original)  # decodes to text


def test_task_is_deterministic_for_a_seed(small_data):
    task = tasks.builtin_span_corruption_task(small_data)
    lengths = {"inputs": 64, "targets": 16}

    def first(seed):
        ds = task.get_dataset(lengths, split="validation", shuffle=False, seed=seed)
        return [ex["inputs"].tolist() for ex in ds.take(5).as_numpy_iterator()]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_task_is_registered_on_import():
    assert tasks.DEFAULT_TASK in seqio.TaskRegistry.names()
