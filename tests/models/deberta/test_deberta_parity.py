"""DeBERTa-v2/v3 numerically equal to transformers' on the same random weights: every hidden state and the logits
of both heads, for v3-like (shared keys, log buckets, normalised relative table), v2-like (own position
projections, clipped distances, absolute positions, token types, 3 heads) and c2p-only shapes with a narrower
embedding; padded rows of mixed lengths that reach the last position, packed examples, the log buckets themselves,
and every execution setting (scan, loop, remat, bfloat16, dropout)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from deberta_reference import (
    HEADS,
    SHAPES,
    assert_close,
    build,
    our_outputs,
    ours_from,
    padded_inputs,
    random_reference,
    reference_outputs,
)
from flax import nnx
from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

from t5x_tl.models.deberta.layers import log_bucket_positions

CASES = [(shape, head) for shape in SHAPES for head in HEADS]


@pytest.fixture(scope="module")
def references() -> dict:
    return {case: random_reference(*case) for case in CASES}


@pytest.mark.parametrize(("shape", "head"), CASES)
def test_hidden_states_and_logits_equal_transformers(references, shape, head):
    reference = references[shape, head]
    inputs = padded_inputs(shape)
    hidden, logits = our_outputs(ours_from(reference, head), *inputs)
    expected_hidden, expected_logits = reference_outputs(reference, *inputs)
    assert hidden.shape == expected_hidden.shape == (3, 3, SHAPES[shape]["length"], SHAPES[shape]["hidden_size"])
    for layer, expected in enumerate(expected_hidden):  # the embeddings, then each layer's output
        print(f"{shape} {head} hidden {layer}: {assert_close(hidden[layer], expected):.2e}")
    print(f"{shape} {head} logits: {assert_close(logits, expected_logits):.2e}")


def test_the_lm_predictions_head_equals_transformers():
    """transformers' non-legacy masked-LM head (``legacy: false``): ``lm_predictions.lm_head``."""
    reference = random_reference("v3_like", "masked_lm", legacy=False)
    assert "lm_predictions.lm_head.dense.weight" in reference.state_dict()
    inputs = padded_inputs("v3_like")
    _, logits = our_outputs(ours_from(reference, "masked_lm"), *inputs)
    print(f"lm_predictions logits: {assert_close(logits, reference_outputs(reference, *inputs)[1]):.2e}")


def test_without_relative_attention_the_scale_still_counts_the_position_terms():
    """transformers scales by sqrt(3 d) for ``pos_att_type: p2c|c2p`` even when relative_attention is off."""
    reference = random_reference("v2_like", "masked_lm", relative_attention=False)
    model = ours_from(reference, "masked_lm")
    assert not hasattr(model, "relative") and model.layers.stacked.attention.scale == pytest.approx((3 * 16) ** -0.5)
    inputs = padded_inputs("v2_like")
    error = assert_close(our_outputs(model, *inputs)[1], reference_outputs(reference, *inputs)[1])
    print(f"no relative attention logits: {error:.2e}")


def test_segment_ids_default_to_the_pad_id(references):
    reference = references["v2_like", "masked_lm"]
    model = ours_from(reference, "masked_lm")
    tokens, segments, types = padded_inputs("v2_like")
    np.testing.assert_array_equal(
        our_outputs(model, tokens, None, types)[1], our_outputs(model, tokens, segments, types)[1]
    )


@pytest.mark.parametrize("shape", ["v2_like", "v3_like"])
def test_packed_examples_equal_each_example_alone(references, shape):
    """Two examples in one row (segment ids 1 and 2, then padding) give each example's logits in transformers, alone:
    attention stays within an example, absolute positions restart, relative ones are per pair of tokens."""
    reference = references[shape, "masked_lm"]
    rng = np.random.default_rng(1)
    first, second = rng.integers(3, 100, 7), rng.integers(3, 100, 9)
    length = SHAPES[shape]["length"]
    tokens = np.zeros((1, length), np.int64)
    tokens[0, :7], tokens[0, 7:16] = first, second
    segments = np.zeros_like(tokens)
    segments[0, :7], segments[0, 7:16] = 1, 2
    _, logits = our_outputs(ours_from(reference, "masked_lm"), tokens, segments, np.zeros_like(tokens))
    for example, span in ((first, slice(0, 7)), (second, slice(7, 16))):
        alone = example[None]
        _, expected = reference_outputs(reference, alone, np.ones_like(alone), np.zeros_like(alone))
        assert_close(logits[:, span], expected)


@pytest.mark.parametrize(("buckets", "max_position"), [(256, 512), (8, 24), (32, 64), (6, 100)])
def test_log_buckets_equal_transformers(buckets, max_position):
    relative = np.arange(-3 * max_position, 3 * max_position + 1)
    expected = make_log_bucket_position(torch.tensor(relative), buckets, max_position).numpy()
    ours = log_bucket_positions(relative, buckets, max_position)
    np.testing.assert_array_equal(ours, expected)
    assert len(np.unique(ours)) > buckets  # both the exact and the log-spaced ranges are exercised


@pytest.fixture(scope="module")
def v3_model(references) -> nnx.Module:
    return ours_from(references["v3_like", "masked_lm"], "masked_lm")


def _logits(model: nnx.Module) -> np.ndarray:
    return np.asarray(our_outputs(model, *padded_inputs("v3_like"))[1])


def _rebuilt(model: nnx.Module, **changes: object) -> nnx.Module:
    cfg = dataclasses.replace(model.config, **changes)
    return build(cfg, nnx.to_pure_dict(nnx.state(model, nnx.Param)), "masked_lm")


@pytest.mark.parametrize("changes", [dict(scan_layers=False), dict(remat_policy="full"), dict(remat_policy="dots")])
def test_execution_settings_change_no_number(v3_model, changes):
    np.testing.assert_allclose(_logits(_rebuilt(v3_model, **changes)), _logits(v3_model), rtol=1e-5, atol=1e-5)


def test_bfloat16_runs_close_to_float32(v3_model):
    expected = _logits(v3_model)
    actual = _logits(_rebuilt(v3_model, dtype="bfloat16", param_dtype="bfloat16"))
    assert actual.dtype == np.float32
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    print(f"bfloat16 logits: {error:.2e}")
    assert error < 0.05


def test_dropout_draws_from_the_key_and_gradients_are_finite(v3_model):
    model = _rebuilt(v3_model, hidden_dropout=0.1, attention_dropout=0.1)
    tokens, segments, _ = (jnp.asarray(x) for x in padded_inputs("v3_like"))

    def loss(m: nnx.Module, seed: jax.Array) -> jax.Array:
        return jnp.mean(m(tokens, segments, deterministic=False, rngs=nnx.Rngs(dropout=seed)) ** 2)

    value_and_grad = nnx.jit(nnx.value_and_grad(loss))
    value, grads = value_and_grad(model, jax.random.key(0))
    assert float(value) != float(value_and_grad(model, jax.random.key(1))[0])
    assert float(value_and_grad(model, jax.random.key(0))[0]) == float(value)
    np.testing.assert_array_equal(_logits(model), _logits(v3_model))  # deterministic: no dropout
    grads = nnx.to_pure_dict(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert np.abs(np.asarray(grads["relative"]["table"])).max() > 0  # the relative table is learned
