"""The seven objectives: length rules, lossless outputs within their lengths, variants, parameter errors,
seeding, and each objective run through a real SeqIO task."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import seqio
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from t5x_tl.data.objectives.noise import num_noise_spans, num_noise_tokens
from t5x_tl.data.objectives.preprocessors import (
    MEAN_NOISE_SPAN_LENGTHS,
    NOISE_DENSITIES,
    OBJECTIVES,
    objective_lengths,
    objective_preprocessor,
    objective_variants,
    random_spans,
)
from t5x_tl.data.tasks import builtin as tasks

VOCAB = seqio.ByteVocabulary(extra_ids=100)  # pad 0, eos 1, unk 2, ordinary 3..258, sentinels 259..358
FEATURES = {key: seqio.Feature(VOCAB) for key in ("inputs", "targets")}
# Lengths are exactly the rule's for these; for the others the rule is an upper bound.
EXACT_LENGTHS = {"bert_style", "deshuffling", "mass_style", "iid_drop_tokens", "random_spans"}
IID_OBJECTIVES = ("bert_style", "mass_style", "iid_replace_spans", "iid_drop_tokens")


def _chunks(documents: list[list[int]], raw_length: int) -> list[list[int]]:
    """The chunks an objective corrupts: documents cut into raw-length pieces, pieces under two tokens skipped."""
    pieces = [doc[start : start + raw_length] for doc in documents for start in range(0, len(doc), raw_length)]
    return [piece for piece in pieces if len(piece) >= 2]


def _corrupt(
    name: str, params: dict, documents: list[list[int]], inputs_length: int, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """(inputs, targets) of the objective over tokenized ``documents``, outside any task."""
    _, targets_length = objective_lengths(name, params, inputs_length)
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"targets": np.array(doc, np.int32)} for doc in documents),
        output_signature={"targets": tf.TensorSpec([None], tf.int32)},
    )
    preprocessor = objective_preprocessor(name, **params)
    with seqio.map_seed_manager(seed):
        dataset = preprocessor(dataset, {"inputs": inputs_length, "targets": targets_length}, FEATURES)
    return [(ex["inputs"].tolist(), ex["targets"].tolist()) for ex in dataset.as_numpy_iterator()]


def _is_sentinel(token: int, vocabulary: seqio.Vocabulary) -> bool:
    return token >= vocabulary.vocab_size - vocabulary.extra_ids


def _reassemble_spans(inputs: list[int], targets: list[int], vocabulary: seqio.Vocabulary) -> list[int]:
    """The chunk behind span-objective outputs, after checking that both number the spans <extra_id_0>, 1, ...
    in order and that the targets start with a sentinel and do not end with one."""
    sentinels = [token for token in inputs if _is_sentinel(token, vocabulary)]
    assert sentinels == list(range(vocabulary.vocab_size - 1, vocabulary.vocab_size - 1 - len(sentinels), -1))
    assert [token for token in targets if _is_sentinel(token, vocabulary)] == sentinels
    assert _is_sentinel(targets[0], vocabulary) and not _is_sentinel(targets[-1], vocabulary)
    spans: dict[int, list[int]] = {}
    for token in targets:
        if _is_sentinel(token, vocabulary):
            span = spans.setdefault(token, [])
        else:
            span.append(token)
    return [original for token in inputs for original in spans.get(token, [token])]


def _interleaves(first: list[int], second: list[int], whole: list[int]) -> bool:
    """Whether ``whole`` is ``first`` and ``second`` merged, each keeping its order."""
    reachable = {(0, 0)}
    for token in whole:
        reachable = {(i + 1, j) for i, j in reachable if i < len(first) and first[i] == token} | {
            (i, j + 1) for i, j in reachable if j < len(second) and second[j] == token
        }
    return (len(first), len(second)) in reachable


def _check_example(
    name: str, params: dict, chunk: list[int], inputs: list[int], targets: list[int], vocabulary: seqio.Vocabulary
) -> None:
    """Asserts that (inputs, targets) is what the objective makes of ``chunk``."""
    noise = num_noise_tokens(len(chunk), params.get("noise_density", 0.0))
    mask_id = vocabulary.vocab_size - 1
    if name == "prefix_lm":
        assert inputs and targets and inputs + targets == chunk
    elif name == "iid_drop_tokens":
        assert len(targets) == noise and _interleaves(inputs, targets, chunk)
    elif name in ("iid_replace_spans", "random_spans"):
        assert _reassemble_spans(inputs, targets, vocabulary) == chunk
        assert sum(not _is_sentinel(token, vocabulary) for token in targets) == noise
        if name == "random_spans":
            assert _is_sentinel(inputs[-1], vocabulary), "the mask ends with noise"
            spans = num_noise_spans(len(chunk), params["noise_density"], params["mean_noise_span_length"])
            assert sum(_is_sentinel(token, vocabulary) for token in inputs) == spans
    else:
        assert targets == chunk and len(inputs) == len(chunk)
        changed = [token for token, original in zip(inputs, chunk, strict=True) if token != original]
        if name == "deshuffling":
            assert sorted(inputs) == sorted(chunk)
        elif name == "mass_style":
            assert changed == [mask_id] * noise
        else:
            assert len(changed) <= noise and inputs.count(mask_id) <= noise
            low, high = 3, vocabulary.vocab_size - vocabulary.extra_ids
            assert all(token == mask_id or low <= token < high for token in changed)


@pytest.mark.parametrize(
    ("name", "params", "inputs_length", "expected"),
    [
        ("random_spans", {}, 512, (568, 114)),  # T5's numbers
        ("random_spans", {"noise_density": 0.5, "mean_noise_span_length": 10.0}, 512, (930, 512)),
        ("prefix_lm", {}, 512, (512, 512)),
        ("bert_style", {}, 512, (511, 512)),
        ("deshuffling", {}, 512, (511, 512)),
        ("mass_style", {"noise_density": 0.5}, 512, (511, 512)),
        ("iid_replace_spans", {}, 512, (511, 155)),
        ("iid_replace_spans", {"noise_density": 0.5}, 512, (511, 513)),
        ("iid_drop_tokens", {}, 512, (601, 91)),
        ("iid_drop_tokens", {"noise_density": 0.5}, 512, (1023, 513)),
    ],
)
def test_objective_lengths(name, params, inputs_length, expected):
    assert objective_lengths(name, params, inputs_length) == expected


@pytest.mark.parametrize(("name", "params"), objective_variants())
@pytest.mark.parametrize("inputs_length", [3, 64, 512])
def test_raw_length_is_the_largest_chunk_that_fits(name, params, inputs_length):
    raw, targets_length = objective_lengths(name, params, inputs_length)
    rule = functools.partial(OBJECTIVES[name].chunk_lengths, **params)
    assert rule(raw).inputs + 1 <= inputs_length < rule(raw + 1).inputs + 1
    assert targets_length == rule(raw).targets + 1


_PARAMETERS = {"noise_density": st.floats(0.01, 0.95), "mean_noise_span_length": st.floats(1, 10)}


@pytest.mark.parametrize("name", list(OBJECTIVES))
@settings(max_examples=12, deadline=None, database=None)
@given(data=st.data(), inputs_length=st.integers(3, 100), seed=st.integers(0, 2**16))
def test_outputs_are_the_objective_of_their_chunk_and_fit(name, data, inputs_length, seed):
    params = {key: data.draw(_PARAMETERS[key], label=key) for key in OBJECTIVES[name].defaults}
    raw, targets_length = objective_lengths(name, params, inputs_length)
    lengths = [raw + 1, *data.draw(st.lists(st.integers(0, 2 * raw + 1), max_size=3), label="lengths")]
    rng = np.random.default_rng(seed)
    documents = [rng.integers(3, 259, size=length).tolist() for length in lengths]
    chunks = _chunks(documents, raw)
    examples = _corrupt(name, params, documents, inputs_length, seed)
    assert len(examples) == len(chunks)
    for chunk, (inputs, targets) in zip(chunks, examples, strict=True):
        assert len(inputs) < inputs_length and len(targets) < targets_length
        _check_example(name, params, chunk, inputs, targets, VOCAB)
        if name in EXACT_LENGTHS:
            assert (len(inputs), len(targets)) == OBJECTIVES[name].chunk_lengths(len(chunk), **params)[:2]


def test_every_objective_and_variant_is_listed():
    variants = objective_variants()
    assert len(variants) == len({(name, tuple(sorted(params.items()))) for name, params in variants}) == 34
    assert ("prefix_lm", {}) in variants and ("deshuffling", {}) in variants
    for name in IID_OBJECTIVES:
        assert sorted(params["noise_density"] for n, params in variants if n == name) == list(NOISE_DENSITIES)
    spans = {(p["noise_density"], p["mean_noise_span_length"]) for n, p in variants if n == "random_spans"}
    assert spans == {(d, m) for d in NOISE_DENSITIES for m in MEAN_NOISE_SPAN_LENGTHS}
    assert {name for name, _ in variants} == set(OBJECTIVES)
    for name, params in variants:
        objective_preprocessor(name, **params)  # accepted as listed


def test_empty_and_one_token_documents_are_skipped():
    assert _corrupt("random_spans", {}, [[], [7], [8, 9]], 64) == [([8, 358], [358, 9])]


@pytest.mark.parametrize("name", (*IID_OBJECTIVES, "random_spans"))
@pytest.mark.parametrize("density", [0, 1, -0.1, 1.5, math.nan, "0.15", True])
def test_bad_noise_density_is_refused_when_built(name, density):
    with pytest.raises(ValueError, match="noise_density"):
        objective_preprocessor(name, noise_density=density)
    with pytest.raises(ValueError, match="noise_density"):
        objective_lengths(name, {"noise_density": density}, 512)
    with pytest.raises(ValueError, match="noise_density"):  # also when called directly, before reading data
        OBJECTIVES[name].preprocessor(tf.data.Dataset.range(0), {"inputs": 512}, FEATURES, noise_density=density)


@pytest.mark.parametrize("span", [0, 0.5, math.inf, math.nan])
def test_bad_mean_span_length_is_refused(span):
    with pytest.raises(ValueError, match="mean_noise_span_length"):
        objective_preprocessor("random_spans", mean_noise_span_length=span)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: objective_preprocessor("no_such_objective"), "unknown objective 'no_such_objective'"),
        (lambda: objective_preprocessor("prefix_lm", noise_density=0.15), r"unknown parameters \['noise_density'\]"),
        (lambda: objective_lengths("random_spans", {}, 2), "inputs_length=2 is too short"),
        (lambda: objective_lengths("prefix_lm", {}, 1), "inputs_length=1 is too short"),
        (lambda: objective_lengths("iid_drop_tokens", {"noise_density": 1 - 2**-53}, 512), "noise_density"),
        (lambda: random_spans(tf.data.Dataset.range(0), {"inputs": 64, "targets": 13}, FEATURES), r"\['targets'\]=13"),
        (lambda: random_spans(tf.data.Dataset.range(0), None, FEATURES), r"sequence_length\['inputs'\]"),
        (
            lambda: objective_preprocessor("iid_replace_spans", noise_density=0.5)(
                tf.data.Dataset.range(0), {"inputs": 512}, FEATURES
            ),
            r"may need 256 sentinels but the vocabulary has extra_ids=100",
        ),
        (
            lambda: objective_preprocessor("mass_style")(
                tf.data.Dataset.range(0), {"inputs": 64}, {"targets": seqio.Feature(seqio.ByteVocabulary(extra_ids=0))}
            ),
            "extra_ids",
        ),
    ],
    ids=[
        "name",
        "parameter",
        "inputs_spans",
        "inputs_prefix",
        "density_near_1",
        "targets",
        "no_lengths",
        "sentinels",
        "no_mask",
    ],
)
def test_impossible_settings_are_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("length", ["512", 512.5, 512.0, True, 0, -3])
@pytest.mark.parametrize("feature", ["inputs", "targets"])
def test_sequence_lengths_that_are_not_positive_integers_are_clear_errors(feature, length):
    lengths = {"inputs": 64, "targets": 64, feature: length}
    with pytest.raises(ValueError, match=rf"sequence_length\['{feature}'\]=.* must be a positive integer"):
        objective_preprocessor("random_spans")(tf.data.Dataset.range(0), lengths, FEATURES)
    if feature == "inputs":
        with pytest.raises(ValueError, match=r"inputs_length=.* must be a positive integer"):
            objective_lengths("iid_drop_tokens", {}, length)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_outputs_are_a_function_of_the_seed(name):
    documents = [list(range(3, 200))]
    first = _corrupt(name, {}, documents, 64, seed=1)
    assert first == _corrupt(name, {}, documents, 64, seed=1)
    assert first != _corrupt(name, {}, documents, 64, seed=2)


@contextlib.contextmanager
def _objective_task(name: str, data: tasks.BuiltinData) -> Iterator[seqio.Task]:
    """A SeqIO task running the objective over ``data``, registered for the duration of the block."""
    vocabulary = tasks.builtin_vocabulary(data)
    task_name = f"test_objectives_{name}_{data.fingerprint()}"
    task = seqio.TaskRegistry.add(
        task_name,
        source=tasks.BuiltinCorpusSource(data),
        preprocessors=[
            functools.partial(seqio.preprocessors.rekey, key_map={"inputs": None, "targets": "text"}),
            seqio.preprocessors.tokenize,
            objective_preprocessor(name),
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features={key: seqio.Feature(vocabulary, add_eos=True, required=False) for key in ("inputs", "targets")},
    )
    try:
        yield task
    finally:
        seqio.TaskRegistry.remove(task_name)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_through_a_seqio_task(name, small_data):
    inputs_length = 64
    raw, targets_length = objective_lengths(name, {}, inputs_length)
    with _objective_task(name, small_data) as task:
        dataset = task.get_dataset(
            {"inputs": inputs_length, "targets": targets_length}, split="validation", shuffle=False, seed=3
        )
        examples = list(dataset.take(20).as_numpy_iterator())
    vocabulary = task.output_features["targets"].vocabulary
    documents = [vocabulary.encode(text) for text in small_data.files().texts("validation")]
    assert len(examples) == 20
    for example, chunk in zip(examples, _chunks(documents, raw), strict=False):
        inputs, targets = example["inputs"].tolist(), example["targets"].tolist()
        assert len(inputs) <= inputs_length and len(targets) <= targets_length
        assert inputs[-1] == targets[-1] == vocabulary.eos_id
        assert vocabulary.eos_id not in inputs[:-1] + targets[:-1]
        _check_example(name, OBJECTIVES[name].defaults, chunk, inputs[:-1], targets[:-1], vocabulary)
