"""The pretraining task registry: every objective x variant over the built-in corpus, local files and C4."""

from __future__ import annotations

import json

import pytest
import seqio
import tensorflow_datasets as tfds

from t5x_tl.data.objectives.preprocessors import objective_lengths, objective_variants
from t5x_tl.data.tasks import pretraining as pretraining_tasks

LENGTHS = {"inputs": 64}


@pytest.fixture
def registered():
    """Collects task names a test registers and removes them afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        seqio.TaskRegistry.remove(name)


def _examples(task_name: str, objective: str, params: dict, count: int, **kwargs) -> list[dict]:
    _, targets = objective_lengths(objective, params, LENGTHS["inputs"])
    lengths = {**LENGTHS, "targets": targets}
    dataset = seqio.get_mixture_or_task(task_name).get_dataset(lengths, split="train", shuffle=False, seed=0, **kwargs)
    examples = list(dataset.take(count).as_numpy_iterator())
    for example in examples:
        assert 1 < len(example["inputs"]) <= lengths["inputs"] and example["inputs"][-1] == 1
        assert 1 < len(example["targets"]) <= targets and example["targets"][-1] == 1
    return examples


def test_every_objective_and_variant_is_registered_over_the_builtin_corpus(small_data, registered):
    names = pretraining_tasks.register_builtin_tasks(small_data)
    registered.extend(names)
    assert len(names) == len(set(names)) == len(objective_variants()) == 34
    expected = {
        pretraining_tasks.variant_task_name(names[0].rsplit("_prefix_lm")[0], o, p) for o, p in objective_variants()
    }
    assert set(names) == expected
    assert all("-" not in name and "." not in name for name in names)
    assert pretraining_tasks.register_builtin_tasks(small_data) == names  # idempotent
    assert "builtin_random_spans_d15_s3" in seqio.TaskRegistry.names()  # the default corpus, on import
    source = names[0].rsplit("_prefix_lm")[0]
    assert (
        len(
            _examples(
                f"{source}_random_spans_d50_s10",
                "random_spans",
                {"noise_density": 0.5, "mean_noise_span_length": 10.0},
                5,
            )
        )
        == 5
    )


def test_variant_names():
    name = pretraining_tasks.variant_task_name
    assert (
        name("c4", "random_spans", {"noise_density": 0.15, "mean_noise_span_length": 3.0}) == "c4_random_spans_d15_s3"
    )
    assert name("mine", "deshuffling", {}) == "mine_deshuffling"
    with pytest.raises(ValueError, match="source_name must be letters"):
        pretraining_tasks.register_objective_tasks("my-data", None, seqio.ByteVocabulary(extra_ids=100))


def test_local_text_and_jsonl_files_with_bad_bytes_and_a_huge_document(tmp_path, registered):
    huge = "lorem ipsum " * 300_000  # a 3.6 MB single document
    (tmp_path / "a.txt").write_bytes(b"first document \xff\xfe with broken bytes\n\n" + huge.encode() + b"\n")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": f"json document {i}"}) for i in range(3)) + "\n")
    vocab = seqio.ByteVocabulary(extra_ids=100)
    text_names = pretraining_tasks.register_objective_tasks(
        "localtxt", pretraining_tasks.local_text_source({"train": str(tmp_path / "*.txt")}), vocab
    )
    jsonl_names = pretraining_tasks.register_objective_tasks(
        "localjsonl", pretraining_tasks.local_text_source({"train": str(tmp_path / "*.jsonl")}), vocab
    )
    registered.extend(text_names + jsonl_names)
    params = {"noise_density": 0.15, "mean_noise_span_length": 3.0}
    first = _examples("localtxt_random_spans_d15_s3", "random_spans", params, 400)
    assert len(first) == 400, "the huge document is chunked, not dropped or truncated to one example"
    (chunk,) = _examples("localtxt_deshuffling", "deshuffling", {}, 1)
    assert vocab.decode(chunk["targets"].tolist()).startswith("first document \ufffd\ufffd with broken bytes")
    decoded = [vocab.decode(e["targets"].tolist()) for e in _examples("localjsonl_deshuffling", "deshuffling", {}, 3)]
    assert decoded == [f"json document {i}" for i in range(3)]


def test_local_file_errors_name_the_file_and_line(tmp_path, registered):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"title": "no text"}\n')
    vocab = seqio.ByteVocabulary(extra_ids=100)
    registered.extend(
        pretraining_tasks.register_objective_tasks(
            "badjsonl", pretraining_tasks.local_text_source({"train": str(tmp_path / "bad.jsonl")}), vocab
        )
    )
    registered.extend(
        pretraining_tasks.register_objective_tasks(
            "nofiles", pretraining_tasks.local_text_source({"train": str(tmp_path / "missing" / "*.txt")}), vocab
        )
    )
    with pytest.raises(Exception, match=r'bad\.jsonl:2 has no string "text" field'):
        _examples("badjsonl_deshuffling", "deshuffling", {}, 2)
    with pytest.raises(FileNotFoundError, match=r"no files match .*missing"):
        _examples("nofiles_deshuffling", "deshuffling", {}, 1)


def test_c4_tasks_under_tfds_mock_data_concatenate_documents_as_t5(registered):
    vocabulary = seqio.ByteVocabulary(extra_ids=100)
    registered.extend(pretraining_tasks.register_c4_tasks(vocabulary))
    params = {"noise_density": 0.15, "mean_noise_span_length": 3.0}
    with tfds.testing.mock_data(num_examples=4):
        texts = [e["text"] for e in tfds.as_numpy(tfds.load(pretraining_tasks.C4_TFDS_NAME, split="train"))]
        examples = _examples("c4_random_spans_d15_s3", "random_spans", params, 100, try_in_mem_cache=False)
    raw = objective_lengths("random_spans", params, LENGTHS["inputs"])[0]
    total = sum(len(vocabulary.encode(text.decode("utf-8"))) for text in texts)  # the 4 documents: one group
    assert len(texts) == 4 and len(examples) == total // raw + (total % raw >= 2)
