"""Examples generated on the fly as a SeqIO source: an endless train stream, fixed evaluation sets.

The train stream follows the run's seed and the host's virtual shard (so hosts never read the same examples);
validation and test are the first ``eval_examples`` examples of a fixed stream, the same for every run, dealt
out to the hosts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import seqio
import tensorflow as tf

SPLITS = ("train", "validation", "test")
VIRTUAL_SHARDS = 1024  # lets SeqIO shard the train stream at the source, one seed per host

Stream = Callable[[str, int], Iterator[dict[str, str]]]  # (split, seed) -> endless text examples


class GeneratedSource(seqio.DataSource):
    """``stream(split, seed)`` as a SeqIO source of the string ``fields``; ``tokens=True`` makes them int32
    token-id sequences instead (already tokenized: the task skips ``seqio.preprocessors.tokenize``)."""

    def __init__(self, stream: Stream, fields: Sequence[str], eval_examples: int, *, tokens: bool = False):
        self._stream, self._fields, self._eval_examples = stream, tuple(fields), eval_examples
        self._spec = tf.TensorSpec((None,), tf.int32) if tokens else tf.TensorSpec((), tf.string)
        super().__init__(splits=SPLITS, caching_permitted=False)

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return False

    def list_shards(self, split: str) -> list[str]:
        return [f"{split}-{i}" for i in range(VIRTUAL_SHARDS)]

    def get_dataset(
        self,
        split: str = "train",
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: seqio.ShardInfo | None = None,
        *,
        sequence_length=None,
        use_cached: bool = False,
        num_epochs: int | None = 1,
    ) -> tf.data.Dataset:
        index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)

        def generate() -> Iterator[dict[str, str]]:
            if split == "train":  # a seed per run and host
                yield from self._stream(split, (seed or 0) * VIRTUAL_SHARDS + index)
            else:  # one fixed set, dealt out to the hosts
                fixed = itertools.islice(self._stream(split, 0), self._eval_examples)
                yield from itertools.islice(fixed, index, None, count)

        signature = dict.fromkeys(self._fields, self._spec)
        return tf.data.Dataset.from_generator(generate, output_signature=signature)
