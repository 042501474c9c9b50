"""Users' long documents from JSONL: read as a SeqIO task an RMT job trains on; every malformed file is one
error naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import seqio

from t5x_tl.config import load_config_file
from t5x_tl.data.memory.long_documents import read_documents, register_jsonl_documents
from t5x_tl.data.tasks.builtin import builtin_vocabulary
from t5x_tl.errors import UserError
from t5x_tl.train.loop import train

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "rmt_memorize.py"
DOCUMENT = "Oford is a town. " * 30


def _write(directory: Path, lines_by_split: dict[str, list[str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, lines in lines_by_split.items():
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return directory


def _folder(tmp_path: Path) -> Path:
    record = lambda i: json.dumps({"text": f"{DOCUMENT} Number {i}.", "label": "yes" if i % 2 else "no"})
    return _write(tmp_path / "docs", {s: [record(i) for i in range(6)] for s in ("train", "validation", "test")})


def test_documents_become_a_task_an_rmt_job_trains_on(tmp_path, small_data):
    name = register_jsonl_documents("user_long_documents_test", _folder(tmp_path), builtin_vocabulary(small_data))
    task = seqio.get_mixture_or_task(name)
    first = next(task.get_dataset({"inputs": 128, "targets": 4}, split="validation", shuffle=False).as_numpy_iterator())
    assert len(first["inputs"]) == 128 and first["inputs"][-1] == 1  # a long text truncated at the end, EOS kept
    assert task.output_features["targets"].vocabulary.decode(first["targets"].tolist()) == "no"
    cfg = load_config_file(CONFIG)
    cfg.data.task, cfg.data.task_modules, cfg.data.targets_length, cfg.data.batch_size = name, (), 4, 4
    cfg.train.update(dict(steps=2, eval_every=2, eval_batches=1, log_every=1))
    assert train(cfg, tmp_path / "run").step == 2


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], r"train.jsonl:1 is not JSON"),
        ([json.dumps({"text": "a"}), json.dumps({"label": "x"})], r"train.jsonl:1 needs a string field 'label'"),
        ([json.dumps({"text": "a", "label": 3})], r"train.jsonl:1 needs a string field 'label'"),
        ([json.dumps({"text": "ok", "label": "x"}), json.dumps({"text": "  ", "label": "x"})], r"train.jsonl:2 has an"),
        (["", "  "], "holds no documents"),
        (["[1, 2]"], r"train.jsonl:1 needs a string field 'text'"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, lines, message):
    folder = _write(tmp_path, {"train": lines})
    with pytest.raises(UserError, match=message):
        read_documents(folder / "train.jsonl")


def test_a_missing_split_says_what_the_folder_needs(tmp_path):
    with pytest.raises(UserError, match=r"validation.jsonl does not exist: give a folder with train.jsonl"):
        read_documents(tmp_path / "validation.jsonl")
