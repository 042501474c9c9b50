"""The T5 v1.1 encoder-decoder: shapes, masks (padding, packing, causality), sizes, HF parity."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from t5x_tl.models.attention import relative_position_buckets
from t5x_tl.models.sizes import T5_1_1_SIZES, padded_vocab_size, t5_config
from t5x_tl.models.t5 import EncoderDecoder

VOCAB = 128


@pytest.fixture(scope="module")
def model() -> EncoderDecoder:
    cfg = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=2, d_kv=16)
    return EncoderDecoder(cfg, rngs=nnx.Rngs(0))


def _tokens(rng, shape):
    return jnp.asarray(rng.integers(2, VOCAB, shape), jnp.int32)


def test_output_shape_and_dtype(model):
    rng = np.random.default_rng(0)
    logits = model(_tokens(rng, (3, 11)), _tokens(rng, (3, 5)))
    assert logits.shape == (3, 5, VOCAB) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()


def test_encoder_padding_is_ignored(model):
    rng = np.random.default_rng(1)
    enc, dec = _tokens(rng, (1, 8)), _tokens(rng, (1, 4))
    padded = jnp.concatenate([enc, jnp.zeros((1, 5), jnp.int32)], axis=1)
    np.testing.assert_allclose(model(enc, dec), model(padded, dec), atol=1e-5)


def test_decoder_is_causal(model):
    rng = np.random.default_rng(2)
    enc, dec = _tokens(rng, (1, 8)), _tokens(rng, (1, 6))
    changed = dec.at[0, 4].set((dec[0, 4] + 1) % VOCAB)
    a, b = np.asarray(model(enc, dec)), np.asarray(model(enc, changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-5)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_packed_examples_do_not_interact(model):
    rng = np.random.default_rng(3)
    enc_a, dec_a, enc_b, dec_b = _tokens(rng, (1, 5)), _tokens(rng, (1, 3)), _tokens(rng, (1, 6)), _tokens(rng, (1, 4))
    packed_enc = jnp.concatenate([enc_a, enc_b], axis=1)
    packed_dec = jnp.concatenate([dec_a, dec_b], axis=1)
    enc_segments = jnp.asarray([[1] * 5 + [2] * 6])
    dec_segments = jnp.asarray([[1] * 3 + [2] * 4])
    packed = np.asarray(model(packed_enc, packed_dec, enc_segments, dec_segments))
    # Relative positions are differences, so each segment sees the same geometry as on its own.
    np.testing.assert_allclose(packed[:, :3], model(enc_a, dec_a), atol=1e-5)
    np.testing.assert_allclose(packed[:, 3:], model(enc_b, dec_b), atol=1e-5)


def test_relative_position_buckets_match_t5_layout():
    rel = jnp.arange(-200, 201)
    bi = np.asarray(relative_position_buckets(rel, bidirectional=True, num_buckets=32, max_distance=128))
    assert bi.min() == 0 and bi.max() == 31
    assert bi[200] == 0 and bi[201] == 17 and bi[199] == 1  # 0, +1 (second half), -1
    assert bi[0] == 15 and bi[-1] == 31  # far distances share the last bucket of each half
    uni = np.asarray(relative_position_buckets(rel, bidirectional=False, num_buckets=32, max_distance=128))
    assert (uni[200:] == 0).all(), "the future is one bucket in causal attention"
    assert uni[199] == 1 and uni[0] == 31


def test_published_sizes():
    assert T5_1_1_SIZES["small"] == (512, 1024, 6, 64, 8)
    assert T5_1_1_SIZES["base"] == (768, 2048, 12, 64, 12)
    assert T5_1_1_SIZES["xxl"] == (4096, 10240, 64, 64, 24)
    assert padded_vocab_size(32100) == 32128
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        t5_config("huge", 100)


def test_bfloat16_parameters_and_activations_track_float32():
    cfg = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=2, d_kv=16)
    low = EncoderDecoder(dataclasses.replace(cfg, dtype="bfloat16", param_dtype="bfloat16"), rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(low, nnx.Param))
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    graphdef, _ = nnx.split(EncoderDecoder(cfg, rngs=nnx.Rngs(1)))
    high = nnx.merge(graphdef, jax.tree.map(lambda p: p.astype(jnp.float32), params))  # the same weights
    rng = np.random.default_rng(4)
    enc, dec = _tokens(rng, (2, 12)), _tokens(rng, (2, 6))
    low_logits, high_logits = np.asarray(low(enc, dec)), np.asarray(high(enc, dec))
    assert low_logits.dtype == np.float32
    assert np.abs(low_logits - high_logits).max() < 0.05 * np.abs(high_logits).max()
    assert (low_logits.argmax(-1) == high_logits.argmax(-1)).mean() > 0.9
