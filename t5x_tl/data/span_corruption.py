"""Random-span corruption, T5's final pretraining objective, as SeqIO preprocessors.

A chunk of ``raw_length`` tokens is split into alternating non-noise and noise spans (noise density and mean
noise-span length as parameters). Each noise span becomes one sentinel in the inputs; the targets are the
noise spans, each led by its sentinel. Sentinels count down from the last id (``<extra_id_0>`` =
``vocab_size - 1``). The mask starts with non-noise and ends with noise, so, as in T5, the inputs end with a
sentinel and the targets carry no trailing sentinel: the EOS that SeqIO appends ends them.
Randomness is stateless and seeded by SeqIO, so a task's dataset is a function of its seed.
"""

from __future__ import annotations

import seqio
import tensorflow as tf


def span_corruption_lengths(raw_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(inputs, targets) lengths, EOS included, after corrupting a chunk of ``raw_length`` tokens."""
    num_noise = min(max(round(raw_length * noise_density), 1), raw_length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    return raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length_for(inputs_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """The largest chunk whose corrupted inputs fit ``inputs_length`` exactly, and its targets length.

    For inputs 512, density 0.15 and mean span 3 this is (568, 114), as in T5.
    """
    if inputs_length < 3:
        raise ValueError(f"inputs_length must be at least 3 to hold a span and EOS, got {inputs_length}")
    raw = inputs_length - 1
    while span_corruption_lengths(raw + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
        raw += 1
    return raw, span_corruption_lengths(raw, noise_density, mean_noise_span_length)[1]


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
    """Boolean mask of ``length`` with alternating non-noise/noise spans, starting with non-noise.

    The number of noise tokens is ``round(length * density)`` clipped to [1, length-1]; a chunk too short for
    that (length < 2) gets no noise.
    """
    true_length = tf.convert_to_tensor(length, tf.int32)
    length = tf.maximum(true_length, 2)
    float_length = tf.cast(length, tf.float32)
    num_noise = tf.clip_by_value(tf.cast(tf.round(float_length * noise_density), tf.int32), 1, length - 1)
    num_spans = tf.maximum(
        tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length), tf.int32),
        1,
    )
    num_nonnoise = length - num_noise
    seeds = tf.random.experimental.stateless_split(seed, 2)
    noise_lengths = _random_partition(num_noise, num_spans, seeds[0])
    nonnoise_lengths = _random_partition(num_nonnoise, num_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [-1])
    span_starts = tf.cumsum(interleaved)[:-1]
    is_span_start = tf.scatter_nd(tf.expand_dims(span_starts, 1), tf.ones_like(span_starts), [length])
    span_index = tf.cumsum(is_span_start)
    mask = tf.equal(span_index % 2, 1)
    return mask[:true_length] & (true_length >= 2)


def spans_to_sentinels(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Replaces each run of masked tokens by one sentinel, counting down from ``vocab_size - 1``."""
    previous = tf.pad(mask[:-1], [[1, 0]])
    first = mask & ~previous
    sentinels = vocab_size - tf.cumsum(tf.cast(first, tokens.dtype))
    replaced = tf.where(first, sentinels, tokens)
    return tf.boolean_mask(replaced, ~(mask & previous))


def split_into_chunks(dataset: tf.data.Dataset, chunk_length: int, key: str = "targets") -> tf.data.Dataset:
    """Splits each tokenized document into consecutive chunks of at most ``chunk_length`` tokens.

    Documents are not concatenated, so no chunk mixes two documents; the feature converter's packing fills
    the short tail chunks.
    """

    def split(example: dict) -> tf.data.Dataset:
        tokens = example[key]
        count = tf.size(tokens, out_type=tf.int32)
        starts = tf.range(0, count, chunk_length)
        lengths = tf.minimum(chunk_length, count - starts)
        return tf.data.Dataset.from_tensor_slices({key: tf.RaggedTensor.from_row_lengths(tokens, lengths)})

    return dataset.flat_map(split)


def span_corruption(
    dataset: tf.data.Dataset,
    sequence_length: dict[str, int],
    output_features: dict[str, seqio.Feature],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> tf.data.Dataset:
    """SeqIO preprocessor: tokenized ``targets`` documents -> span-corrupted ``inputs``/``targets``.

    The chunk length is derived from ``sequence_length["inputs"]`` so that no token is lost to truncation.
    """
    raw_length, _ = raw_length_for(sequence_length["inputs"], noise_density, mean_noise_span_length)
    vocab_size = output_features["targets"].vocabulary.vocab_size

    @seqio.map_over_dataset(num_seeds=1)
    def corrupt(example: dict, seed: tf.Tensor) -> dict:
        tokens = example["targets"]
        mask = random_spans_noise_mask(tf.size(tokens), noise_density, mean_noise_span_length, seed)
        return {
            "inputs": spans_to_sentinels(tokens, mask, vocab_size),
            "targets": spans_to_sentinels(tokens, ~mask, vocab_size),
        }

    chunks = split_into_chunks(dataset, raw_length)
    return corrupt(chunks.filter(lambda ex: tf.size(ex["targets"]) > 0))
