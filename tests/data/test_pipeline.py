"""Host batches: packed feature-converter output, and an exact continuation after skipping (resume)."""

from __future__ import annotations

import itertools

import numpy as np

from t5x_tl.data import tasks
from t5x_tl.data.pipeline import BatchSpec, numpy_batches


def _spec(small_data, **changes) -> BatchSpec:
    task = tasks.builtin_span_corruption_task(small_data)
    fields = dict(task=task.name, split="train", inputs_length=64, targets_length=16, batch_size=4, seed=5)
    return BatchSpec(**{**fields, **changes})


def test_packed_batches_have_encoder_decoder_features(small_data):
    batch = next(numpy_batches(_spec(small_data)))
    assert batch["encoder_input_tokens"].shape == (4, 64)
    assert batch["decoder_target_tokens"].shape == (4, 16)
    for key in ("encoder_segment_ids", "decoder_segment_ids", "encoder_positions", "decoder_loss_weights"):
        assert key in batch
    np.testing.assert_array_equal(batch["encoder_segment_ids"] > 0, batch["encoder_input_tokens"] > 0)
    np.testing.assert_array_equal(batch["decoder_loss_weights"] > 0, batch["decoder_target_tokens"] > 0)


def test_skipping_reproduces_the_uninterrupted_stream(small_data):
    spec = _spec(small_data)
    uninterrupted = list(itertools.islice(numpy_batches(spec), 5))
    resumed = list(itertools.islice(numpy_batches(spec, skip_batches=3), 2))
    for a, b in zip(uninterrupted[3:], resumed, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_hosts_read_disjoint_shards(small_data):
    first = next(numpy_batches(_spec(small_data, host_index=0, num_hosts=2, shuffle=False)))
    second = next(numpy_batches(_spec(small_data, host_index=1, num_hosts=2, shuffle=False)))
    assert not np.array_equal(first["encoder_input_tokens"], second["encoder_input_tokens"])
