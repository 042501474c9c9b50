"""Decoder-only models: causal and prefix-LM masks, packing, cached decoding with mixed prompt lengths, scoring."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from t5x_tl.models import decoding
from t5x_tl.models.decoder_only import DecoderOnly, left_aligned_with_start
from t5x_tl.models.sizes import t5_config

VOCAB = 64
CFG = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=8, num_decoder_layers=3)


@pytest.fixture(scope="module", params=[False, True], ids=["causal", "prefix_lm"])
def model(request) -> DecoderOnly:
    return DecoderOnly(CFG, prefix_lm=request.param, rngs=nnx.Rngs(0))


def _tokens(seed, shape) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).integers(2, VOCAB, shape), jnp.int32)


def _prompts() -> jnp.ndarray:
    prompts = np.array(_tokens(0, (3, 9)))
    prompts[1, 6:] = 0
    prompts[2, 3:] = 0
    return jnp.asarray(prompts)


def test_causal_model_never_looks_ahead():
    causal = DecoderOnly(CFG, rngs=nnx.Rngs(0))
    tokens = _tokens(1, (2, 10))
    changed = tokens.at[:, 6].set(tokens[:, 6] % (VOCAB - 2) + 2)
    a, b = np.asarray(causal(tokens)), np.asarray(causal(changed))
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-5)
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-3
    with pytest.raises(ValueError, match="prefix_lm=True"):
        causal(tokens, None, jnp.ones_like(tokens))


def test_prefix_attends_both_ways_and_targets_stay_causal():
    prefix_lm = DecoderOnly(CFG, prefix_lm=True, rngs=nnx.Rngs(0))
    tokens = _tokens(2, (1, 10))
    prefix = jnp.asarray([[1] * 5 + [0] * 5])
    base = np.asarray(prefix_lm(tokens, None, prefix))
    late_prefix = np.asarray(prefix_lm(tokens.at[0, 4].set(3), None, prefix))
    assert np.abs(base[:, :4] - late_prefix[:, :4]).max() > 1e-3, "earlier prefix positions see a later one"
    target = np.asarray(prefix_lm(tokens.at[0, 7].set(3), None, prefix))
    np.testing.assert_allclose(base[:, :7], target[:, :7], atol=1e-5)


def test_packed_sequences_do_not_interact(model):
    a, b = _tokens(3, (1, 5)), _tokens(4, (1, 6))
    packed = jnp.concatenate([a, b], axis=1)
    segments = jnp.asarray([[1] * 5 + [2] * 6])
    prefix = jnp.asarray([[1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]]) if model.prefix_lm else None
    out = np.asarray(model(packed, segments, prefix))
    alone = lambda x, p: np.asarray(model(x, None, p))
    np.testing.assert_allclose(out[:, :5], alone(a, None if prefix is None else prefix[:, :5]), atol=1e-5)
    np.testing.assert_allclose(out[:, 5:], alone(b, None if prefix is None else prefix[:, 5:]), atol=1e-5)


def test_left_alignment_puts_each_prompt_behind_the_start_token():
    tokens, real = left_aligned_with_start(jnp.asarray([[5, 6, 7], [8, 0, 0]]))
    np.testing.assert_array_equal(tokens, [[0, 5, 6, 7], [0, 0, 0, 8]])
    np.testing.assert_array_equal(real, [[True] * 4, [False, False, True, True]])


@nnx.jit
def _forward(model: DecoderOnly, tokens: jax.Array, prefix: jax.Array | None) -> jax.Array:
    return model(tokens, None, prefix)


def _uncached_greedy(model: DecoderOnly, prompt: np.ndarray, steps: int) -> list[int]:
    """One unpadded prompt, re-evaluated in full for every new token. The sequence is a buffer as long as the
    longest prompt allows, so one compiled forward serves every step and row; causal attention keeps the zeros
    after the last known token out of its logits."""
    known = prompt[prompt > 0].tolist()
    sequence = np.zeros((1, 1 + len(prompt) + steps), np.int32)
    sequence[0, 1 : 1 + len(known)] = known
    prefix = (np.arange(sequence.shape[1]) <= len(known)).astype(np.int32)[None]
    generated = []
    for position in range(len(known), len(known) + steps):
        logits = _forward(model, jnp.asarray(sequence), jnp.asarray(prefix) if model.prefix_lm else None)
        generated.append(int(jnp.argmax(logits[0, position])))
        sequence[0, position + 1] = generated[-1]
    return generated


def test_cached_greedy_equals_uncached_with_mixed_prompt_lengths(model):
    prompts = _prompts()
    cached = np.asarray(decoding.greedy_decode(model, prompts, max_length=8, eos_id=None))
    for row, prompt in enumerate(np.asarray(prompts)):
        assert cached[row].tolist() == _uncached_greedy(model, prompt, 8), f"row {row}"


def test_beam_of_one_is_greedy_and_scores_agree(model):
    prompts = _prompts()
    greedy = np.asarray(decoding.greedy_decode(model, prompts, max_length=6))
    one, _ = decoding.beam_search(model, prompts, 6, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(np.asarray(one), greedy)
    wide, wide_scores = decoding.beam_search(model, prompts, 6, beam_size=3, alpha=0.0)
    rescored, _ = decoding.score(model, prompts, wide)
    # An untrained model may emit the pad token 0 mid-sequence, which scoring skips by definition.
    rows = [i for i, row in enumerate(np.asarray(wide)) if 0 not in row[: _eos_end(row)]]
    assert len(rows) >= 2
    np.testing.assert_allclose(np.asarray(wide_scores)[rows], np.asarray(rescored)[rows], rtol=1e-4, atol=1e-4)


def _eos_end(row: np.ndarray) -> int:
    eos = np.flatnonzero(row == decoding.EOS_ID)
    return int(eos[0]) if eos.size else len(row)


def test_score_is_the_log_likelihood_after_the_prompt(model):
    prompts = _prompts()
    targets = jnp.asarray([[5, 6, 1], [7, 1, 0], [9, 10, 11]], jnp.int32)
    total, mean = decoding.score(model, prompts, targets)
    for row in range(3):
        prompt = np.asarray(prompts[row])
        prompt = prompt[prompt > 0].tolist()
        target = [t for t in np.asarray(targets[row]).tolist() if t > 0]
        sequence = jnp.asarray([[0, *prompt, *target[:-1]]])
        prefix = jnp.asarray([[1] * (len(prompt) + 1) + [0] * (len(target) - 1)]) if model.prefix_lm else None
        log_probs = jax.nn.log_softmax(model(sequence, None, prefix)[0, len(prompt) :], axis=-1)
        expected = sum(float(log_probs[i, t]) for i, t in enumerate(target))
        assert float(total[row]) == pytest.approx(expected, rel=1e-4)
        assert float(mean[row]) == pytest.approx(expected / len(target), rel=1e-4)
