"""Pretraining on one's own text through the config: the task, its cached vocabulary, the derived targets length
for every objective, and the bad inputs a new user brings (no match, empty files, bad bytes, bad JSON, one
enormous line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import seqio

from t5x_tl.config import base_config
from t5x_tl.data.objectives.preprocessors import objective_lengths
from t5x_tl.data.tasks import text_files
from t5x_tl.data.tasks.pretraining import variants_by_name
from t5x_tl.errors import UserError
from t5x_tl.train.job import resolve_task

SENTENCES = [f"The {animal} number {i} walks to the {place}." for i in range(40)
             for animal, place in (("cat", "river"), ("owl", "market"))]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Train: a text file with bytes that are not UTF-8, an empty file and a JSONL file; validation: a text file."""
    folder = tmp_path_factory.mktemp("my_text")
    (folder / "train").mkdir()
    (folder / "train" / "a.txt").write_bytes("\n".join(SENTENCES[:60]).encode() + b"\nbroken \xff\xfe bytes\n\n")
    (folder / "train" / "empty.txt").write_bytes(b"")
    (folder / "train" / "b.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in SENTENCES[60:]) + "\n")
    (folder / "validation.txt").write_text("\n".join(SENTENCES[:10]) + "\n")
    return folder


def _config(corpus: Path, data_dir: Path, **data) -> object:
    cfg = base_config()
    cfg.data.text_files.train = str(corpus / "train" / "*")
    cfg.data.text_files.validation = str(corpus / "validation.txt")
    cfg.data.update({"cache_dir": str(data_dir), "sentencepiece_size": 128, "inputs_length": 32, **data})
    return cfg


@pytest.mark.parametrize(
    ("objective", "concatenate"),
    [("random_spans_d15_s3", False), ("prefix_lm", True), ("iid_replace_spans_d50", False), ("deshuffling", True)],
)
def test_every_objective_over_text_files_derives_its_targets_length(corpus, tmp_path, objective, concatenate):
    cfg = _config(corpus, tmp_path, objective=objective, concatenate_documents=concatenate)
    task, targets_length = resolve_task(cfg)
    name, params = variants_by_name()[objective]
    assert targets_length == objective_lengths(name, params, 32)[1]
    assert task.name.startswith("text_") and task.name.endswith(objective)
    lengths = {"inputs": 32, "targets": targets_length}
    examples = list(task.get_dataset(lengths, split="validation", shuffle=False, seed=0).as_numpy_iterator())
    vocabulary = task.output_features["targets"].vocabulary
    assert isinstance(vocabulary, seqio.SentencePieceVocabulary) and vocabulary.extra_ids >= 100
    assert all(len(e["inputs"]) <= 32 and e["targets"][-1] == 1 for e in examples)
    raw = objective_lengths(name, params, 32)[0]
    lines = [len(vocabulary.encode(line)) for line in SENTENCES[:10]]  # the validation file
    documents = [sum(lines)] if concatenate else lines
    assert len(examples) == sum(n // raw + (n % raw >= 2) for n in documents)  # a one-token tail is dropped


def test_the_vocabulary_is_trained_once_for_the_same_train_files(corpus, tmp_path, monkeypatch):
    resolve_task(_config(corpus, tmp_path))
    (scan,) = tmp_path.glob("text_files/*/scan.json")
    counts = json.loads(scan.read_text())
    assert sum(counts["train"].values()) == len(SENTENCES) + 1 and sorted(counts["train"].values())[0] == 0

    def train_again(*_: object) -> bytes:
        raise RuntimeError("trained again")

    monkeypatch.setattr(text_files, "train_sentencepiece", train_again)
    resolve_task(_config(corpus, tmp_path, objective="bert_style_d15"))  # the cached vocabulary
    other = tmp_path / "other.txt"
    other.write_text("\n".join(SENTENCES[:3]) + "\n")
    resolve_task(_config(corpus, tmp_path, text_files=dict(train=str(corpus / "train" / "*"), validation=str(other))))
    with pytest.raises(RuntimeError, match="trained again"):
        resolve_task(_config(corpus, tmp_path, text_files=dict(train=str(other), validation=str(other))))


def test_a_single_enormous_line_without_sentence_ends_trains_a_vocabulary(tmp_path):
    words = " ".join(f"word{i % 500}" for i in range(200_000))  # 1.7 MB, no punctuation
    (tmp_path / "huge.txt").write_text(words + "\n")
    cfg = base_config()
    cfg.data.text_files.update(train=str(tmp_path / "huge.txt"), validation=str(tmp_path / "huge.txt"))
    cfg.data.update({"cache_dir": str(tmp_path / "cache"), "sentencepiece_size": 600, "inputs_length": 64})
    task, targets_length = resolve_task(cfg)
    lengths = {"inputs": 64, "targets": targets_length}
    examples = task.get_dataset(lengths, split="train", shuffle=False, seed=0).take(50)
    assert len(list(examples.as_numpy_iterator())) == 50, "the one document is chunked, not dropped"


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        ({"train": "nothing_here_*.txt"}, {}, r"text_files: the train glob '.*nothing_here_\*\.txt' matches no file"),
        ({"validation": ""}, {}, r"the validation glob is empty: give one for each of \('train', 'validation'\)"),
        ({"train": "empty/*"}, {}, r"the files of the train glob '.*empty/\*' hold no document"),
        ({"train": "bad.jsonl"}, {}, r"bad\.jsonl:2 is not valid JSON"),
        ({}, {"objective": "span_magic"}, r"config\.data\.objective='span_magic' is unknown"),
        ({}, {"task": "builtin_prefix_lm"}, r"config\.data\.task and config\.data\.text_files both name"),
        ({}, {"targets_length": 3}, r"targets_length=3 is too short for text_\w+_random_spans_d15_s3"),
    ],
)
def test_bad_text_inputs_are_one_clear_error(corpus, tmp_path, files, data, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("\n  \n\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    cfg = _config(corpus, tmp_path / "cache", **data)
    cfg.data.text_files.update({split: str(tmp_path / glob) if glob else "" for split, glob in files.items()})
    with pytest.raises(UserError, match=message):
        resolve_task(cfg)


def test_objectives_over_the_builtin_corpus_derive_their_length_and_concatenation_needs_text_files(tmp_path):
    cfg = base_config()
    cfg.data.concatenate_documents = True
    with pytest.raises(UserError, match=r"concatenate_documents applies to config\.data\.text_files"):
        resolve_task(cfg)
    cfg = base_config()
    cfg.data.update(task="builtin_prefix_lm", task_modules=("t5x_tl.data.tasks.pretraining",), inputs_length=64)
    assert resolve_task(cfg)[1] == 64  # derived: the prefix LM's targets take up to 63 tokens and EOS
    cfg = base_config()
    cfg.model.kind = "prefix_lm"
    cfg.data.update(objective="deshuffling", inputs_length=64, cache_dir=str(tmp_path))
    task, targets_length = resolve_task(cfg)  # the objective over the built-in corpus, no task module needed
    assert task.name.startswith("builtin_") and task.name.endswith("_deshuffling") and targets_length == 64
