"""GPT-2 equals transformers' GPT2LMHeadModel / GPT2ForSequenceClassification on the same random weights: hidden
states, logits, loss and class scores, under padding, packing and at the last position; scan, loop and remat agree."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from gpt2_reference import SHAPES, assert_close, ours, padded_tokens, reference

from t5x_tl.models.gpt2.model import positions_of
from t5x_tl.train.losses import token_losses


@pytest.fixture(scope="module", params=sorted(SHAPES))
def pair(request) -> tuple[str, torch.nn.Module, nnx.Module]:
    lm = reference(request.param)
    return request.param, lm, ours(lm)


@nnx.jit
def _forward(model: nnx.Module, tokens: jax.Array, segments: jax.Array) -> tuple[jax.Array, jax.Array]:
    hidden = model.hidden_states(tokens, segments)
    return hidden, model.logits(hidden)


def _hf(model: torch.nn.Module, tokens: np.ndarray, mask: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask), output_hidden_states=True, **kwargs
        )
    return out.hidden_states[-1].numpy(), out.logits.numpy()


def test_hidden_states_and_logits_with_padding_up_to_the_last_position(pair):
    shape, reference_lm, model = pair
    width = SHAPES[shape]["n_positions"]  # every learned position, the last included
    tokens, segments = padded_tokens([width, width - 5, 3], width)
    hidden, logits = _forward(model, jnp.asarray(tokens), jnp.asarray(segments))
    expected_hidden, expected_logits = _hf(reference_lm, tokens, segments)
    real = segments.astype(bool)  # padding positions predict nothing
    assert_close(np.asarray(hidden)[real], expected_hidden[real])
    assert_close(np.asarray(logits)[real], expected_logits[real])


def test_packed_examples_equal_each_example_alone(pair):
    _, reference_lm, model = pair
    tokens, _ = padded_tokens([12], 12, seed=1)
    segments = np.array([[1] * 5 + [2] * 4 + [0] * 3])  # two examples, then padding
    _, logits = _forward(model, jnp.asarray(tokens), jnp.asarray(segments))
    for start, stop in ((0, 5), (5, 9)):
        alone = tokens[:, start:stop]
        _, expected = _hf(reference_lm, alone, np.ones_like(alone))
        assert_close(np.asarray(logits)[:, start:stop], expected)


def test_left_padding_with_generate_positions(pair):
    """Left-padded rows (as transformers generates) with its position ids: positions restart at each example."""
    _, reference_lm, model = pair
    tokens, segments = padded_tokens([10, 4, 7], 10, seed=2)
    tokens, segments = tokens[:, ::-1].copy(), segments[:, ::-1].copy()
    np.testing.assert_array_equal(np.asarray(positions_of(jnp.asarray(segments)))[segments > 0],
                                  np.clip(segments.cumsum(1) - 1, 0, None)[segments > 0])  # fmt: skip
    _, logits = _forward(model, jnp.asarray(tokens), jnp.asarray(segments))
    position_ids = torch.tensor(np.clip(segments.cumsum(1) - 1, 0, None))
    _, expected = _hf(reference_lm, tokens, segments, position_ids=position_ids)
    assert_close(np.asarray(logits)[segments > 0], expected[segments > 0])


def test_loss_equals_transformers(pair):
    _, reference_lm, model = pair
    tokens, segments = padded_tokens([11, 6, 9], 11, seed=3)
    labels = np.where(segments > 0, tokens, -100)
    with torch.no_grad():
        out = reference_lm(
            input_ids=torch.tensor(tokens), attention_mask=torch.tensor(segments), labels=torch.tensor(labels)
        )
    _, logits = _forward(model, jnp.asarray(tokens), jnp.asarray(segments))
    sums = token_losses(logits[:, :-1], jnp.asarray(tokens[:, 1:]), jnp.asarray(segments[:, 1:]), 0.0)
    loss = float(sums["cross_entropy_sum"] / sums["weight_sum"])
    assert loss == pytest.approx(float(out.loss), rel=1e-4)
    assert loss > 1.0  # a real loss of random weights, far from 0


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_classification_scores_the_last_real_token(shape):
    reference_classifier = reference(shape, classification=True, seed=4)
    model = ours(reference_classifier)
    tokens, segments = padded_tokens([9, 3, 6], 9, seed=4)
    tokens[2], segments[2] = tokens[2, ::-1], segments[2, ::-1]  # a left-padded row: transformers takes its last token
    position_ids = torch.tensor(np.clip(segments.cumsum(1) - 1, 0, None))
    with torch.no_grad():
        expected = reference_classifier(
            input_ids=torch.tensor(tokens), attention_mask=torch.tensor(segments), position_ids=position_ids
        ).logits.numpy()
    scores = nnx.jit(lambda m, t, s: m.classify(t, s))(model, jnp.asarray(tokens), jnp.asarray(segments))
    assert scores.shape == expected.shape == (3, 3)
    assert_close(np.asarray(scores), expected)


@nnx.jit
def _grads(model: nnx.Module, tokens: jax.Array, segments: jax.Array) -> tuple[jax.Array, dict]:
    def loss(m: nnx.Module) -> jax.Array:
        return jnp.mean(jax.nn.log_softmax(m(tokens, segments))[..., 5])

    value, grads = nnx.value_and_grad(loss)(model)
    return value, nnx.to_pure_dict(grads)


def test_scan_loop_and_remat_agree_in_logits_and_gradients():
    lm = reference("odd_heads")
    tokens, segments = (jnp.asarray(a) for a in padded_tokens([12, 7], 12, seed=5))
    base_loss, base_grads = _grads(ours(lm), tokens, segments)
    assert float(jnp.abs(base_grads["layers"]["stacked"]["attention"]["qkv_bias"]).max()) > 0
    for overrides in (dict(scan_layers=False), dict(remat_policy="full")):
        loss, grads = _grads(ours(lm, **overrides), tokens, segments)
        assert float(loss) == pytest.approx(float(base_loss), rel=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, base_grads)


def test_bfloat16_stays_close_to_float32():
    lm = reference("tied")
    tokens, segments = (jnp.asarray(a) for a in padded_tokens([20, 13], 20, seed=6))
    _, expected = _forward(ours(lm), tokens, segments)
    bf16 = ours(lm, dtype="bfloat16", param_dtype="bfloat16")
    assert bf16.layers.stacked.attention.qkv_kernel[...].dtype == jnp.bfloat16
    _, logits = _forward(bf16, tokens, segments)
    assert logits.dtype == jnp.float32
    error = np.abs(np.asarray(logits) - np.asarray(expected)).max() / np.abs(np.asarray(expected)).max()
    assert 0 < error < 0.05


def test_dropout_is_seeded():
    lm = reference("tied")
    model = ours(lm, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    tokens = jnp.asarray(padded_tokens([8], 8)[0])
    forward = nnx.jit(lambda m, t, rngs: m(t, deterministic=False, rngs=rngs))
    dropped = [np.asarray(forward(model, tokens, nnx.Rngs(dropout=k))) for k in (0, 0, 1)]
    np.testing.assert_array_equal(dropped[0], dropped[1])
    assert np.abs(dropped[0] - dropped[2]).max() > 1e-3
    assert np.abs(dropped[0] - np.asarray(model(tokens))).max() > 1e-3


def test_prefix_lm_inputs_and_overlong_rows_are_refused(pair):
    shape, _, model = pair
    tokens = jnp.ones((1, 4), jnp.int32)
    with pytest.raises(ValueError, match="not a prefix LM"):
        model(tokens, decoder_causal_attention=jnp.ones_like(tokens))
    too_long = SHAPES[shape]["n_positions"] + 1
    with pytest.raises(ValueError, match=f"{too_long} tokens per row; this GPT-2 has {too_long - 1} positions"):
        model(jnp.ones((1, too_long), jnp.int32))


def test_model_config_is_unchanged_by_execution_fields():
    cfg = ours(reference("tied")).config
    assert dataclasses.replace(cfg, scan_layers=False, remat_policy="full").to_hf() == cfg.to_hf()
