"""T5's document concatenation, the step before an objective on a corpus of many short documents (C4).

T5's ``span_corruption`` keeps one randomly chosen, aligned window of at most 65,536 tokens of each document
(``select_random_chunk``), concatenates the windows of 128 consecutive documents (``reduce_concat_tokens``) and
cuts the concatenation into raw-length chunks (``split_tokens``). :func:`concatenate_documents` is the first two
steps as one SeqIO preprocessor; put it after tokenizing and before an objective of
``t5x_tl.data.objectives.preprocessors``, whose chunking is the third. Without it every example comes from one document.
"""

from __future__ import annotations

import seqio
import tensorflow as tf

T5_WINDOW_TOKENS = 65_536  # select_random_chunk's max_length in T5's span_corruption
T5_DOCUMENTS_PER_GROUP = 128  # reduce_concat_tokens' batch_size


def concatenate_documents(
    dataset: tf.data.Dataset,
    documents_per_group: int = T5_DOCUMENTS_PER_GROUP,
    window_tokens: int = T5_WINDOW_TOKENS,
    key: str = "targets",
) -> tf.data.Dataset:
    """One random aligned window of each non-empty tokenized document, and every ``documents_per_group``
    consecutive windows concatenated into one ``key`` sequence (the last group may hold fewer). As in T5, empty
    documents are dropped before grouping, and only ``key`` is kept."""
    for name, value in (("documents_per_group", documents_per_group), ("window_tokens", window_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: it must be a positive integer")

    @seqio.map_over_dataset(num_seeds=1)
    def one_window(example: dict, seed: tf.Tensor) -> dict:
        tokens = example[key]
        windows = (tf.size(tokens) + window_tokens - 1) // window_tokens
        start = window_tokens * tf.random.stateless_uniform([], seed=seed, maxval=windows, dtype=tf.int32)
        return {key: tokens[start : start + window_tokens]}

    def tokens_only(example: dict) -> dict:
        return {key: example[key]}

    def not_empty(example: dict) -> tf.Tensor:
        return tf.size(example[key]) > 0

    def concatenated(group: dict) -> dict:
        return {key: group[key].flat_values}

    groups = one_window(dataset.map(tokens_only).filter(not_empty)).ragged_batch(documents_per_group)
    return groups.map(concatenated)
