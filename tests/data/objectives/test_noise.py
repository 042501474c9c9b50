"""Noise masks and noise encoders: exact counts, exact encodings of hand-built masks, and sampling statistics.

Statistical checks allow 5 binomial standard deviations: a correct sampler fails one about once in 3.5 million
draws of seeds. The seeds are fixed, so each check either always passes or always fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import seqio
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from t5x_tl.data.objectives.encoders import (
    bert_replace_noise,
    drop_noise,
    mask_token_id,
    noise_spans_after_sentinels,
    ordinary_token_range,
    permute,
    replace_noise,
    sentinel_per_noise_span,
)
from t5x_tl.data.objectives.noise import (
    iid_noise_mask,
    num_noise_spans,
    num_noise_tokens,
    random_spans_noise_mask,
    random_split_point,
)

SAMPLES = 4000


def _sample(fn: Callable[[tf.Tensor], tf.Tensor], count: int = SAMPLES) -> np.ndarray:
    """``fn(seed)`` for ``count`` distinct seeds, stacked, in one traced graph rather than ``count`` eager calls."""

    def seeded(index: tf.Tensor) -> tf.Tensor:
        return fn(tf.stack([index, tf.constant(7, tf.int64)]))

    return next(iter(tf.data.Dataset.range(count).map(seeded).batch(count).as_numpy_iterator()))


def _assert_binomial(successes: int, trials: int, probability: float) -> None:
    sigma = math.sqrt(trials * probability * (1 - probability))
    assert abs(successes - trials * probability) <= 5 * sigma, (successes, trials, probability)


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


@pytest.mark.parametrize(
    ("length", "density", "expected"),
    [
        (568, 0.15, 85),
        (190, 0.15, 28),
        (10, 0.15, 2),
        (2, 0.01, 1),
        (2, 0.99, 1),
        (10, 0.999, 9),
        (1, 0.5, 0),
        (0, 0.5, 0),
    ],
)
def test_noise_count_rounds_half_to_even_and_clips(length, density, expected):
    # 190 * 0.15 is 28.5 in float64 (rounds to even 28) but 28.500002 in float32 (would round to 29).
    assert num_noise_tokens(length, density) == expected
    assert iid_noise_mask(tf.constant(length), density, tf.constant([0, 0])).numpy().sum() == expected


@pytest.mark.parametrize(
    ("length", "density", "span", "expected"),
    [(568, 0.15, 3.0, 28), (10, 0.9, 1.0, 1), (2, 0.5, 10.0, 1), (100, 0.5, 1.0, 50), (1, 0.5, 3.0, 0)],
)
def test_span_count_is_capped_by_the_non_noise_tokens(length, density, span, expected):
    assert num_noise_spans(length, density, span) == expected


@settings(max_examples=150, deadline=None, database=None)
@given(
    length=st.integers(0, 600),
    density=st.floats(0, 1, exclude_min=True, exclude_max=True),
    span=st.floats(1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_masks_have_exactly_the_counts_the_length_rules_assume(length, density, span, seed):
    seed = tf.constant([seed, 1])
    iid = iid_noise_mask(tf.constant(length), density, seed).numpy()
    spans = random_spans_noise_mask(tf.constant(length), density, span, seed).numpy()
    assert iid.shape == spans.shape == (length,)
    assert iid.sum() == spans.sum() == num_noise_tokens(length, density)
    assert len(_runs(spans)) == num_noise_spans(length, density, span)
    if length >= 2:
        assert not spans[0] and spans[-1], "random spans start with non-noise and end with noise"


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_masks_on_tiny_chunks(length):
    for mask in (
        iid_noise_mask(tf.constant(length), 0.15, tf.constant([0, 0])),
        random_spans_noise_mask(tf.constant(length), 0.15, 3.0, tf.constant([0, 0])),
    ):
        assert mask.shape == (length,)
        assert mask.numpy().sum() == (1 if length >= 2 else 0)


@pytest.mark.parametrize(
    "draw",
    [
        lambda seed: iid_noise_mask(tf.constant(200), 0.15, seed),
        lambda seed: random_spans_noise_mask(tf.constant(200), 0.15, 3.0, seed),
        lambda seed: permute(tf.range(200), seed),
        lambda seed: bert_replace_noise(tf.range(200), tf.ones([200], tf.bool), seed, 999, (3, 900), 0.5),
        lambda seed: tf.stack([random_split_point(tf.constant(1000), tf.stack([seed[0], i])) for i in range(5)]),
    ],
    ids=["iid", "random_spans", "permute", "bert", "split"],
)
def test_draws_are_a_function_of_the_seed(draw):
    a1, a2, b = (draw(tf.constant(seed)).numpy() for seed in ([1, 2], [1, 2], [3, 4]))
    np.testing.assert_array_equal(a1, a2)
    assert (a1 != b).any()


def test_iid_noise_positions_are_uniform():
    length, density = 20, 0.25
    masks = _sample(lambda seed: iid_noise_mask(tf.constant(length), density, seed))
    assert (masks.sum(axis=1) == 5).all()
    for position in range(length):
        _assert_binomial(masks[:, position].sum(), SAMPLES, 5 / length)
    # k noise tokens among n uniformly form k (n - k + 1) / n runs on average.
    runs = np.array([len(_runs(mask)) for mask in masks])
    assert abs(runs.mean() - 5 * 16 / 20) <= 5 * runs.std() / math.sqrt(SAMPLES)


def test_random_span_lengths_are_uniform_partitions():
    length, density, span = 40, 0.3, 3.0  # 12 noise tokens in 4 spans, 28 non-noise tokens in 4 spans
    masks = _sample(lambda seed: random_spans_noise_mask(tf.constant(length), density, span, seed))
    noise_runs = [_runs(mask) for mask in masks]
    nonnoise_runs = [_runs(~mask) for mask in masks]
    assert all(len(runs) == 4 and sum(runs) == 12 for runs in noise_runs)
    assert all(len(runs) == 4 and sum(runs) == 28 for runs in nonnoise_runs)
    # Splitting k tokens into s parts uniformly, a given part has length 1 with probability (s-1)/(k-1).
    _assert_binomial(sum(runs[0] == 1 for runs in noise_runs), SAMPLES, 3 / 11)
    _assert_binomial(sum(runs[-1] == 1 for runs in noise_runs), SAMPLES, 3 / 11)
    _assert_binomial(sum(runs[0] == 1 for runs in nonnoise_runs), SAMPLES, 3 / 27)


def test_split_point_is_uniform_and_leaves_both_sides_non_empty():
    splits = _sample(lambda seed: random_split_point(tf.constant(10), seed))
    assert splits.min() >= 1 and splits.max() <= 9
    for split in range(1, 10):
        _assert_binomial((splits == split).sum(), SAMPLES, 1 / 9)
    assert [random_split_point(tf.constant(n), tf.constant([0, 0])).numpy() for n in (0, 1, 2)] == [0, 1, 1]


TOKENS = tf.range(10, 20)
# Starts with noise and ends with non-noise: the case where T5's target encoding misaligns sentinels.
MASK = tf.constant([1, 1, 0, 0, 1, 0, 1, 1, 1, 0]) > 0
# T5's random-span shape: non-noise first, noise last.
SPAN_MASK = tf.constant([0, 0, 0, 1, 1, 0, 1, 0, 1, 1]) > 0


def test_span_encoders_share_sentinels_counting_down():
    assert sentinel_per_noise_span(TOKENS, MASK, 1000).numpy().tolist() == [999, 12, 13, 998, 15, 997, 19]
    assert noise_spans_after_sentinels(TOKENS, MASK, 1000).numpy().tolist() == [999, 10, 11, 998, 14, 997, 16, 17, 18]
    assert sentinel_per_noise_span(TOKENS, SPAN_MASK, 1000).numpy().tolist() == [10, 11, 12, 999, 15, 998, 17, 997]
    targets = noise_spans_after_sentinels(TOKENS, SPAN_MASK, 1000).numpy().tolist()
    assert targets == [999, 13, 14, 998, 16, 997, 18, 19], "no trailing sentinel"
    # On random-span masks this is T5's encoding: the non-noise spans replaced by sentinels.
    assert targets == sentinel_per_noise_span(TOKENS, ~SPAN_MASK, 1000).numpy().tolist()


def test_span_encoders_number_sampled_spans_in_order():
    length, vocab_size = 30, 1000

    def encode(index: tf.Tensor) -> dict[str, tf.Tensor]:
        mask = iid_noise_mask(tf.constant(length), 0.5, tf.stack([index, tf.constant(3, tf.int64)]))
        tokens = tf.range(length)
        return {
            "mask": mask,
            "inputs": sentinel_per_noise_span(tokens, mask, vocab_size),
            "targets": noise_spans_after_sentinels(tokens, mask, vocab_size),
        }

    batch = (
        tf.data.Dataset.range(2000)
        .map(encode)
        .padded_batch(2000, padding_values={"mask": False, "inputs": -1, "targets": -1})
    )
    batch = next(iter(batch.as_numpy_iterator()))
    for mask, inputs, targets in zip(batch["mask"], batch["inputs"], batch["targets"], strict=True):
        sentinels = list(range(vocab_size - 1, vocab_size - 1 - len(_runs(mask)), -1))
        assert inputs[inputs >= vocab_size - 100].tolist() == targets[targets >= vocab_size - 100].tolist() == sentinels
        assert targets[targets >= 0].tolist()[0] == sentinels[0] and targets[targets >= 0][-1] < vocab_size - 100
        assert (inputs >= 0).sum() == length - 15 + len(sentinels) and (targets >= 0).sum() == 15 + len(sentinels)


def test_mask_drop_and_permute_encoders():
    assert replace_noise(TOKENS, MASK, 7).numpy().tolist() == [7, 7, 12, 13, 7, 15, 7, 7, 7, 19]
    assert drop_noise(TOKENS, MASK).numpy().tolist() == [12, 13, 15, 19]
    assert drop_noise(TOKENS, ~MASK).numpy().tolist() == [10, 11, 14, 16, 17, 18]
    shuffled = permute(TOKENS, tf.constant([0, 1])).numpy()
    assert sorted(shuffled.tolist()) == list(range(10, 20)) and shuffled.tolist() != list(range(10, 20))


def test_bert_replacement_at_the_extreme_rates():
    seed = tf.constant([5, 6])
    never = bert_replace_noise(TOKENS, MASK, seed, 7, (3, 6), random_rate=0.0).numpy()
    np.testing.assert_array_equal(never, replace_noise(TOKENS, MASK, 7).numpy())
    always = bert_replace_noise(TOKENS, MASK, seed, 7, (3, 6), random_rate=1.0).numpy()
    np.testing.assert_array_equal(always[~MASK.numpy()], TOKENS.numpy()[~MASK.numpy()])
    assert set(always[MASK.numpy()].tolist()) <= {3, 4, 5}


def test_bert_replaces_90_percent_by_the_mask_and_10_percent_uniformly():
    tokens, low, high, mask_id = tf.range(100, 150), 3, 13, 999

    def draw(seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, 2)
        mask = iid_noise_mask(tf.size(tokens), 0.2, seeds[0])
        inputs = bert_replace_noise(tokens, mask, seeds[1], mask_id, (low, high))
        return tf.stack([tf.cast(mask, tf.int32), inputs])

    samples = _sample(draw, 2000)
    mask, inputs = samples[:, 0].astype(bool), samples[:, 1]
    np.testing.assert_array_equal(inputs[~mask], np.broadcast_to(tokens.numpy(), mask.shape)[~mask])
    noise = inputs[mask]
    assert noise.size == 2000 * 10
    _assert_binomial((noise == mask_id).sum(), noise.size, 0.9)
    random_tokens = noise[noise != mask_id]
    assert set(random_tokens.tolist()) == set(range(low, high))
    for token in range(low, high):
        _assert_binomial((random_tokens == token).sum(), random_tokens.size, 1 / (high - low))


def test_permutation_is_uniform():
    orders = _sample(lambda seed: permute(tf.range(8), seed))
    assert (np.sort(orders, axis=1) == np.arange(8)).all()
    for position in range(8):
        _assert_binomial((orders[:, position] == 0).sum(), SAMPLES, 1 / 8)


def test_mask_token_and_random_range_avoid_special_ids_and_sentinels():
    vocabulary = seqio.ByteVocabulary(extra_ids=100)  # pad 0, eos 1, unk 2, bytes 3..258, sentinels 259..358
    assert mask_token_id(vocabulary) == 358
    assert ordinary_token_range(vocabulary) == (3, 259)
    with pytest.raises(ValueError, match="extra_ids"):
        mask_token_id(seqio.ByteVocabulary(extra_ids=0))
