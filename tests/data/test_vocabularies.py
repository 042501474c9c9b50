"""The SentencePiece vocabulary: T5 id layout, sentinels, determinism, caching; the byte option."""

from __future__ import annotations

import seqio

from t5x_tl.data.tasks import builtin as tasks
from t5x_tl.data.vocabularies import ensure_sentencepiece, train_sentencepiece


def test_t5_id_layout_and_sentinels(small_data):
    vocab = tasks.builtin_vocabulary(small_data)
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    assert vocab.tokenizer.bos_id() == -1
    assert vocab.extra_ids == 100
    assert vocab.vocab_size == small_data.sentencepiece_size + 100  # SeqIO adds the sentinels to the model
    assert vocab.decode([vocab.vocab_size - 1]) == "<extra_id_0>"
    assert vocab.decode([vocab.vocab_size - 100]) == "<extra_id_99>"
    text = " ".join(small_data.files().texts("train")[0].split()[:60])  # SentencePiece folds whitespace runs
    assert vocab.decode(vocab.encode(text)) == text


def test_training_is_deterministic(small_data):
    texts = small_data.files().texts("train")
    assert train_sentencepiece(texts, 200) == train_sentencepiece(texts, 200)
    assert train_sentencepiece(texts, 200) != train_sentencepiece(texts, 300)


def test_model_is_cached(small_data):
    path = ensure_sentencepiece(small_data.files(), small_data.sentencepiece_size)
    before = path.stat().st_mtime_ns
    assert ensure_sentencepiece(small_data.files(), small_data.sentencepiece_size) == path
    assert path.stat().st_mtime_ns == before


def test_byte_vocabulary_option(data_dir):
    vocab = tasks.builtin_vocabulary(tasks.BuiltinData(data_dir=data_dir, vocabulary="byte"))
    assert isinstance(vocab, seqio.ByteVocabulary)
    assert vocab.vocab_size == 3 + 256 + 100
    assert vocab.decode(vocab.encode("Ada Lovelace")) == "Ada Lovelace"
