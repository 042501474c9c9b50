"""SeqIO task -> feature converter -> host-local numpy batches.

This is the last stop of the data code: it knows tasks and lengths, never the mesh. Each host reads its own
shard of the task; the training loop turns host batches into global arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import seqio
import tensorflow as tf

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """What one host reads: task, split, lengths, batch size and position in the stream."""

    task: str
    split: str
    inputs_length: int
    targets_length: int
    batch_size: int  # per host
    seed: int
    pack: bool = True
    shuffle: bool = True
    repeat: bool = True
    host_index: int = 0
    num_hosts: int = 1


def hide_accelerators_from_tensorflow() -> None:
    """TensorFlow only runs the input pipeline: keep it off GPUs so JAX owns their memory."""
    tf.config.set_visible_devices([], "GPU")


def encoder_decoder_dataset(spec: BatchSpec) -> tf.data.Dataset:
    """Batched features of :class:`seqio.EncDecFeatureConverter` (packed when ``spec.pack``)."""
    dataset = seqio.get_dataset(
        spec.task,
        task_feature_lengths={
            "inputs": spec.inputs_length,
            "targets": spec.targets_length,
        },
        dataset_split=spec.split,
        shuffle=spec.shuffle,
        num_epochs=None if spec.repeat else 1,
        seed=spec.seed,
        shard_info=seqio.ShardInfo(index=spec.host_index, num_shards=spec.num_hosts),
        feature_converter=seqio.EncDecFeatureConverter(pack=spec.pack),
    )
    return dataset.batch(spec.batch_size, drop_remainder=spec.repeat)


def numpy_batches(spec: BatchSpec, skip_batches: int = 0) -> Iterator[Batch]:
    """Host-local numpy batches, resuming after ``skip_batches`` already consumed ones.

    The stream is a deterministic function of the spec, so skipping reproduces exactly the batches an
    uninterrupted run would have seen next.
    """
    dataset = encoder_decoder_dataset(spec).skip(skip_batches).prefetch(tf.data.AUTOTUNE)
    return dataset.as_numpy_iterator()
