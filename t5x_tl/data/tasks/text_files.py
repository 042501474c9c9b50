"""Pretraining on one's own text: ``config.data.text_files`` names a glob per split; the files get a SentencePiece
vocabulary trained on their train split and every objective of ``t5x_tl.data.tasks.pretraining`` over them.

A ``.jsonl`` file holds a ``text`` field per line, any other file a document per non-blank line. The files are
read once when first seen (a changed size or modification time counts as new): every document is counted,
a bad JSON line is an error naming file and line, and the vocabulary is trained and cached under the data
directory, so later runs and the other hosts reuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import seqio

from t5x_tl.data.cache import atomic_directory
from t5x_tl.data.tasks.pretraining import local_text_source, matching_files, read_documents, register_objective_tasks
from t5x_tl.data.vocabularies import EXTRA_IDS, train_sentencepiece

SPLITS = ("train", "validation")
log = logging.getLogger("t5x_tl")


@dataclasses.dataclass(frozen=True)
class TextFiles:
    """The user's files (a glob per split) and how they are tokenized."""

    train: str
    validation: str
    data_dir: Path
    vocabulary: str = "sentencepiece"  # or "byte"
    sentencepiece_size: int = 1024
    extra_ids: int = EXTRA_IDS
    concatenate: bool = False  # T5's document concatenation before the objective

    def paths(self, split: str) -> list[str]:
        pattern = getattr(self, split)
        if not pattern:
            raise ValueError(f"the {split} glob is empty: give one for each of {SPLITS}")
        paths = matching_files(pattern)
        if not paths:
            raise ValueError(f"the {split} glob {pattern!r} matches no file")
        return paths

    def cache_directory(self, splits: tuple[str, ...] = SPLITS) -> Path:
        """Where what is learnt from ``splits`` is cached, named by their files' paths, sizes and times."""
        stamps = {split: [_stamp(path) for path in self.paths(split)] for split in splits}
        return self.data_dir / "text_files" / _digest(stamps)


def _stamp(path: str) -> tuple[str, int, int]:
    status = os.stat(path)
    return str(Path(path).resolve()), status.st_size, status.st_mtime_ns


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def _scan(files: TextFiles) -> dict[str, dict[str, int]]:
    """Documents per file of each split; raises ValueError for a split without any, or a bad JSON line."""
    counts = {}
    for split in SPLITS:
        counts[split] = {path: 0 for path in files.paths(split)}
        replaced = 0
        for path in counts[split]:
            for document in read_documents([path]):
                counts[split][path] += 1
                replaced += "\ufffd" in document
        if not any(counts[split].values()):
            raise ValueError(f"the files of the {split} glob {getattr(files, split)!r} hold no document")
        if replaced:
            log.warning("%d %s documents hold U+FFFD, which stands for bytes that are not UTF-8", replaced, split)
    return counts


def scanned_directory(files: TextFiles) -> Path:
    """The files' cache directory, reading every file once on first use (see the module docstring)."""
    directory = files.cache_directory()
    if not (directory / "scan.json").is_file():
        counts = _scan(files)
        with atomic_directory(directory) as scratch:
            (scratch / "scan.json").write_text(json.dumps(counts, indent=1))
    documents = json.loads((directory / "scan.json").read_text())
    summary = ", ".join(f"{split} {sum(documents[split].values())} documents in {len(documents[split])} files"
                        for split in SPLITS)  # fmt: skip
    log.info("Text files: %s (cached under %s)", summary, directory)
    return directory


def ensure_vocabulary(files: TextFiles) -> Path:
    """The SentencePiece model of the files' train split, trained on first use (and kept while they are the same)."""
    scanned_directory(files)
    model = files.cache_directory(("train",)) / f"spm_{files.sentencepiece_size}" / "spm.model"
    if not model.is_file():
        proto = train_sentencepiece(read_documents(files.paths("train")), files.sentencepiece_size)
        with atomic_directory(model.parent) as scratch:
            (scratch / "spm.model").write_bytes(proto)
    return model


def register_text_file_tasks(files: TextFiles) -> str:
    """Registers every objective over the files and returns their source name (tasks: ``<source>_<variant>``)."""
    if files.vocabulary == "byte":
        scanned_directory(files)
        vocabulary: seqio.Vocabulary = seqio.ByteVocabulary(extra_ids=files.extra_ids)
    else:
        vocabulary = seqio.SentencePieceVocabulary(str(ensure_vocabulary(files)), extra_ids=files.extra_ids)
    settings = dataclasses.asdict(files) | {"train": None, "validation": None, "data_dir": None}
    name = f"text_{_digest([files.cache_directory().name, settings])}"
    source = local_text_source({split: getattr(files, split) for split in SPLITS})
    register_objective_tasks(name, source, vocabulary, concatenate=files.concatenate)
    return name
