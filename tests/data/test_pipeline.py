"""Host batches: each model kind's features (packed or not), an exact continuation after skipping (resume), shards."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import weakref
from collections.abc import Iterator

import numpy as np
import pytest
import seqio
import tensorflow as tf

from t5x_tl.data import features
from t5x_tl.data.pipeline import BatchSpec, NumpyStream, TaskBatches, numpy_batches
from t5x_tl.data.tasks import builtin as tasks


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


def test_a_saved_iterator_state_continues_the_stream_exactly_and_replays_nothing(small_data, tmp_path, caplog):
    spec = _spec(small_data)
    uninterrupted = list(itertools.islice(numpy_batches(spec), 5))
    writer = TaskBatches(spec)
    for _ in range(3):
        next(writer)
    writer.save_position(tmp_path)
    reader = TaskBatches(spec)
    reader.load_state_dict(writer.state_dict())
    with caplog.at_level(logging.INFO, logger="t5x_tl"):
        assert reader.restore_position(tmp_path)
        resumed = [next(reader) for _ in range(2)]
    assert "Replaying" not in caplog.text
    for a, b in zip(uninterrupted[3:], resumed, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not TaskBatches(dataclasses.replace(spec, host_index=1, num_hosts=2)).restore_position(tmp_path)


def test_a_stream_that_replayed_to_its_position_saves_one_a_fresh_stream_restores(small_data, tmp_path):
    spec = _spec(small_data)
    uninterrupted = list(itertools.islice(numpy_batches(spec), 4))
    replayed = TaskBatches(spec)
    replayed.load_state_dict({"batches": 2})  # no iterator state: replays two batches
    next(replayed)
    replayed.save_position(tmp_path)
    restored = TaskBatches(spec)
    restored.load_state_dict(replayed.state_dict())
    assert restored.restore_position(tmp_path)
    np.testing.assert_array_equal(next(restored)["encoder_input_tokens"], uninterrupted[3]["encoder_input_tokens"])


def test_a_generator_source_cannot_save_its_iterator_so_resuming_replays_it(toy_tasks, tmp_path, caplog):
    fields = dict(split="train", inputs_length=8, targets_length=4, batch_size=1, seed=0, pack=False, shuffle=False)
    spec = BatchSpec(task=toy_tasks["pairs"], **fields)
    writer = TaskBatches(spec)
    first = [next(writer) for _ in range(2)]
    with caplog.at_level(logging.WARNING, logger="t5x_tl"):
        writer.save_position(tmp_path)
    assert "cannot be saved as iterator state" in caplog.text
    reader = TaskBatches(spec)
    reader.load_state_dict(writer.state_dict())
    assert not reader.restore_position(tmp_path)
    np.testing.assert_array_equal(next(reader)["decoder_target_tokens"], next(writer)["decoder_target_tokens"])
    assert not np.array_equal(first[0]["decoder_target_tokens"], first[1]["decoder_target_tokens"])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (dict(inputs_length=32), "inputs_length: 64 -> 32"),
        (dict(seed=6), "seed: 5 -> 6"),
        (dict(host_sharding="source", num_hosts=2), "host_sharding: 'examples' -> 'source'"),
    ],
)
def test_a_position_is_refused_by_another_stream_and_the_message_names_the_change(small_data, change, named):
    saved = TaskBatches(_spec(small_data)).state_dict()
    with pytest.raises(ValueError, match="another data stream") as error:
        TaskBatches(_spec(small_data, **change)).load_state_dict(saved)
    assert named in str(error.value) and "fresh --workdir" in str(error.value)


def test_example_sharded_hosts_continue_one_global_stream_on_another_host_count(small_data):
    saved = TaskBatches(_spec(small_data, batch_size=8)).state_dict()
    TaskBatches(_spec(small_data, batch_size=4, host_index=1, num_hosts=2)).load_state_dict(saved)
    by_source = TaskBatches(_spec(small_data, host_sharding="source", num_hosts=2)).state_dict()
    with pytest.raises(ValueError, match=r"num_hosts: 2 -> 4.*resume on as many processes"):
        TaskBatches(_spec(small_data, host_sharding="source", num_hosts=4, batch_size=2)).load_state_dict(by_source)


def test_source_sharded_hosts_read_disjoint_shards(small_data):
    spec = lambda host: _spec(small_data, host_index=host, num_hosts=2, shuffle=False, host_sharding="source")
    first, second = (next(numpy_batches(spec(host))) for host in (0, 1))
    assert not np.array_equal(first["encoder_input_tokens"], second["encoder_input_tokens"])


def test_example_sharded_hosts_share_out_the_one_global_stream(small_data):
    whole = list(itertools.islice(numpy_batches(_spec(small_data, batch_size=8)), 2))
    hosts = [list(itertools.islice(numpy_batches(_spec(small_data, host_index=h, num_hosts=2)), 2)) for h in (0, 1)]
    for step in range(2):
        for key, rows in whole[step].items():
            np.testing.assert_array_equal(hosts[0][step][key], rows[0::2])
            np.testing.assert_array_equal(hosts[1][step][key], rows[1::2])


# Pre-tokenized examples (no EOS), read in order: the first two fill row 0 when packing, the third never fits.
VOCABULARY = seqio.ByteVocabulary(extra_ids=4)
MASK = 262  # <extra_id_0>: 3 special ids + 256 bytes + 4 extra ids, the last id
PAIRS = (([3, 4, 5], [6, 7]), ([8, 9], [10]), ([11, 12, 13, 14, 15, 16], [17, 18, 19]), ([20], [21, 22]))
# Position 2 of the first example is a random replacement (11 for 7), as BERT-style noise writes 10% of its tokens.
MASKED = (([5, MASK, 11, MASK], [5, 6, 7, 8]), ([MASK, 9], [4, 9]), ([3, 4, 5, 6, 7], [3, 4, 5, 6, 7]))


def _source(examples: tuple[tuple[list[int], list[int]], ...]) -> seqio.FunctionDataSource:
    def rows() -> Iterator[dict[str, list[int]]]:
        for inputs, targets in examples:
            yield {"inputs": inputs, "targets": targets}

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        spec = tf.TensorSpec([None], tf.int32)
        return tf.data.Dataset.from_generator(rows, output_signature={"inputs": spec, "targets": spec})

    return seqio.FunctionDataSource(dataset_fn, splits=["train"])


@pytest.fixture(scope="module")
def toy_tasks():
    features = {key: seqio.Feature(VOCABULARY, add_eos=False) for key in ("inputs", "targets")}
    names = {"pairs": "pipeline_test_pairs", "masked": "pipeline_test_masked"}
    seqio.TaskRegistry.add(names["pairs"], source=_source(PAIRS), output_features=features)
    seqio.TaskRegistry.add(names["masked"], source=_source(MASKED), output_features=features)
    yield names
    for name in names.values():
        seqio.TaskRegistry.remove(name)


_Z4, _Z7 = [0] * 4, [0] * 7
# Row 0 of the first batch, by (model kind, pack), hand-computed from PAIRS / MASKED.
EXPECTED_ROW = {
    ("encoder_decoder", False): {
        "encoder_input_tokens": [3, 4, 5, 0, 0, 0, 0, 0],
        "decoder_target_tokens": [6, 7, 0, 0],
        "decoder_input_tokens": [0, 6, 7, 0],
        "decoder_loss_weights": [1, 1, 0, 0],
    },
    ("encoder_decoder", True): {
        "encoder_input_tokens": [3, 4, 5, 8, 9, 0, 0, 0],
        "encoder_segment_ids": [1, 1, 1, 2, 2, 0, 0, 0],
        "encoder_positions": [0, 1, 2, 0, 1, 0, 0, 0],
        "decoder_target_tokens": [6, 7, 10, 0],
        "decoder_input_tokens": [0, 6, 0, 0],
        "decoder_loss_weights": [1, 1, 1, 0],
        "decoder_segment_ids": [1, 1, 2, 0],
        "decoder_positions": [0, 1, 0, 0],
    },
    ("decoder_only", False): {
        "decoder_target_tokens": [6, 7, 0, 0],
        "decoder_input_tokens": [0, 6, 7, 0],
        "decoder_loss_weights": [1, 1, 0, 0],
    },
    ("decoder_only", True): {
        "decoder_target_tokens": [6, 7, 10, 0],
        "decoder_input_tokens": [0, 6, 0, 0],
        "decoder_loss_weights": [1, 1, 1, 0],
        "decoder_segment_ids": [1, 1, 2, 0],
        "decoder_positions": [0, 1, 0, 0],
    },
    ("prefix_lm", False): {  # inputs + targets in one sequence of 8 + 4; loss on the targets part only
        "decoder_target_tokens": [3, 4, 5, 6, 7, *_Z7],
        "decoder_input_tokens": [0, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0],
        "decoder_loss_weights": [0, 0, 0, 1, 1, *_Z7],
        "decoder_causal_attention": [1, 1, 1, 1, 0, *_Z7],  # the inputs and the position reading their last
    },
    ("prefix_lm", True): {
        "decoder_target_tokens": [3, 4, 5, 6, 7, 8, 9, 10, *_Z4],
        "decoder_input_tokens": [0, 3, 4, 5, 6, 0, 8, 9, *_Z4],
        "decoder_loss_weights": [0, 0, 0, 1, 1, 0, 0, 1, *_Z4],
        "decoder_causal_attention": [1, 1, 1, 1, 0, 1, 1, 1, *_Z4],
        "decoder_segment_ids": [1, 1, 1, 1, 1, 2, 2, 2, *_Z4],
        "decoder_positions": [0, 1, 2, 3, 4, 0, 1, 2, *_Z4],
    },
    ("encoder_only", False): {  # loss on masked and randomly replaced positions
        "encoder_input_tokens": [5, MASK, 11, MASK, 0, 0, 0, 0],
        "encoder_target_tokens": [5, 6, 7, 8, 0, 0, 0, 0],
        "encoder_loss_weights": [0, 1, 1, 1, 0, 0, 0, 0],
    },
    ("encoder_only", True): {
        "encoder_input_tokens": [5, MASK, 11, MASK, MASK, 9, 0, 0],
        "encoder_target_tokens": [5, 6, 7, 8, 4, 9, 0, 0],
        "encoder_loss_weights": [0, 1, 1, 1, 1, 0, 0, 0],
        "encoder_segment_ids": [1, 1, 1, 1, 2, 2, 0, 0],
        "encoder_positions": [0, 1, 2, 3, 0, 1, 0, 0],
    },
}


@pytest.mark.parametrize(("model_kind", "pack"), list(EXPECTED_ROW))
def test_each_model_kind_yields_its_features(toy_tasks, model_kind, pack):
    task = toy_tasks["masked" if model_kind == "encoder_only" else "pairs"]
    targets_length = 8 if model_kind == "encoder_only" else 4
    spec = BatchSpec(task, "train", 8, targets_length, batch_size=2, seed=0, pack=pack, shuffle=False)
    batch = next(numpy_batches(dataclasses.replace(spec, features=getattr(features, model_kind.upper()))))
    expected = EXPECTED_ROW[model_kind, pack]
    assert set(batch) == set(expected)
    for key, row in expected.items():
        assert batch[key].shape == (2, len(row)), key
        np.testing.assert_array_equal(batch[key][0], row, err_msg=key)


def test_encoder_only_needs_aligned_lengths():
    with pytest.raises(ValueError, match="targets_length=4 must equal inputs_length=8"):
        BatchSpec("any", "train", 8, 4, batch_size=2, seed=0, features=features.ENCODER_ONLY)


def test_a_dropped_stream_yields_everything_then_is_released_off_the_callers_thread():
    stream = NumpyStream(tf.data.Dataset.range(5).prefetch(tf.data.AUTOTUNE))
    assert [int(x) for x in stream] == [0, 1, 2, 3, 4]
    released_on: list[str] = []
    weakref.finalize(stream._iterator, lambda: released_on.append(threading.current_thread().name))
    del stream
    for thread in threading.enumerate():
        if thread.name == "release tf.data iterator":
            thread.join(timeout=60)
    assert released_on == ["release tf.data iterator"]
