"""Standard downstream benchmarks over TFDS as SeqIO tasks in T5's text-to-text format.

Each benchmark is one row of ``TASKS``: its TFDS name pinned to a version, how an example becomes
``inputs``/``targets`` text, how decoded text maps back to what its metrics compare, and the metrics.
``register_tfds_tasks`` turns every row into a SeqIO task for a caller-chosen vocabulary; nothing is
registered at import because the vocabulary (a SentencePiece model on real pods) is the caller's.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from t5x_tl.eval import metrics
from t5x_tl.eval.metrics import MetricFn

UNKNOWN_TARGET = "<unk>"  # target text of unlabelled (test-split) examples
INVALID_LABEL = -1  # what a classification postprocessor returns for text that is no label name
INVALID_SIMILARITY = -1.0  # outside STS-B's 0-5 range, so unparsable predictions count against correlation

Getter = Callable[[Mapping[str, Any]], tf.Tensor]
Fields = tuple[tuple[str, Getter], ...]

_TRAIN_VALIDATION_TEST = ("train", "validation", "test")
_TEST_ONLY = ("test",)
_BOOLEAN = ("False", "True")
_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")


def feature(*path: str) -> Getter:
    """Reads a possibly nested feature, e.g. ``feature("answers", "text")``."""
    return lambda ex: functools.reduce(operator.getitem, path, ex)


def _fields(*names: str) -> Fields:
    return tuple((name, feature(name)) for name in names)


@dataclasses.dataclass(frozen=True)
class TextToText:
    """Formats an example as ``inputs = "<prompt> <label>: <value> ..."`` and ``targets = target(example)``.

    A field with an empty label contributes its value alone. ``keep`` names extra features carried past
    tokenization for postprocessors that need more than the target text (reference answers, groups).
    """

    prompt: str
    fields: Fields
    target: Getter
    keep: Fields = ()

    def format_example(self, ex: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        parts: list[Any] = [self.prompt] if self.prompt else []
        for label, get in self.fields:
            parts += [f"{label}:", get(ex)] if label else [get(ex)]
        formatted = {"inputs": tf.strings.join(parts, separator=" "), "targets": self.target(ex)}
        return formatted | {key: get(ex) for key, get in self.keep}

    def preprocess(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.map(self.format_example, num_parallel_calls=tf.data.AUTOTUNE)


# ---- target text --------------------------------------------------------------------------------------------


def _label_name(label_names: Sequence[str]) -> Getter:
    """Label id -> its name; the -1 label of unlabelled test examples -> ``UNKNOWN_TARGET``."""

    def target(ex: Mapping[str, Any]) -> tf.Tensor:
        label = ex["label"]
        index = tf.where(label < 0, tf.constant(len(label_names), label.dtype), label)
        return tf.gather([*label_names, UNKNOWN_TARGET], index)

    return target


def _similarity_text(ex: Mapping[str, Any]) -> tf.Tensor:
    # T5 turns STS-B regression into 26 classes: the score rounded to the nearest 0.2, e.g. "3.8".
    return tf.strings.as_string(tf.round(ex["label"] * 5) / 5, precision=1)


def _first(get: Getter) -> Getter:
    """First string of a list feature, or ``UNKNOWN_TARGET`` when the list is empty (test splits)."""
    return lambda ex: tf.concat([get(ex), [UNKNOWN_TARGET]], axis=0)[0]


# ---- input text and kept features ---------------------------------------------------------------------------


def _wsc_marked_text(ex: Mapping[str, Any]) -> tf.Tensor:
    """The text with the candidate referent wrapped in ``* ... *`` and the pronoun in ``# ... #`` (word indices)."""
    words = tf.strings.split(ex["text"])
    position = tf.range(tf.size(words))

    def marks(start: tf.Tensor, span: tf.Tensor, mark: str) -> tuple[tf.Tensor, tf.Tensor]:
        end = start + tf.size(tf.strings.split(span)) - 1
        return tf.where(position == start, f"{mark} ", ""), tf.where(position == end, f" {mark}", "")

    open1, close1 = marks(ex["span1_index"], ex["span1_text"], "*")
    open2, close2 = marks(ex["span2_index"], ex["span2_text"], "#")
    return tf.strings.reduce_join(open1 + open2 + words + close2 + close1, separator=" ")


def _record_passage(ex: Mapping[str, Any]) -> tf.Tensor:
    # CNN/DailyMail passages list highlights as "\n@highlight\n" lines; make them sentences.
    passage = tf.strings.regex_replace(ex["passage"], r"([.?!\"'])\n@highlight\n", r"\1 ")
    return tf.strings.regex_replace(passage, r"\n@highlight\n", ". ")


def _record_entities(ex: Mapping[str, Any]) -> tf.Tensor:
    return tf.strings.reduce_join(ex["entities"], separator=", ")


def _group(*idx_keys: str) -> Getter:
    """A string key such as ``"12:40"`` from the example's ``idx`` parts, grouping answers of one question."""
    return lambda ex: tf.strings.join([tf.strings.as_string(ex["idx"][key]) for key in idx_keys], separator=":")


# ---- postprocessors: decoded text -> what the metrics compare -----------------------------------------------


def label_id(text: str, label_names: Sequence[str], **unused_kwargs: Any) -> int:
    """Index of ``text`` among ``label_names``, or ``INVALID_LABEL`` so metrics score it as wrong."""
    text = text.strip()
    return label_names.index(text) if text in label_names else INVALID_LABEL


def similarity(text: str, **unused_kwargs: Any) -> float:
    """The predicted STS-B score, or ``INVALID_SIMILARITY`` for text that is not a finite number."""
    try:
        value = float(text)
    except ValueError:
        return INVALID_SIMILARITY
    return value if math.isfinite(value) else INVALID_SIMILARITY


def answers(text: str, example: Mapping[str, Any], is_target: bool) -> str | list[str]:
    """Targets become every reference answer (metrics take the best match); predictions stay text."""
    return [answer.decode("utf-8") for answer in example["answers"]] if is_target else text


def multirc(text: str, example: Mapping[str, Any], is_target: bool) -> dict[str, Any]:
    """A True/False label id; targets also carry their question's group, which model outputs lack."""
    value = {"value": label_id(text, _BOOLEAN)}
    if is_target:
        return {**value, "group": example["group"].decode("utf-8")}
    return value


# ---- the benchmark table ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TfdsTask:
    """One benchmark: where its data lives, its text-to-text format, postprocessor and metrics."""

    name: str
    tfds_name: str  # "dataset[/config]:version"
    splits: Sequence[str] | Mapping[str, str]  # split names, or task split -> TFDS split
    text_to_text: TextToText
    postprocess_fn: Callable[..., Any] | None
    metric_fns: tuple[MetricFn, ...]


@dataclasses.dataclass(frozen=True)
class _Benchmark:
    dataset: str
    version: str
    name_suffix: str

    def task(
        self,
        config: str,
        text_to_text: TextToText,
        postprocess_fn: Callable[..., Any],
        metric_fns: tuple[MetricFn, ...],
        *,
        name: str | None = None,
        splits: Sequence[str] | Mapping[str, str] = _TRAIN_VALIDATION_TEST,
    ) -> TfdsTask:
        return TfdsTask(
            name=f"{self.dataset}_{name or config}_{self.name_suffix}",
            tfds_name=f"{self.dataset}/{config}:{self.version}",
            splits=splits,
            text_to_text=text_to_text,
            postprocess_fn=postprocess_fn,
            metric_fns=metric_fns,
        )

    def classification(
        self,
        config: str,
        fields: Fields,
        label_names: Sequence[str],
        metric_fns: tuple[MetricFn, ...],
        *,
        prompt: str | None = None,
        **task_kwargs: Any,
    ) -> TfdsTask:
        """Targets are label names; ``prompt`` defaults to the config (diagnostics borrow MNLI's or RTE's)."""
        text_to_text = TextToText(prompt or config, fields, _label_name(label_names))
        postprocess_fn = functools.partial(label_id, label_names=tuple(label_names))
        return self.task(config, text_to_text, postprocess_fn, metric_fns, **task_kwargs)


_GLUE = _Benchmark("glue", "2.0.0", "v2")
_SUPER_GLUE = _Benchmark("super_glue", "1.0.2", "v102")
_ACCURACY = (metrics.accuracy,)
_F1_ACCURACY = (metrics.binary_f1, metrics.accuracy)
_NO_METRICS = ()  # diagnostics: TFDS has only their unlabelled test split


def _translation(name: str, tfds_name: str, target_language: str, language_code: str) -> TfdsTask:
    text_to_text = TextToText(
        f"translate English to {target_language}:", (("", feature("en")),), feature(language_code)
    )
    return TfdsTask(name, tfds_name, _TRAIN_VALIDATION_TEST, text_to_text, None, (metrics.bleu,))


_MNLI_SPLITS = ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")

TASKS: tuple[TfdsTask, ...] = (
    _GLUE.classification("cola", _fields("sentence"), ("unacceptable", "acceptable"), (metrics.matthews_corrcoef,)),
    _GLUE.classification("sst2", _fields("sentence"), ("negative", "positive"), _ACCURACY),
    _GLUE.classification("mrpc", _fields("sentence1", "sentence2"), ("not_equivalent", "equivalent"), _F1_ACCURACY),
    _GLUE.classification("qqp", _fields("question1", "question2"), ("not_duplicate", "duplicate"), _F1_ACCURACY),
    _GLUE.task(
        "stsb",
        TextToText("stsb", _fields("sentence1", "sentence2"), _similarity_text),
        similarity,
        (metrics.pearson_spearman,),
    ),
    _GLUE.classification("mnli", _fields("hypothesis", "premise"), _NLI3, _ACCURACY, splits=_MNLI_SPLITS),
    *(
        _GLUE.classification(
            "mnli",
            _fields("hypothesis", "premise"),
            _NLI3,
            _ACCURACY,
            name=f"mnli_{variant}",
            splits={"validation": f"validation_{variant}", "test": f"test_{variant}"},
        )
        for variant in ("matched", "mismatched")
    ),
    _GLUE.classification("qnli", _fields("question", "sentence"), _NLI2, _ACCURACY),
    _GLUE.classification("rte", _fields("sentence1", "sentence2"), _NLI2, _ACCURACY),
    _GLUE.classification("wnli", _fields("sentence1", "sentence2"), ("not_entailment", "entailment"), _ACCURACY),
    _GLUE.classification("ax", _fields("hypothesis", "premise"), _NLI3, _NO_METRICS, prompt="mnli", splits=_TEST_ONLY),
    _SUPER_GLUE.classification("boolq", _fields("passage", "question"), _BOOLEAN, _ACCURACY),
    _SUPER_GLUE.classification(
        "cb",
        _fields("hypothesis", "premise"),
        ("entailment", "contradiction", "neutral"),
        (functools.partial(metrics.macro_f1, num_classes=3), metrics.accuracy),
    ),
    _SUPER_GLUE.classification(
        "copa", _fields("choice1", "choice2", "premise", "question"), ("choice1", "choice2"), _ACCURACY
    ),
    _SUPER_GLUE.task(
        "multirc",
        TextToText(
            "multirc",
            _fields("question", "answer", "paragraph"),
            _label_name(_BOOLEAN),
            keep=(("group", _group("paragraph", "question")),),
        ),
        multirc,
        (metrics.on_values(metrics.binary_f1), metrics.group_exact_match),
    ),
    _SUPER_GLUE.task(
        "record",
        TextToText(
            "record",
            (("query", feature("query")), ("entities", _record_entities), ("passage", _record_passage)),
            _first(feature("answers")),
            keep=(("answers", feature("answers")),),
        ),
        answers,
        (metrics.squad,),
    ),
    _SUPER_GLUE.classification("rte", _fields("hypothesis", "premise"), _NLI2, _ACCURACY),
    _SUPER_GLUE.classification("wic", _fields("sentence1", "sentence2", "word"), _BOOLEAN, _ACCURACY),
    _SUPER_GLUE.classification(
        "wsc.fixed", (("text", _wsc_marked_text),), _BOOLEAN, _ACCURACY, name="wsc", prompt="wsc"
    ),
    _SUPER_GLUE.classification(
        "axb",
        (("hypothesis", feature("sentence2")), ("premise", feature("sentence1"))),
        _NLI2,
        _NO_METRICS,
        prompt="rte",
        splits=_TEST_ONLY,
    ),
    _SUPER_GLUE.classification(
        "axg", _fields("hypothesis", "premise"), _NLI2, _NO_METRICS, prompt="rte", splits=_TEST_ONLY
    ),
    TfdsTask(
        "cnn_dailymail_v340",
        "cnn_dailymail:3.4.0",
        _TRAIN_VALIDATION_TEST,
        TextToText("summarize:", (("", feature("article")),), feature("highlights")),
        None,
        (metrics.rouge,),
    ),
    TfdsTask(
        "squad_v110",
        "squad/v1.1:3.0.0",
        ("train", "validation"),
        TextToText(
            "",
            _fields("question", "context"),
            _first(feature("answers", "text")),
            keep=(("answers", feature("answers", "text")),),
        ),
        answers,
        (metrics.squad,),
    ),
    _translation("wmt14_ende", "wmt14_translate/de-en:1.0.0", "German", "de"),
    _translation("wmt14_enfr", "wmt14_translate/fr-en:1.0.0", "French", "fr"),
    _translation("wmt16_enro", "wmt16_translate/ro-en:1.0.0", "Romanian", "ro"),
)


def register_tfds_tasks(vocabulary: seqio.Vocabulary, prefix: str = "") -> list[str]:
    """Registers every ``TASKS`` row as ``prefix + name`` and returns those names, in table order.

    Names already registered are left as they are, so calling twice (e.g. from two entry points) is safe;
    the vocabulary of the first call wins. The prefix lets one process hold the tasks for two vocabularies.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]*", prefix):
        raise ValueError(f"task name prefix {prefix!r} may hold only letters, digits and underscores")
    features = {key: seqio.Feature(vocabulary, add_eos=True) for key in ("inputs", "targets")}
    names = []
    for task in TASKS:
        name = prefix + task.name
        if name not in seqio.TaskRegistry.names():
            seqio.TaskRegistry.add(
                name,
                source=seqio.TfdsDataSource(task.tfds_name, splits=task.splits),
                preprocessors=[
                    task.text_to_text.preprocess,
                    seqio.preprocessors.tokenize,
                    seqio.CacheDatasetPlaceholder(),
                    # After trimming to the feature length, so truncated examples still end in EOS.
                    seqio.preprocessors.append_eos_after_trim,
                ],
                output_features=features,
                postprocess_fn=task.postprocess_fn,
                metric_fns=list(task.metric_fns),
            )
        names.append(name)
    return names
