"""The unsupervised objectives of the T5 paper's objective study, as SeqIO preprocessors.

Each preprocessor takes tokenized ``targets`` documents, splits them into chunks of the objective's raw
length (documents are never mixed), skips chunks under two tokens (an empty document, a one-token tail: they
cannot hold both noise and non-noise) and turns each chunk into ``inputs``/``targets`` without EOS, for
``seqio.preprocessors.append_eos_after_trim`` to add. The raw length is the largest chunk whose inputs always
fit ``sequence_length["inputs"]`` with EOS, and ``objective_lengths`` gives the targets length that always
fits, so no token is lost to truncation. Bad parameters, lengths that cannot fit, or too few sentinels raise
a ValueError naming the parameter when the preprocessor is built, before any data is read.

Randomness is stateless and seeded by SeqIO, so a task's dataset is a function of its seed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
import types
from collections.abc import Callable, Mapping
from typing import NamedTuple

import seqio
import tensorflow as tf

from t5x_tl.data.objectives.encoders import (
    bert_replace_noise,
    drop_noise,
    mask_token_id,
    noise_spans_after_sentinels,
    ordinary_token_range,
    permute,
    replace_noise,
    sentinel_per_noise_span,
)
from t5x_tl.data.objectives.noise import (
    iid_noise_mask,
    num_noise_spans,
    num_noise_tokens,
    random_spans_noise_mask,
    random_split_point,
)

NOISE_DENSITIES = (0.10, 0.15, 0.25, 0.50)
MEAN_NOISE_SPAN_LENGTHS = (2.0, 3.0, 5.0, 10.0)

_MOST_CHUNK_TOKENS = 2**31 - 1  # TensorFlow sizes are int32

Preprocessor = Callable[..., tf.data.Dataset]
# (chunk tokens, two seeds) -> (inputs, targets)
Corrupt = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def split_into_chunks(dataset: tf.data.Dataset, chunk_length: int, key: str = "targets") -> tf.data.Dataset:
    """Splits each tokenized document into consecutive chunks of at most ``chunk_length`` tokens.

    Documents are not concatenated, so no chunk mixes two documents; the feature converter's packing fills
    the short tail chunks.
    """

    def split(example: dict) -> tf.data.Dataset:
        tokens = example[key]
        count = tf.size(tokens, out_type=tf.int32)
        starts = tf.range(0, count, chunk_length)
        lengths = tf.minimum(chunk_length, count - starts)
        return tf.data.Dataset.from_tensor_slices({key: tf.RaggedTensor.from_row_lengths(tokens, lengths)})

    return dataset.flat_map(split)


def _corrupt_chunks(
    name: str,
    params: Mapping[str, float],
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int] | None,
    output_features: Mapping[str, seqio.Feature],
    corrupt: Corrupt,
) -> tf.data.Dataset:
    """Checks that the objective fits, then chunks the documents and corrupts each chunk of two tokens or more."""
    raw_length = _checked_raw_length(name, params, sequence_length, output_features["targets"].vocabulary)

    @seqio.map_over_dataset(num_seeds=2)
    def apply(example: dict, seeds: tf.Tensor) -> dict:
        inputs, targets = corrupt(example["targets"], seeds)
        return {"inputs": inputs, "targets": targets}

    chunks = split_into_chunks(dataset, raw_length)
    return apply(chunks.filter(lambda example: tf.size(example["targets"]) >= 2))


def prefix_lm(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
) -> tf.data.Dataset:
    """Prefix language modelling: inputs a chunk's prefix, targets the rest.

    The split point is uniform over [1, n-1], so both sides are non-empty (T5's rule). The inputs hold at
    most n-1 tokens, so chunks are ``inputs_length`` long and the targets need ``inputs_length`` with EOS.
    """

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        split = random_split_point(tf.size(tokens), seeds[0])
        return tokens[:split], tokens[split:]

    return _corrupt_chunks("prefix_lm", {}, dataset, sequence_length, output_features, corrupt)


def bert_style(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = 0.15,
) -> tf.data.Dataset:
    """BERT-style, in T5's version: i.i.d. noise; 90% of noise tokens become the mask token ``<extra_id_0>``,
    10% a random ordinary token (never a special id or sentinel); the targets are the whole chunk.
    """
    vocabulary = output_features["targets"].vocabulary
    mask_id, random_ids = mask_token_id(vocabulary), ordinary_token_range(vocabulary)

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = iid_noise_mask(tf.size(tokens), noise_density, seeds[0])
        return bert_replace_noise(tokens, mask, seeds[1], mask_id, random_ids), tokens

    params = {"noise_density": noise_density}
    return _corrupt_chunks("bert_style", params, dataset, sequence_length, output_features, corrupt)


def deshuffling(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
) -> tf.data.Dataset:
    """Deshuffling: inputs the chunk's tokens in a uniformly random order, targets the chunk."""

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return permute(tokens, seeds[0]), tokens

    return _corrupt_chunks("deshuffling", {}, dataset, sequence_length, output_features, corrupt)


def mass_style(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = 0.15,
) -> tf.data.Dataset:
    """MASS-style: i.i.d. noise, every noise token becomes the mask token ``<extra_id_0>``; targets the chunk."""
    vocabulary = output_features["targets"].vocabulary
    mask_id = mask_token_id(vocabulary)

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return replace_noise(tokens, iid_noise_mask(tf.size(tokens), noise_density, seeds[0]), mask_id), tokens

    params = {"noise_density": noise_density}
    return _corrupt_chunks("mass_style", params, dataset, sequence_length, output_features, corrupt)


def _encode_spans(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    return sentinel_per_noise_span(tokens, mask, vocab_size), noise_spans_after_sentinels(tokens, mask, vocab_size)


def iid_replace_spans(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = 0.15,
) -> tf.data.Dataset:
    """I.i.d. noise, replace spans: each run of noise tokens becomes one sentinel in the inputs; the targets
    are the runs, each led by its sentinel, with no trailing sentinel.

    The number of runs is random, so the lengths are sized for the worst case (runs as many as possible),
    which never truncates and needs that many sentinels: ``extra_ids`` bounds the inputs length.
    """
    vocab_size = output_features["targets"].vocabulary.vocab_size

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return _encode_spans(tokens, iid_noise_mask(tf.size(tokens), noise_density, seeds[0]), vocab_size)

    params = {"noise_density": noise_density}
    return _corrupt_chunks("iid_replace_spans", params, dataset, sequence_length, output_features, corrupt)


def iid_drop_tokens(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = 0.15,
) -> tf.data.Dataset:
    """I.i.d. noise, drop tokens: inputs the chunk without its noise tokens, targets the noise tokens."""

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = iid_noise_mask(tf.size(tokens), noise_density, seeds[0])
        return drop_noise(tokens, mask), drop_noise(tokens, ~mask)

    params = {"noise_density": noise_density}
    return _corrupt_chunks("iid_drop_tokens", params, dataset, sequence_length, output_features, corrupt)


def random_spans(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> tf.data.Dataset:
    """Random spans, T5's final objective: alternating non-noise/noise spans, encoded as in replace spans.

    The mask starts with non-noise and ends with noise, so, as in T5, the inputs end with a sentinel and the
    targets with a span. A chunk shorter than a span still gets one noise span of at least one token.
    """
    vocab_size = output_features["targets"].vocabulary.vocab_size

    def corrupt(tokens: tf.Tensor, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = random_spans_noise_mask(tf.size(tokens), noise_density, mean_noise_span_length, seeds[0])
        return _encode_spans(tokens, mask, vocab_size)

    params = {"noise_density": noise_density, "mean_noise_span_length": mean_noise_span_length}
    return _corrupt_chunks("random_spans", params, dataset, sequence_length, output_features, corrupt)


class ChunkLengths(NamedTuple):
    """The most tokens, EOS excluded, an objective's inputs and targets take for one chunk; sentinels used."""

    inputs: int
    targets: int
    sentinels: int


def _whole_chunk_and_mask_lengths(length: int, noise_density: float) -> ChunkLengths:
    return ChunkLengths(length, length, 1)  # the mask token is <extra_id_0>


def _iid_spans_lengths(length: int, noise_density: float) -> ChunkLengths:
    num_noise = num_noise_tokens(length, noise_density)
    most_runs = min(num_noise, length - num_noise + 1)  # runs need a non-noise token between them
    return ChunkLengths(length - num_noise + most_runs, num_noise + most_runs, most_runs)


def _iid_drop_lengths(length: int, noise_density: float) -> ChunkLengths:
    num_noise = num_noise_tokens(length, noise_density)
    return ChunkLengths(length - num_noise, num_noise, 0)


def _random_spans_lengths(length: int, noise_density: float, mean_noise_span_length: float) -> ChunkLengths:
    num_noise = num_noise_tokens(length, noise_density)
    num_spans = num_noise_spans(length, noise_density, mean_noise_span_length)
    return ChunkLengths(length - num_noise + num_spans, num_noise + num_spans, num_spans)


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """One objective of the study: its preprocessor, its length rule, its parameters and their ablated values.

    ``chunk_lengths(n, **params)`` must not decrease with ``n``: the raw length is searched for.
    """

    preprocessor: Preprocessor
    chunk_lengths: Callable[..., ChunkLengths]
    defaults: Mapping[str, float] = dataclasses.field(default_factory=dict)
    variants: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)


_DENSITY = types.MappingProxyType({"noise_density": 0.15})
_DENSITY_VARIANTS = types.MappingProxyType({"noise_density": NOISE_DENSITIES})
OBJECTIVES: Mapping[str, ObjectiveSpec] = types.MappingProxyType(
    {
        "prefix_lm": ObjectiveSpec(prefix_lm, lambda n: ChunkLengths(n - 1, n - 1, 0)),
        "bert_style": ObjectiveSpec(bert_style, _whole_chunk_and_mask_lengths, _DENSITY, _DENSITY_VARIANTS),
        "deshuffling": ObjectiveSpec(deshuffling, lambda n: ChunkLengths(n, n, 0)),
        "mass_style": ObjectiveSpec(mass_style, _whole_chunk_and_mask_lengths, _DENSITY, _DENSITY_VARIANTS),
        "iid_replace_spans": ObjectiveSpec(iid_replace_spans, _iid_spans_lengths, _DENSITY, _DENSITY_VARIANTS),
        "iid_drop_tokens": ObjectiveSpec(iid_drop_tokens, _iid_drop_lengths, _DENSITY, _DENSITY_VARIANTS),
        "random_spans": ObjectiveSpec(
            random_spans,
            _random_spans_lengths,
            {"noise_density": 0.15, "mean_noise_span_length": 3.0},
            {"noise_density": NOISE_DENSITIES, "mean_noise_span_length": MEAN_NOISE_SPAN_LENGTHS},
        ),
    }
)

_PARAMETER_RULES: Mapping[str, tuple[Callable[[float], bool], str]] = {
    "noise_density": (lambda value: 0 < value < 1, "must be a number strictly between 0 and 1"),
    "mean_noise_span_length": (
        lambda value: math.isfinite(value) and value >= 1,
        "must be a finite number of at least 1",
    ),
}


def _resolve(name: str, params: Mapping[str, float]) -> tuple[ObjectiveSpec, dict[str, float]]:
    """The objective's spec and its full, checked parameters (defaults filled in)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    spec = OBJECTIVES[name]
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise ValueError(f"unknown parameters {unknown} for objective {name!r}; it takes {sorted(spec.defaults)}")
    resolved = {**spec.defaults, **params}
    for key, value in resolved.items():
        accepts, rule = _PARAMETER_RULES[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not accepts(value):
            raise ValueError(f"{key}={value!r} {rule} (objective {name!r})")
    return spec, resolved


def _largest_chunk(fits: Callable[[int], bool]) -> int:
    """The largest chunk length ``n >= 2`` with ``fits(n)``, for ``fits`` true up to a point, then false."""
    low, high = 2, 4
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _positive_length(key: str, value: object, name: str) -> int:
    """``value`` as a feature length, or a ValueError naming it: lengths count tokens, so only positive integers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{key}={value!r} ({type(value).__name__}) is invalid for {name}: it must be a positive integer"
        )
    return int(value)


def _plan(name: str, params: Mapping[str, float], inputs_length: int) -> tuple[int, ChunkLengths]:
    """The raw chunk length for ``inputs_length`` and the most its corrupted chunks take."""
    spec, resolved = _resolve(name, params)
    inputs_length = _positive_length("inputs_length", inputs_length, name)

    def fits(length: int) -> bool:
        return spec.chunk_lengths(length, **resolved).inputs + 1 <= inputs_length

    if not fits(2):
        need = spec.chunk_lengths(2, **resolved).inputs + 1
        raise ValueError(f"inputs_length={inputs_length} is too short for {name}: a two-token chunk needs {need}")
    if fits(_MOST_CHUNK_TOKENS):
        raise ValueError(f"{name} with {resolved} drops so much that no chunk fills inputs_length={inputs_length}")
    raw_length = _largest_chunk(fits)
    return raw_length, spec.chunk_lengths(raw_length, **resolved)


def objective_lengths(name: str, params: Mapping[str, float], inputs_length: int) -> tuple[int, int]:
    """(raw chunk length, targets length with EOS) for an objective whose inputs are ``inputs_length`` long.

    The chunk is the largest whose inputs always fit with EOS; the targets length is the most its targets
    take with EOS. For random spans with inputs 512, density 0.15 and mean span 3 this is (568, 114), as in T5.
    """
    raw_length, most = _plan(name, params, inputs_length)
    return raw_length, most.targets + 1


def objective_sentinels(name: str, params: Mapping[str, float], inputs_length: int) -> int:
    """The most sentinels one example of the objective may use at ``inputs_length``: the vocabulary's
    ``extra_ids`` must be at least this (i.i.d. replace spans at 50% with inputs 512 needs 256)."""
    return _plan(name, params, inputs_length)[1].sentinels


def _checked_raw_length(
    name: str,
    params: Mapping[str, float],
    sequence_length: Mapping[str, int] | None,
    vocabulary: seqio.Vocabulary,
) -> int:
    """The raw chunk length, after checking that every example fits the feature lengths and the sentinels."""
    inputs_length = (sequence_length or {}).get("inputs")
    if inputs_length is None:
        raise ValueError(f"{name} needs sequence_length['inputs'] to size its chunks")
    inputs_length = _positive_length("sequence_length['inputs']", inputs_length, name)
    raw_length, most = _plan(name, params, inputs_length)
    targets_length = sequence_length.get("targets")
    if targets_length is not None:
        targets_length = _positive_length("sequence_length['targets']", targets_length, name)
    if targets_length is not None and targets_length < most.targets + 1:
        raise ValueError(
            f"sequence_length['targets']={targets_length} is too short for {name} with inputs {inputs_length}: "
            f"targets take up to {most.targets + 1} tokens with EOS (see objective_lengths)"
        )
    if most.sentinels > vocabulary.extra_ids:
        raise ValueError(
            f"sequence_length['inputs']={inputs_length} is too long for {name}: an example may need "
            f"{most.sentinels} sentinels but the vocabulary has extra_ids={vocabulary.extra_ids}; give the "
            f"vocabulary at least {most.sentinels} extra_ids or shorten the inputs"
        )
    return raw_length


def objective_preprocessor(name: str, **params: float) -> Preprocessor:
    """The objective's preprocessor with ``params`` bound, checked now rather than when a dataset is built."""
    spec, resolved = _resolve(name, params)
    return functools.partial(spec.preprocessor, **resolved)


def objective_variants() -> list[tuple[str, dict[str, float]]]:
    """Every objective with every combination of its ablated parameter values, as (name, full params)."""
    return [
        (name, {**spec.defaults, **dict(zip(spec.variants, values, strict=True))})
        for name, spec in OBJECTIVES.items()
        for values in itertools.product(*spec.variants.values())
    ]
