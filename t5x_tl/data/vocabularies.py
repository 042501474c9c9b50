"""Vocabularies: a T5-compatible SentencePiece model trained offline on the built-in corpus, or bytes.

The SentencePiece model follows T5's id layout (pad 0, eos 1, unk 2, no bos); SeqIO appends 100 sentinel
ids on top, ``<extra_id_0>`` being the last id.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

import sentencepiece

from t5x_tl.data.cache import atomic_directory
from t5x_tl.data.corpus.files import CorpusFiles

EXTRA_IDS = 100
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# SentencePiece skips sentences over 4,192 bytes; pieces of 1,000 characters (at most 4,000 bytes) are all read,
# so a text without sentence ends (one enormous line) still trains a vocabulary
MOST_CHARACTERS_PER_SENTENCE = 1000


def training_sentences(texts: Iterable[str], limit: int) -> list[str]:
    """The first ``limit`` non-blank sentences of ``texts``, long ones cut into pieces SentencePiece reads;
    ``texts`` is read only as far as needed."""
    step = MOST_CHARACTERS_PER_SENTENCE
    pieces = (
        sentence[start : start + step]
        for text in texts
        for sentence in _SENTENCE_END.split(text)
        if sentence.strip()
        for start in range(0, len(sentence), step)
    )
    return list(itertools.islice(pieces, limit))


def train_sentencepiece(texts: Iterable[str], vocab_size: int, seed_sentences: int = 200_000) -> bytes:
    """Trains a unigram SentencePiece model on ``texts`` and returns its serialized proto.

    One thread and a fixed sentence list make the result a function of the texts alone. Raises ValueError when
    ``texts`` hold no sentence.
    """
    sentences = training_sentences(texts, seed_sentences)
    if not sentences:
        raise ValueError("no text to train a SentencePiece vocabulary on (every document is empty)")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return model.getvalue()


def ensure_sentencepiece(corpus: CorpusFiles, vocab_size: int) -> Path:
    """Path of the SentencePiece model for this corpus and size, training it on first use."""
    directory = corpus.directory / f"spm_{vocab_size}"
    if not directory.is_dir():
        proto = train_sentencepiece(corpus.texts("train"), vocab_size)
        with atomic_directory(directory) as scratch:
            (scratch / "spm.model").write_bytes(proto)
    return directory / "spm.model"
