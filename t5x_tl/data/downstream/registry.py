"""SeqIO tasks of the synthetic downstream suite. Importing this module registers the default suite.

Examples are generated from the built-in world on first read and written as TFRecord files under the corpus
folder (``downstream/<family>-<digest>/<split>.tfrecord``) through ``atomic_directory``, as the corpus is: so
registering costs nothing, every reader of a task sees the same examples, and a killed build leaves no
half-written split behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import seqio
import tensorflow as tf

from t5x_tl.data.cache import atomic_directory
from t5x_tl.data.corpus.files import CorpusFiles
from t5x_tl.data.downstream import pairs, qa, summaries, translation
from t5x_tl.data.downstream.generators import SPLITS, Example, Family
from t5x_tl.data.tasks.builtin import BuiltinData, builtin_vocabulary
from t5x_tl.eval import metrics

# Bump when generated examples change, so that cached ones are regenerated.
GENERATOR_VERSION = 1
TASK_PREFIX = "synthetic_"
DEFAULT_EXAMPLES_PER_SPLIT: Mapping[str, int] = types.MappingProxyType(
    {"train": 20_000, "validation": 1_000, "test": 1_000}
)
_FEATURES = ("inputs", "targets")


def _label_id(output: str, example: Mapping[str, Any] | None = None, is_target: bool = False) -> int:
    """A pair label's index in ``pairs.LABELS``; -1 for text that is no label, which metrics score as wrong."""
    return pairs.LABELS.index(output) if output in pairs.LABELS else -1


def _answers(output: str, example: Mapping[str, Any] | None = None, is_target: bool = False) -> str | list[str]:
    """``metrics.squad`` takes each target as the list of acceptable answers; a synthetic question has one."""
    return [output] if is_target else output


# (family, postprocessor, metric functions): each scored as T5 scores the column it stands for.
_SUITE: tuple[tuple[Family, Callable[..., Any] | None, tuple[metrics.MetricFn, ...]], ...] = (
    (
        pairs.FAMILY,
        _label_id,
        (metrics.accuracy, functools.partial(metrics.macro_f1, num_classes=len(pairs.LABELS))),
    ),
    (qa.FAMILY, _answers, (metrics.squad,)),
    (summaries.FAMILY, None, (metrics.rouge,)),
    (translation.FAMILY, None, (metrics.bleu,)),
)


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _write(path: Path, examples: Sequence[Example]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            feature = {
                key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[example[key].encode("utf-8")]))
                for key in _FEATURES
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


class SyntheticSource(seqio.TFExampleDataSource):
    """One family's splits as TFRecord files under the corpus folder, generated on first read."""

    def __init__(self, data: BuiltinData, family: Family, examples_per_split: Mapping[str, int]):
        corpus_dir = CorpusFiles.locate(data.corpus, data.data_dir).directory
        digest = _digest({"examples": dict(examples_per_split), "version": GENERATOR_VERSION})
        self.directory = corpus_dir / "downstream" / f"{family.name}-{digest}"
        super().__init__(
            {split: str(self.directory / f"{split}.tfrecord") for split in SPLITS},
            feature_description={key: tf.io.FixedLenFeature([], tf.string) for key in _FEATURES},
            num_input_examples=dict(examples_per_split),
        )
        self._data = data
        self._family = family
        self._examples_per_split = examples_per_split

    def list_shards(self, split: str) -> list[str]:
        with tf.init_scope():  # SeqIO may first ask while tracing a tf.function; writing needs eager mode
            self._ensure()
        return super().list_shards(split)

    def _ensure(self) -> None:
        if self.directory.is_dir():
            return
        world = self._data.files().world()
        with atomic_directory(self.directory) as scratch:
            for split, count in self._examples_per_split.items():
                examples = self._family.examples(world, self._data.corpus.seed, split, count)
                _write(scratch / f"{split}.tfrecord", examples)


def _checked(examples_per_split: Mapping[str, int]) -> dict[str, int]:
    counts = {split: examples_per_split.get(split) for split in SPLITS}
    if set(examples_per_split) != set(SPLITS) or any(type(c) is not int or c < 1 for c in counts.values()):
        raise ValueError(
            f"examples_per_split must give a positive integer for each of {SPLITS}; got {examples_per_split}"
        )
    return counts


def register_family(
    data: BuiltinData,
    family: Family,
    examples_per_split: Mapping[str, int],
    postprocessor: Callable[..., Any] | None,
    metric_fns: Sequence[metrics.MetricFn],
) -> str:
    """Registers ``family``'s task over ``data``, unless already registered, and returns its name:
    ``synthetic_<family>``, suffixed with a digest of ``data`` and the sizes unless both are the defaults."""
    counts = _checked(examples_per_split)
    default = data == BuiltinData() and counts == dict(DEFAULT_EXAMPLES_PER_SPLIT)
    suffix = "" if default else "_" + _digest({"data": data.fingerprint(), "examples": counts})
    name = f"{TASK_PREFIX}{family.name}{suffix}"
    if name not in seqio.TaskRegistry.names():
        features = {key: seqio.Feature(builtin_vocabulary(data), add_eos=True) for key in _FEATURES}
        seqio.TaskRegistry.add(
            name,
            source=SyntheticSource(data, family, counts),
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
            output_features=features,
            postprocess_fn=postprocessor,
            metric_fns=list(metric_fns),
        )
    return name


def register_synthetic_tasks(
    data: BuiltinData, examples_per_split: Mapping[str, int] = DEFAULT_EXAMPLES_PER_SPLIT
) -> list[str]:
    """Registers one task per family of the suite over ``data`` (see :func:`register_family`)."""
    return [register_family(data, family, examples_per_split, post, fns) for family, post, fns in _SUITE]


register_synthetic_tasks(BuiltinData())
