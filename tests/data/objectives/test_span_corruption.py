"""Span corruption under its historical names: T5's lengths, and the built-in task reassembling the original text."""

from __future__ import annotations

import pytest
import seqio

from t5x_tl.data.objectives.span_corruption import raw_length_for
from t5x_tl.data.tasks import builtin as tasks


@pytest.mark.parametrize(("inputs_length", "expected"), [(512, (568, 114)), (128, (141, 29)), (256, (284, 58))])
def test_raw_length_matches_t5(inputs_length, expected):
    assert raw_length_for(inputs_length, 0.15, 3.0) == expected


def _fill_sentinels(inputs: list[int], targets: list[int], vocab_size: int) -> list[int]:
    """Rebuilds the original tokens: each sentinel in the inputs is replaced by the span that follows it in targets."""
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token >= vocab_size - 100:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[token] if token >= vocab_size - 100 else [token])
    return out


def test_task_outputs_fit_lengths_and_decode_to_original(small_data):
    task = tasks.builtin_span_corruption_task(small_data)
    vocab = task.output_features["targets"].vocabulary
    raw, targets_length = raw_length_for(128, 0.15, 3.0)
    dataset = task.get_dataset({"inputs": 128, "targets": targets_length}, split="validation", shuffle=False, seed=3)
    documents = [vocab.encode(text) for text in small_data.files().texts("validation")]
    chunks = [doc[start : start + raw] for doc in documents for start in range(0, len(doc), raw)]
    chunks = [chunk for chunk in chunks if len(chunk) >= 2]  # shorter chunks are skipped
    examples = list(dataset.take(30).as_numpy_iterator())
    assert len(examples) == 30
    for example, chunk in zip(examples, chunks[:30], strict=True):
        inputs, targets = example["inputs"].tolist(), example["targets"].tolist()
        assert len(inputs) <= 128 and len(targets) <= targets_length
        assert inputs[-1] == vocab.eos_id and targets[-1] == vocab.eos_id
        original = _fill_sentinels(inputs[:-1], targets[:-1], vocab.vocab_size)
        assert original == chunk, "chunks follow the documents in order"
    assert vocab.decode(original)  # decodes to text


def test_task_is_deterministic_for_a_seed(small_data):
    task = tasks.builtin_span_corruption_task(small_data)
    lengths = {"inputs": 64, "targets": 16}

    def first(seed):
        ds = task.get_dataset(lengths, split="validation", shuffle=False, seed=seed)
        return [ex["inputs"].tolist() for ex in ds.take(5).as_numpy_iterator()]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_task_is_registered_on_import():
    assert tasks.DEFAULT_TASK in seqio.TaskRegistry.names()
