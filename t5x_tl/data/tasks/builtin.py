"""SeqIO tasks over the built-in corpus. Importing this module registers the default span-corruption task.

The corpus and its SentencePiece vocabulary are generated on first read, not on import, so registering
costs nothing and a task can be registered before its assets exist.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import seqio
import tensorflow as tf

from t5x_tl.data.cache import default_data_dir
from t5x_tl.data.corpus.documents import CorpusSpec
from t5x_tl.data.corpus.files import SPLITS, CorpusFiles, ensure_corpus
from t5x_tl.data.objectives.preprocessors import objective_lengths, objective_sentinels
from t5x_tl.data.objectives.span_corruption import span_corruption
from t5x_tl.data.vocabularies import EXTRA_IDS, ensure_sentencepiece

DEFAULT_TASK = "builtin_span_corruption"
DEFAULT_SENTENCEPIECE_SIZE = 1024
# task name -> (objective, parameters) of every pretraining-objective task, here and in pretraining_tasks, so that
# a job derives the targets length its objective needs
OBJECTIVE_OF_TASK: dict[str, tuple[str, dict[str, float]]] = {}


@dataclasses.dataclass(frozen=True)
class BuiltinData:
    """Which built-in corpus, where it is cached, and how it is tokenized."""

    corpus: CorpusSpec = dataclasses.field(default_factory=CorpusSpec)
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    vocabulary: str = "sentencepiece"  # or "byte"
    sentencepiece_size: int = DEFAULT_SENTENCEPIECE_SIZE

    def files(self) -> CorpusFiles:
        return ensure_corpus(self.corpus, self.data_dir)

    def fingerprint(self) -> str:
        fields = {
            "corpus": self.corpus.fingerprint(),
            "vocabulary": self.vocabulary,
            "size": self.sentencepiece_size,
        }
        fields["data_dir"] = str(self.data_dir)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


class BuiltinSentencePieceVocabulary(seqio.SentencePieceVocabulary):
    """A SentencePiece vocabulary that trains itself on the built-in corpus the first time it is used."""

    def __init__(self, data: BuiltinData):
        corpus_dir = CorpusFiles.locate(data.corpus, data.data_dir).directory
        super().__init__(
            str(corpus_dir / f"spm_{data.sentencepiece_size}" / "spm.model"),
            extra_ids=EXTRA_IDS,
        )
        self._data = data

    def _model_context(self):
        if not self._model:
            with tf.init_scope():  # SeqIO may first ask while tracing a tf.function; building needs eager mode
                ensure_sentencepiece(self._data.files(), self._data.sentencepiece_size)
        return super()._model_context()


def builtin_vocabulary(data: BuiltinData) -> seqio.Vocabulary:
    if data.vocabulary == "byte":
        return seqio.ByteVocabulary(extra_ids=EXTRA_IDS)
    if data.vocabulary == "sentencepiece":
        return BuiltinSentencePieceVocabulary(data)
    raise ValueError(f"unknown vocabulary {data.vocabulary!r}; choose 'sentencepiece' or 'byte'")


class BuiltinCorpusSource(seqio.TFExampleDataSource):
    """The corpus's TFRecord splits as a SeqIO file source, generated on first read."""

    def __init__(self, data: BuiltinData):
        files = CorpusFiles.locate(data.corpus, data.data_dir)
        patterns = {split: str(files.split_path(split)) for split in SPLITS}
        super().__init__(patterns, feature_description={"text": tf.io.FixedLenFeature([], tf.string)})
        self._data = data

    def list_shards(self, split: str) -> list[str]:
        with tf.init_scope():
            self._data.files()
        return super().list_shards(split)


def register_span_corruption(
    name: str,
    source: seqio.DataSource,
    vocabulary: seqio.Vocabulary,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> seqio.Task:
    """Registers T5's random-span corruption over any source with a ``text`` feature."""
    features = {key: seqio.Feature(vocabulary, add_eos=True, required=False) for key in ("inputs", "targets")}
    params = {"noise_density": noise_density, "mean_noise_span_length": mean_noise_span_length}
    preprocessors = [
        functools.partial(seqio.preprocessors.rekey, key_map={"inputs": None, "targets": "text"}),
        seqio.preprocessors.tokenize,
        functools.partial(span_corruption, **params),
        seqio.preprocessors.append_eos_after_trim,
    ]
    task = seqio.TaskRegistry.add(name, source=source, preprocessors=preprocessors, output_features=features)
    OBJECTIVE_OF_TASK[name] = ("random_spans", params)
    return task


def objective_targets_length(task_name: str, inputs_length: int) -> int | None:
    """The targets length (with EOS) that a pretraining-objective task needs at ``inputs_length``, or None for a
    task of another kind. Raises ValueError when the inputs are too short, or need more sentinels than its
    vocabulary has.
    """
    if task_name not in OBJECTIVE_OF_TASK:
        return None
    objective, params = OBJECTIVE_OF_TASK[task_name]
    extra_ids = seqio.get_mixture_or_task(task_name).output_features["targets"].vocabulary.extra_ids
    needed = objective_sentinels(objective, params, inputs_length)
    if needed > extra_ids:
        raise ValueError(
            f"an example of {task_name} may need {needed} sentinels at inputs_length={inputs_length}, but its "
            f"vocabulary has extra_ids={extra_ids}; shorten the inputs"
        )
    return objective_lengths(objective, params, inputs_length)[1]


def builtin_span_corruption_task(data: BuiltinData) -> seqio.Task:
    """The span-corruption task over ``data``, registered under a name derived from it on first request."""
    name = DEFAULT_TASK if data == IMPORT_TIME_DATA else f"{DEFAULT_TASK}_{data.fingerprint()}"
    if name not in seqio.TaskRegistry.names():
        register_span_corruption(name, BuiltinCorpusSource(data), builtin_vocabulary(data))
    return seqio.get_mixture_or_task(name)


IMPORT_TIME_DATA = BuiltinData()  # fixed here: a later change of $T5X_TL_DATA_DIR gets its own task name
builtin_span_corruption_task(IMPORT_TIME_DATA)
