"""Mixing rates: hand-computed rates and proportions per strategy, SeqIO parity, argument checks, and a real
mixture whose sampled proportions match its rates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import seqio
import tensorflow as tf

from t5x_tl.data.mixtures import examples_rate, num_examples, rate_function, register_mixture

VOCABULARY = seqio.PassThroughVocabulary(8)
FEATURES = {"targets": seqio.Feature(VOCABULARY, add_eos=False)}
COUNTS = {"small": 100, "medium": 1_000, "large": 100_000}


def _source(num_train_examples: int | None, token: int = 3, size: int = 8) -> seqio.FunctionDataSource:
    """``size`` one-token examples (``token``), claiming ``num_train_examples`` (None: unknown)."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensors({"targets": tf.constant([token], tf.int32)}).repeat(size)

    counts = None if num_train_examples is None else {"train": num_train_examples}
    return seqio.FunctionDataSource(dataset_fn, splits=["train"], num_input_examples=counts)


def _task(name: str, num_train_examples: int | None) -> seqio.Task:
    return seqio.Task(name, source=_source(num_train_examples), output_features=FEATURES)


TASKS = [_task(name, count) for name, count in COUNTS.items()]


def _proportions(rates: list[float]) -> list[float]:
    return [rate / sum(rates) for rate in rates]


@pytest.mark.parametrize(
    ("strategy", "cap", "temperature", "expected_rates"),
    [
        ("examples_proportional", None, 1.0, [100, 1_000, 100_000]),
        ("examples_proportional", 10_000, 1.0, [100, 1_000, 10_000]),
        ("temperature", 10_000, 1.0, [100, 1_000, 10_000]),  # T=1 is examples-proportional
        ("temperature", 10_000, 2.0, [10, 31.6227766, 100]),  # sqrt(100), sqrt(1000), sqrt(10000)
        ("temperature", None, 4.0, [3.16227766, 5.62341325, 17.7827941]),  # fourth roots
        ("equal", None, 1.0, [1, 1, 1]),
    ],
)
def test_rates_match_hand_computed_values(strategy, cap, temperature, expected_rates):
    rate = rate_function(strategy, cap=cap, temperature=temperature)
    assert [rate(task) for task in TASKS] == pytest.approx(expected_rates, rel=1e-8)


@pytest.mark.parametrize(
    ("strategy", "cap", "temperature", "expected"),
    [
        ("examples_proportional", None, 1.0, [100 / 101_100, 1_000 / 101_100, 100_000 / 101_100]),
        ("examples_proportional", 10_000, 1.0, [1 / 111, 10 / 111, 100 / 111]),
        ("temperature", 10_000, 2.0, [0.07061011, 0.22328878, 0.70610111]),  # rates / 141.6227766
        ("equal", None, 1.0, [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_normalised_proportions(strategy, cap, temperature, expected):
    rate = rate_function(strategy, cap=cap, temperature=temperature)
    assert _proportions([rate(task) for task in TASKS]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("cap", [None, 500, 10_000])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_rates_equal_seqio_mixing_rate_num_examples_for_uncached_tasks(cap, temperature, scale):
    ours = examples_rate(cap=cap, temperature=temperature, scale=scale)
    for task in TASKS:
        theirs = seqio.mixing_rate_num_examples(task, maximum=cap, temperature=temperature, scale=scale)
        assert ours(task) == pytest.approx(theirs, rel=1e-12)


def test_explicit_counts_take_precedence_over_the_source():
    unknown = _task("unknown_size", None)
    assert num_examples(TASKS[0], counts={"small": 7}) == 7
    assert num_examples(TASKS[0], counts={"other": 7}) == 100
    assert examples_rate(counts={"unknown_size": 400}, temperature=2.0)(unknown) == pytest.approx(20.0)
    with pytest.raises(ValueError, match=r"unknown_size.*counts"):
        num_examples(unknown)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"strategy": "proportional"}, "strategy"),
        ({"strategy": "examples_proportional", "cap": 0}, "cap"),
        ({"strategy": "examples_proportional", "cap": -5}, "cap"),
        ({"strategy": "examples_proportional", "cap": 2.5}, "cap"),
        ({"strategy": "examples_proportional", "cap": True}, "cap"),
        ({"strategy": "temperature", "temperature": 0.0}, "temperature"),
        ({"strategy": "temperature", "temperature": -1.0}, "temperature"),
        ({"strategy": "temperature", "temperature": math.inf}, "temperature"),
        ({"strategy": "temperature", "temperature": math.nan}, "temperature"),
        ({"strategy": "examples_proportional", "temperature": 2.0}, "temperature"),
        ({"strategy": "equal", "cap": 10}, "cap"),
        ({"strategy": "equal", "temperature": 2.0}, "temperature"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter_and_register_nothing(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        register_mixture("mix_test_bad", ["never_looked_up"], **kwargs)
    assert "mix_test_bad" not in seqio.MixtureRegistry.names()


@pytest.fixture
def registered():
    """Two small registered tasks (sources of 8 examples, claiming 100 and 900); removed with their mixtures."""
    seqio.TaskRegistry.add("mix_test_small", source=_source(100, token=3), output_features=FEATURES)
    seqio.TaskRegistry.add("mix_test_large", source=_source(900, token=4), output_features=FEATURES)
    yield ["mix_test_small", "mix_test_large"]
    for name in ("mix_test_mixture", "mix_test_unknown"):
        seqio.MixtureRegistry.remove(name)
    for name in ("mix_test_small", "mix_test_large", "mix_test_unsized"):
        seqio.TaskRegistry.remove(name)


def test_sampled_proportions_match_the_rates(registered):
    # cap 400, T=2: rates sqrt(100) = 10 and sqrt(min(900, 400)) = 20, so the small task is drawn 1/3 of the time
    # (examples-proportional would give 0.1, capped 0.2, uncapped temperature 0.25, equal 0.5).
    mixture = register_mixture("mix_test_mixture", registered, strategy="temperature", cap=400, temperature=2.0)
    assert seqio.get_mixture_or_task("mix_test_mixture") is mixture
    draws = 6_000  # far more than the 16 source examples: num_epochs=None repeats every task
    dataset = mixture.get_dataset(sequence_length={"targets": 1}, split="train", shuffle=False, seed=0)
    tokens = np.array([example["targets"][0] for example in dataset.take(draws).as_numpy_iterator()])
    assert len(tokens) == draws
    expected = 1 / 3
    tolerance = 5 * math.sqrt(expected * (1 - expected) / draws)
    assert abs(np.mean(tokens == 3) - expected) < tolerance
    assert set(np.unique(tokens)) == {3, 4}


def test_a_task_of_unknown_size_fails_at_registration_and_registers_nothing(registered):
    seqio.TaskRegistry.add("mix_test_unsized", source=_source(None), output_features=FEATURES)
    with pytest.raises(ValueError, match="mix_test_unsized"):
        register_mixture("mix_test_unknown", [*registered, "mix_test_unsized"])
    assert "mix_test_unknown" not in seqio.MixtureRegistry.names()
    mixture = register_mixture("mix_test_unknown", [*registered, "mix_test_unsized"], counts={"mix_test_unsized": 1})
    assert [mixture.get_rate(task) for task in mixture.tasks] == [900.0, 100.0, 1.0]  # tasks sorted by name
