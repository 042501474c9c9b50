"""Ways to write a noise mask into inputs and targets: sentinels per span, a mask token, BERT's random
replacement, dropping, permuting.

Sentinels follow SeqIO: ``<extra_id_0>`` is the last id (``vocab_size - 1``) and later ones count down. Span
encoders number the noise spans in order, so inputs and targets use the same sentinel for the same span.
"""

from __future__ import annotations

import seqio
import tensorflow as tf


def mask_token_id(vocabulary: seqio.Vocabulary) -> int:
    """The single mask token of the mask-based objectives: ``<extra_id_0>``, as in T5's reference code."""
    if vocabulary.extra_ids < 1:
        raise ValueError("the vocabulary has no extra_ids; mask-based objectives use <extra_id_0> as mask token")
    return vocabulary.vocab_size - 1


def ordinary_token_range(vocabulary: seqio.Vocabulary) -> tuple[int, int]:
    """[low, high) of the ids BERT-style replacement draws from: above pad/eos/unk, below the sentinels.

    T5 drew from every id above its 3 reserved ones, sentinels included, so a "random" token could be the mask
    token itself or another sentinel; ordinary pieces only keep the mask token unambiguous.
    """
    special = [i for i in (vocabulary.pad_id, vocabulary.eos_id, vocabulary.unk_id) if i is not None and i >= 0]
    low, high = max(special) + 1, vocabulary.vocab_size - vocabulary.extra_ids
    if low >= high:
        raise ValueError(f"the vocabulary has no ordinary tokens between ids {low} and {high}")
    return low, high


def _span_starts(mask: tf.Tensor) -> tf.Tensor:
    return mask & ~tf.concat([[False], mask[:-1]], axis=0)


def _span_sentinels(starts: tf.Tensor, vocab_size: int, dtype: tf.DType) -> tf.Tensor:
    """At each span start, the sentinel of that span: ``vocab_size - 1`` for the first, counting down."""
    return vocab_size - tf.cumsum(tf.cast(starts, dtype))


def sentinel_per_noise_span(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Inputs of the span objectives: each run of noise tokens becomes one sentinel."""
    starts = _span_starts(mask)
    replaced = tf.where(starts, _span_sentinels(starts, vocab_size, tokens.dtype), tokens)
    return tf.boolean_mask(replaced, ~mask | starts)


def noise_spans_after_sentinels(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Targets of the span objectives: the noise spans in order, each led by its sentinel, nothing after.

    T5 encodes targets as the non-noise spans replaced by sentinels. That equals this for its random-span
    masks (non-noise first, noise last), where it also leaves no trailing sentinel; for masks that start with
    noise it misaligns sentinels with spans, and for masks that end with non-noise it adds a trailing
    sentinel. Here the sentinels always match the inputs and the targets never end with one: EOS ends them.
    """
    starts = _span_starts(mask)
    pairs = tf.stack([_span_sentinels(starts, vocab_size, tokens.dtype), tokens], axis=1)
    keep = tf.stack([starts, mask], axis=1)
    return tf.boolean_mask(tf.reshape(pairs, [-1]), tf.reshape(keep, [-1]))


def replace_noise(tokens: tf.Tensor, mask: tf.Tensor, token_id: int) -> tf.Tensor:
    """MASS-style inputs: every noise token becomes ``token_id``."""
    return tf.where(mask, tf.constant(token_id, tokens.dtype), tokens)


def bert_replace_noise(
    tokens: tf.Tensor,
    mask: tf.Tensor,
    seed: tf.Tensor,
    mask_id: int,
    random_ids: tuple[int, int],
    random_rate: float = 0.1,
) -> tf.Tensor:
    """BERT-style inputs as in T5: each noise token becomes, independently, a random id from ``random_ids``
    ([low, high)) with probability ``random_rate``, else ``mask_id``. Unlike BERT, none is left unchanged.
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    use_random = tf.random.stateless_uniform(tf.shape(tokens), seeds[0]) < random_rate
    low, high = random_ids
    random_tokens = tf.random.stateless_uniform(tf.shape(tokens), seeds[1], low, high, dtype=tokens.dtype)
    return tf.where(mask & use_random, random_tokens, replace_noise(tokens, mask, mask_id))


def drop_noise(tokens: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The non-noise tokens in order; ``drop_noise(tokens, ~mask)`` is the noise tokens in order."""
    return tf.boolean_mask(tokens, ~mask)


def permute(tokens: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Deshuffling inputs: the tokens in a uniformly random order."""
    return tf.random.experimental.stateless_shuffle(tokens, seed)
