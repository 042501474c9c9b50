"""SeqIO task -> feature converter -> host-local numpy batches.

This is the last stop of the data code: it knows tasks and lengths, never the mesh. Each host reads its own
shard of the task; the training loop turns host batches into global arrays. The model kind's feature layout
(:mod:`t5x_tl.data.features`) picks SeqIO's feature converter and the task features it reads.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import seqio
import tensorflow as tf

from t5x_tl.data.features import ENCODER_DECODER, FeatureLayout

Batch = dict[str, np.ndarray]
log = logging.getLogger("t5x_tl")


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """What one host reads: task, split, lengths, batch size, position in the stream, and the model's layout."""

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
    features: FeatureLayout = ENCODER_DECODER
    host_sharding: str = "examples"  # or "source" (see converted_dataset)

    def __post_init__(self) -> None:
        if self.host_sharding not in ("examples", "source"):
            raise ValueError(f"host_sharding={self.host_sharding!r} is unknown; choose 'examples' or 'source'")
        self.features.check(self.inputs_length, self.targets_length)

    def tokens_per_example(self) -> int:
        """Model positions per example."""
        return self.features.positions(self.inputs_length, self.targets_length)

    def stream_signature(self) -> dict:
        """What fixes the global stream: a checkpoint's position only continues a stream with an equal one.

        The host count is part of it only when hosts shard the source (their streams then depend on it).
        """
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        fields["model_kind"] = fields.pop("features").name  # the key checkpoints have always written
        fields["global_batch_size"] = fields.pop("batch_size") * self.num_hosts
        del fields["host_index"]
        if self.host_sharding != "source":
            del fields["num_hosts"]
        return fields

    def task_feature_lengths(self) -> dict[str, int]:
        """The task features the layout's converter reads, with their lengths."""
        return self.features.task_feature_lengths(self.inputs_length, self.targets_length)


def _stream_change(saved: dict, current: dict) -> str:
    differing = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
    changes = ", ".join(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in differing)
    advice = (
        "resume on as many processes, or "
        if "num_hosts" in differing or "host_sharding" in differing
        else "resume with the data settings that wrote it, or "
    )
    return (
        f"the checkpoint's input position belongs to another data stream ({changes}); {advice}start a fresh "
        "--workdir (config.checkpoint.init_from=<this workdir> keeps the trained weights)"
    )


def _input_options() -> tf.data.Options:
    """Fuses consecutive per-example maps (SeqIO chains many small ones) into one function each.

    Same elements in the same order, for roughly a tenth less CPU per span-corruption example.
    """
    options = tf.data.Options()
    options.experimental_optimization.map_fusion = True
    return options


def hide_accelerators_from_tensorflow() -> None:
    """TensorFlow only runs the input pipeline: keep it off GPUs so JAX owns their memory."""
    tf.config.set_visible_devices([], "GPU")


def converted_dataset(spec: BatchSpec) -> tf.data.Dataset:
    """This host's unbatched model features of ``spec.features``'s converter (packed when ``spec.pack``).

    ``host_sharding="examples"``: every host builds the same global stream (shuffled, converted and packed
    with the same seed) and keeps rows ``host_index, host_index + num_hosts, ...``, so the global batches are
    the same rows whatever the number of hosts, at the price of each host preprocessing the whole stream.
    ``"source"``: SeqIO gives each host its own shard of the source, as T5X does on large pods.
    """
    by_source = spec.host_sharding == "source"
    dataset = seqio.get_dataset(
        spec.task,
        task_feature_lengths=spec.task_feature_lengths(),
        dataset_split=spec.split,
        shuffle=spec.shuffle,
        num_epochs=None if spec.repeat else 1,
        seed=spec.seed,
        shard_info=seqio.ShardInfo(index=spec.host_index, num_shards=spec.num_hosts) if by_source else None,
        feature_converter=spec.features.converter_for(spec.task, spec.pack),
    )
    return dataset if by_source or spec.num_hosts == 1 else dataset.shard(spec.num_hosts, spec.host_index)


def batched_dataset(spec: BatchSpec) -> tf.data.Dataset:
    """Batched model features of ``spec.features``'s converter (packed when ``spec.pack``)."""
    return converted_dataset(spec).batch(spec.batch_size, drop_remainder=spec.repeat).with_options(_input_options())


class NumpyStream(Iterator[Batch]):
    """A dataset's elements as numpy, with a saveable position, released without blocking whoever drops it.

    The position is tf.data's own iterator state (source file offsets, shuffle and packing buffers, random
    seeds): its size and restore time do not grow with the number of elements consumed, unlike replaying them.
    Destroying a tf.data iterator waits for its autotuning thread, which sleeps between rounds: up to 2.4 s
    a drop in ``scripts/bench_stream_release.py`` on 2 cores. A dropped stream is destroyed on a thread of its
    own instead (not a daemon: the interpreter joins it before exiting).
    """

    def __init__(self, dataset: tf.data.Dataset):
        self._iterator = iter(dataset)

    def __next__(self) -> Batch:
        return tf.nest.map_structure(lambda tensor: tensor.numpy(), next(self._iterator))

    def advance(self, count: int) -> None:
        """Drops the next ``count`` elements, leaving the dataset's graph as it is (unlike ``Dataset.skip``, whose
        node would make the saved position unreadable by a stream opened without it)."""
        for _ in range(count):
            next(self._iterator)

    def save(self, prefix: Path) -> bool:
        """Writes the position under ``prefix``; False when the pipeline holds state TensorFlow cannot save (a
        source that reads a Python generator)."""
        try:
            tf.train.Checkpoint(iterator=self._iterator).write(str(prefix))
        except tf.errors.FailedPreconditionError:
            return False
        return True

    def restore(self, prefix: Path) -> None:
        """Continues from the position saved under ``prefix`` by a stream of the same dataset."""
        tf.train.Checkpoint(iterator=self._iterator).read(str(prefix)).assert_consumed()

    def __del__(self) -> None:
        iterator, self._iterator = getattr(self, "_iterator", None), None
        if iterator is not None and not sys.is_finalizing():
            held = [iterator]
            del iterator
            threading.Thread(target=held.clear, name="release tf.data iterator").start()


def numpy_batches(spec: BatchSpec, skip_batches: int = 0) -> NumpyStream:
    """Host-local numpy batches, after ``skip_batches`` already consumed ones (replayed: O(skip_batches)).

    The stream is a deterministic function of the spec, so skipping reproduces exactly the batches an
    uninterrupted run would have seen next.
    """
    return NumpyStream(batched_dataset(spec).skip(skip_batches).prefetch(tf.data.AUTOTUNE))


class TaskBatches(Iterator[Batch]):
    """:func:`numpy_batches` of ``spec`` with a position that checkpoints save and restore in constant time.

    :meth:`state_dict` (JSON: the batch count and what fixes the global stream) goes into the checkpoint's
    metadata; :meth:`save_position` writes this host's iterator state into the checkpoint's folder. Resuming
    restores that state; where there is none (a source TensorFlow cannot checkpoint, another host count, an
    older checkpoint) the stream replays the batches consumed so far, which gives the same batches, slower.
    """

    def __init__(self, spec: BatchSpec):
        self.spec, self.batches = spec, 0
        self._stream: NumpyStream | None = None
        self._unsaveable_logged = False

    def __next__(self) -> Batch:
        batch = next(self._open())
        self.batches += 1
        return batch

    def _open(self) -> NumpyStream:
        if self._stream is None:
            if self.batches:
                log.info("Replaying %d batches of %s to reach the saved input position", self.batches, self.spec.task)
            self._stream = numpy_batches(self.spec)
            self._stream.advance(self.batches)
        return self._stream

    def state_dict(self) -> dict:
        return {"batches": self.batches, "stream": self.spec.stream_signature()}

    def load_state_dict(self, state: dict) -> None:
        """Continues after ``state["batches"]``; ValueError if the checkpoint read another global stream."""
        saved = state.get("stream")
        if saved is not None and saved != self.spec.stream_signature():
            raise ValueError(_stream_change(saved, self.spec.stream_signature()))
        self.batches, self._stream = state["batches"], None

    def position_name(self) -> str:
        return f"host_{self.spec.host_index}-of-{self.spec.num_hosts}"

    def save_position(self, directory: Path) -> None:
        """Writes this host's iterator state into ``directory`` (a checkpoint step's ``data`` folder)."""
        if not self._open().save(directory / self.position_name()) and not self._unsaveable_logged:
            self._unsaveable_logged = True
            log.warning(
                "The input position of %s cannot be saved as iterator state (its source reads a Python generator): "
                "resuming will replay the batches consumed so far",
                self.spec.task,
            )

    def restore_position(self, directory: Path) -> bool:
        """Restores this host's iterator state from ``directory`` when it holds one; returns whether it did."""
        prefix = directory / self.position_name()
        if not prefix.with_name(prefix.name + ".index").is_file():
            return False
        stream = numpy_batches(self.spec)
        stream.restore(prefix)
        self._stream = stream
        return True

    def close(self) -> None:
        self._stream = None
