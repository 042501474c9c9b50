"""Noise masks: which tokens of a chunk an objective corrupts, drawn statelessly from a SeqIO seed.

A mask is a boolean vector over the chunk, True for noise. Counts are exact, not sampled: a chunk of
``n >= 2`` tokens gets ``round(n * density)`` noise tokens clipped to [1, n-1], so every chunk has both noise
and non-noise and the objectives' lengths are known before any mask is drawn. Chunks under two tokens get
no noise. The Python counts below size the features; the masks compute the same counts in float64 so both
round identically (Python's ``round`` and ``tf.round`` both round half to even).
"""

from __future__ import annotations

import tensorflow as tf


def num_noise_tokens(length: int, noise_density: float) -> int:
    """Noise tokens in a chunk: ``round(length * density)`` clipped to [1, length-1]; 0 below two tokens."""
    return max(min(max(round(length * float(noise_density)), 1), length - 1), 0)


def num_noise_spans(length: int, noise_density: float, mean_noise_span_length: float) -> int:
    """Noise spans of a random-span mask: ``round(noise / mean span)``, at least 1.

    At most the number of non-noise tokens, since each noise span follows a non-noise span; 0 without noise.
    """
    num_noise = num_noise_tokens(length, noise_density)
    return min(max(round(num_noise / float(mean_noise_span_length)), 1), num_noise, length - num_noise)


def _num_noise_tokens(length: tf.Tensor, noise_density: float) -> tf.Tensor:
    """``num_noise_tokens`` on a tensor length."""
    count = tf.cast(tf.round(tf.cast(length, tf.float64) * noise_density), tf.int32)
    return tf.maximum(tf.minimum(tf.maximum(count, 1), length - 1), 0)


def _num_noise_spans(length: tf.Tensor, noise_density: float, mean_noise_span_length: float) -> tf.Tensor:
    """``num_noise_spans`` on a tensor length."""
    num_noise = _num_noise_tokens(length, noise_density)
    count = tf.cast(tf.round(tf.cast(num_noise, tf.float64) / mean_noise_span_length), tf.int32)
    return tf.minimum(tf.minimum(tf.maximum(count, 1), num_noise), length - num_noise)


def iid_noise_mask(length: tf.Tensor, noise_density: float, seed: tf.Tensor) -> tf.Tensor:
    """Mask of ``num_noise_tokens`` noise positions drawn uniformly without replacement.

    T5 draws each token independently; an exact count instead makes the inputs and targets lengths of the
    drop objective fixed, and still makes every position equally likely to be noise.
    """
    length = tf.convert_to_tensor(length, tf.int32)
    ordered = tf.range(length) < _num_noise_tokens(length, noise_density)
    return tf.random.experimental.stateless_shuffle(ordered, seed)


def _random_partition(num_items: tf.Tensor, num_parts: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Lengths of ``num_parts`` non-empty parts summing to ``num_items``, uniformly over such partitions."""
    boundary_scores = tf.random.stateless_uniform([num_items - 1], seed=seed)
    is_boundary = tf.scatter_nd(
        tf.expand_dims(tf.math.top_k(boundary_scores, k=num_parts - 1).indices + 1, 1),
        tf.ones([num_parts - 1], tf.int32),
        [num_items],
    )
    part_ids = tf.cumsum(is_boundary)
    return tf.math.segment_sum(tf.ones_like(part_ids), part_ids)


def random_spans_noise_mask(
    length: tf.Tensor,
    noise_density: float,
    mean_noise_span_length: float,
    seed: tf.Tensor,
) -> tf.Tensor:
    """T5's random-span mask: ``num_noise_spans`` noise spans alternating with as many non-noise spans.

    The mask starts with non-noise and ends with noise; the noise and the non-noise tokens are each split into
    spans uniformly over all partitions into non-empty spans.
    """
    true_length = tf.convert_to_tensor(length, tf.int32)
    length = tf.maximum(true_length, 2)  # a chunk under two tokens is masked as if it had two, then cut
    num_noise = _num_noise_tokens(length, noise_density)
    num_spans = _num_noise_spans(length, noise_density, mean_noise_span_length)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    noise_lengths = _random_partition(num_noise, num_spans, seeds[0])
    nonnoise_lengths = _random_partition(length - num_noise, num_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [-1])
    span_starts = tf.cumsum(interleaved)[:-1]
    is_span_start = tf.scatter_nd(tf.expand_dims(span_starts, 1), tf.ones_like(span_starts), [length])
    mask = tf.equal(tf.cumsum(is_span_start) % 2, 1)
    return mask[:true_length] & (true_length >= 2)


def random_split_point(length: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Prefix LM's split: uniform over [1, length-1], so both prefix and rest are non-empty.

    A chunk under two tokens has no such split; it gets ``length`` (all prefix).
    """
    length = tf.convert_to_tensor(length, tf.int32)
    split = tf.random.stateless_uniform([], seed, minval=1, maxval=tf.maximum(length, 2), dtype=tf.int32)
    return tf.minimum(split, length)
