"""Every pretraining objective x variant as a SeqIO task, over any text source.

Sources: the built-in corpus, the user's own plain-text (one document per line) or JSONL (a ``text`` field
per line) files, and TFDS C4 (``c4/en:3.1.0``) for real pretraining on pods. Task names read
``<source>_<objective>[_d<density%>][_s<mean span>]``, e.g. ``builtin_random_spans_d15_s3``.
"""

from __future__ import annotations

import functools
import glob
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import seqio
import tensorflow as tf

from t5x_tl.data.objectives.concatenation import concatenate_documents
from t5x_tl.data.objectives.preprocessors import objective_preprocessor, objective_variants, split_into_chunks
from t5x_tl.data.tasks import builtin as tasks
from t5x_tl.data.tasks.builtin import BuiltinData

C4_TFDS_NAME = "c4/en:3.1.0"
DEFAULT_OBJECTIVE = "random_spans_d15_s3"  # T5's span corruption, the built-in corpus's default task
JSONL_TEXT_FIELD = "text"


def variant_name(objective: str, params: Mapping[str, float]) -> str:
    """The objective and its parameters in a SeqIO-safe name (no hyphens or dots): ``random_spans_d15_s3``."""
    parts = [objective]
    if "noise_density" in params:
        parts.append(f"d{round(params['noise_density'] * 100)}")
    if "mean_noise_span_length" in params:
        parts.append(f"s{params['mean_noise_span_length']:g}")
    return "_".join(parts)


def variant_task_name(source: str, objective: str, params: Mapping[str, float]) -> str:
    """The task of an objective variant over a source: ``<source>_<variant name>``."""
    return f"{source}_{variant_name(objective, params)}"


def variants_by_name() -> dict[str, tuple[str, dict[str, float]]]:
    """Every objective variant's name -> (objective, parameters), in the study's order."""
    return {variant_name(objective, params): (objective, params) for objective, params in objective_variants()}


def register_objective_tasks(
    source_name: str, source: seqio.DataSource, vocabulary: seqio.Vocabulary, *, concatenate: bool = False
) -> list[str]:
    """Registers every objective x variant over ``source`` (which yields a ``text`` feature); idempotent.

    ``concatenate``: T5's document concatenation before the objective (``objectives/concatenation.py``), as T5
    did on C4; otherwise every example comes from one document.
    """
    if not source_name.isidentifier():
        raise ValueError(f"source_name must be letters, digits and underscores, got {source_name!r}")
    features = {key: seqio.Feature(vocabulary, add_eos=True, required=False) for key in ("inputs", "targets")}
    before = [concatenate_documents] if concatenate else []
    names = []
    for objective, params in objective_variants():
        name = variant_task_name(source_name, objective, params)
        if name not in seqio.TaskRegistry.names():
            preprocessors = [
                functools.partial(seqio.preprocessors.rekey, key_map={"inputs": None, "targets": "text"}),
                seqio.preprocessors.tokenize,
                *before,
                objective_preprocessor(objective, **params),
                seqio.preprocessors.append_eos_after_trim,
            ]
            seqio.TaskRegistry.add(name, source=source, preprocessors=preprocessors, output_features=features)
        tasks.OBJECTIVE_OF_TASK[name] = (objective, params)
        names.append(name)
    return names


def causal_lm_chunks(
    dataset: tf.data.Dataset, sequence_length: Mapping[str, int], output_features: Mapping[str, seqio.Feature]
) -> tf.data.Dataset:
    """Causal language modelling (GPT-2's objective): every document cut into targets of ``targets_length - 1``
    tokens, room left for EOS; a decoder-only model reads them, and packing fills the short tail chunks."""
    del output_features
    length = (sequence_length or {}).get("targets")
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"causal_lm needs sequence_length['targets'] of at least 2, got {length!r}")
    return split_into_chunks(dataset, length - 1, "targets")


def register_causal_lm_task(
    source_name: str, source: seqio.DataSource, vocabulary: seqio.Vocabulary, *, concatenate: bool = False
) -> str:
    """Registers ``<source_name>_causal_lm`` (targets only, for decoder-only kinds); idempotent."""
    name = f"{source_name}_causal_lm"
    if name not in seqio.TaskRegistry.names():
        preprocessors = [
            functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
            seqio.preprocessors.tokenize,
            *([concatenate_documents] if concatenate else []),
            causal_lm_chunks,
            seqio.preprocessors.append_eos_after_trim,
        ]
        features = {"targets": seqio.Feature(vocabulary, add_eos=True)}
        seqio.TaskRegistry.add(name, source=source, preprocessors=preprocessors, output_features=features)
    return name


def c4_source() -> seqio.DataSource:
    """TFDS C4 English; on pods point TFDS at the prepared data (``TFDS_DATA_DIR`` or a GCS bucket)."""
    return seqio.TfdsDataSource(tfds_name=C4_TFDS_NAME)


def _jsonl_documents(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON ({error.msg})") from error
            text = record.get(JSONL_TEXT_FIELD) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise ValueError(f'{path}:{number} has no string "{JSONL_TEXT_FIELD}" field')
            yield text


def _text_documents(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as lines:  # bad bytes become U+FFFD, not a crash
        yield from (line.rstrip("\n") for line in lines if line.strip())


def read_documents(paths: Iterable[str]) -> Iterator[str]:
    """The documents of each file in turn: a ``text`` field per line of ``.jsonl`` files, a non-blank line of
    any other file. Bytes that are not UTF-8 become U+FFFD."""
    for path in paths:
        yield from (_jsonl_documents if str(path).endswith(".jsonl") else _text_documents)(str(path))


def matching_files(pattern: str) -> list[str]:
    """The files ``pattern`` (a glob, ``~`` expanded) matches, sorted; folders are left out."""
    return sorted(path for path in glob.glob(str(Path(pattern).expanduser())) if Path(path).is_file())


def local_text_source(split_to_pattern: Mapping[str, str]) -> seqio.DataSource:
    """The user's ``.txt`` (a document per line) or ``.jsonl`` files, one glob pattern per split.

    Files are read when the dataset is built; a pattern that matches nothing is an error naming it.
    """

    def dataset(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        del shuffle_files, seed  # documents are shuffled downstream by SeqIO
        paths = matching_files(split_to_pattern[split])
        if not paths:
            raise FileNotFoundError(f"no files match {split_to_pattern[split]!r} for split {split!r}")
        spec = {"text": tf.TensorSpec([], tf.string)}
        return tf.data.Dataset.from_generator(
            lambda: ({"text": text} for text in read_documents(paths)), output_signature=spec
        )

    return seqio.FunctionDataSource(dataset, splits=tuple(split_to_pattern))


def register_c4_tasks(vocabulary: seqio.Vocabulary) -> list[str]:
    """Every objective x variant over C4, tokenized with the caller's vocabulary (a SentencePiece model on pods),
    with T5's document concatenation."""
    return register_objective_tasks("c4", c4_source(), vocabulary, concatenate=True)


def builtin_source_name(data: BuiltinData) -> str:
    """The source part of the built-in corpus's task names: ``builtin`` for the default corpus."""
    return "builtin" if data == tasks.IMPORT_TIME_DATA else f"builtin_{data.fingerprint()}"


def register_builtin_tasks(data: BuiltinData | None = None) -> list[str]:
    """Every objective x variant over the built-in corpus, and its causal LM task ``builtin_causal_lm``
    (registered for the default corpus on import)."""
    data = data or tasks.IMPORT_TIME_DATA
    source, vocabulary = tasks.BuiltinCorpusSource(data), tasks.builtin_vocabulary(data)
    register_causal_lm_task(builtin_source_name(data), source, vocabulary)
    return register_objective_tasks(builtin_source_name(data), source, vocabulary)


register_builtin_tasks()
