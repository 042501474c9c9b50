"""Cached decoding equals uncached teacher forcing; sampling filters; beam search; scoring; transformers parity."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from teacher_forcing import greedy_by_teacher_forcing

from t5x_tl.models import decoding
from t5x_tl.models.hf_convert import config_from_hf, params_from_hf
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder

VOCAB = 64


@pytest.fixture(scope="module")
def model() -> EncoderDecoder:
    cfg = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=8, num_decoder_layers=3)
    return EncoderDecoder(cfg, rngs=nnx.Rngs(0))


def _prompts(seed: int = 0) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    prompts = rng.integers(2, VOCAB, (3, 12))
    prompts[1, 7:] = 0  # mixed prompt lengths in one batch
    prompts[2, 4:] = 0
    return jnp.asarray(prompts, jnp.int32)


def _cut_after_eos(tokens: np.ndarray) -> np.ndarray:
    out = tokens.copy()
    for row in out:
        eos = np.flatnonzero(row == decoding.EOS_ID)
        if eos.size:
            row[eos[0] + 1 :] = 0
    return out


def test_cached_decode_step_equals_full_forward(model):
    prompts = _prompts()
    targets = jnp.asarray(np.random.default_rng(1).integers(2, VOCAB, (3, 9)), jnp.int32)
    decoder_inputs = jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]
    full = np.asarray(model(prompts, decoder_inputs))
    cache, segments = model.init_decode_cache(prompts, max_length=16)
    decode_step = nnx.jit(lambda model, *args: model.decode_step(*args))  # one compiled step for every position
    stepwise = []
    for i in range(9):
        logits, cache = decode_step(model, decoder_inputs[:, i : i + 1], jnp.int32(i), cache, segments)
        stepwise.append(np.asarray(logits[:, 0]))
    np.testing.assert_allclose(np.stack(stepwise, axis=1), full, rtol=1e-5, atol=1e-5)


def test_greedy_equals_uncached_greedy_with_mixed_prompt_lengths(model):
    prompts = _prompts()
    cached = np.asarray(decoding.greedy_decode(model, prompts, max_length=10))
    np.testing.assert_array_equal(cached, _cut_after_eos(greedy_by_teacher_forcing(model, prompts, 10)))
    alone = np.asarray(decoding.greedy_decode(model, prompts[2:3, :4], max_length=10))
    np.testing.assert_array_equal(cached[2:3], alone)
    endless = np.asarray(decoding.greedy_decode(model, prompts, max_length=10, eos_id=None))
    np.testing.assert_array_equal(endless, greedy_by_teacher_forcing(model, prompts, 10))


def test_sampling_limits_collapse_to_greedy(model):
    prompts = _prompts()
    greedy = np.asarray(decoding.greedy_decode(model, prompts, max_length=8))
    key = jax.random.key(3)
    for kwargs in (dict(top_k=1), dict(top_p=1e-6), dict(temperature=1e-4)):
        np.testing.assert_array_equal(np.asarray(decoding.sample_decode(model, prompts, 8, key, **kwargs)), greedy)


def test_sampling_is_seeded_and_varies(model):
    prompts = _prompts()
    a = np.asarray(decoding.sample_decode(model, prompts, 8, jax.random.key(1), temperature=2.0))
    b = np.asarray(decoding.sample_decode(model, prompts, 8, jax.random.key(1), temperature=2.0))
    c = np.asarray(decoding.sample_decode(model, prompts, 8, jax.random.key(2), temperature=2.0))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_filter_logits_keeps_top_k_and_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda **kw: np.asarray(decoding.filter_logits(logits, temperature=1.0, **kw)[0] > -1e8)
    np.testing.assert_array_equal(kept(top_k=2, top_p=1.0), [True, True, False, False])
    np.testing.assert_array_equal(kept(top_k=0, top_p=0.7), [True, True, False, False])
    np.testing.assert_array_equal(kept(top_k=0, top_p=0.81), [True, True, True, False])
    np.testing.assert_array_equal(kept(top_k=0, top_p=0.4), [True, False, False, False])


def test_beam_search_of_one_is_greedy_and_wider_beams_score_at_least_as_well(model):
    prompts = _prompts()
    greedy = np.asarray(decoding.greedy_decode(model, prompts, max_length=6))
    one, _ = decoding.beam_search(model, prompts, 6, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(np.asarray(one), greedy)
    wide, wide_scores = decoding.beam_search(model, prompts, 6, beam_size=4, alpha=0.0)
    rescored, _ = decoding.score(model, prompts, wide)
    np.testing.assert_allclose(np.asarray(wide_scores), np.asarray(rescored), rtol=1e-4)
    greedy_scores, _ = decoding.score(model, prompts, jnp.asarray(greedy))
    assert (np.asarray(wide_scores) >= np.asarray(greedy_scores) - 1e-4).all()


def test_score_sums_and_averages_target_log_probabilities(model):
    prompts = _prompts()
    targets = jnp.asarray([[5, 6, 1, 0], [7, 1, 0, 0], [8, 9, 10, 1]], jnp.int32)
    total, mean = decoding.score(model, prompts, targets)
    log_probs = jax.nn.log_softmax(model(prompts, jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]), axis=-1)
    expected = [float(sum(log_probs[b, t, targets[b, t]] for t in range(4) if targets[b, t] > 0)) for b in range(3)]
    np.testing.assert_allclose(np.asarray(total), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(total) / np.array([3, 2, 4]), rtol=1e-6)


def test_bad_decoding_arguments(model):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        decoding.sample_decode(model, _prompts(), 4, jax.random.key(0), temperature=0.0)
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        decoding.greedy_decode(model, _prompts(), 0)
    with pytest.raises(ValueError, match="beam_size must be at least 1"):
        decoding.beam_search(model, _prompts(), 4, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty_style must be one of"):
        decoding.beam_search(model, _prompts(), 4, length_penalty_style="gmnt")


def _ours_on_weights_of(reference: transformers.T5ForConditionalGeneration) -> EncoderDecoder:
    cfg = config_from_hf(reference.config.to_dict(), dropout_rate=0.0)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: EncoderDecoder(cfg, rngs=nnx.Rngs(0))))  # no random init
    return nnx.merge(graphdef, params_from_hf({k: v.numpy() for k, v in reference.state_dict().items()}, cfg))


@pytest.mark.parametrize("feed_forward_proj", ["relu", "gated-gelu"])
def test_cached_greedy_equals_transformers_generate(feed_forward_proj):
    hf_cfg = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2, num_decoder_layers=2,
        feed_forward_proj=feed_forward_proj, tie_word_embeddings=feed_forward_proj == "relu", dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.T5ForConditionalGeneration(hf_cfg).eval()
    ours = _ours_on_weights_of(reference)
    prompts = np.asarray(_prompts(5))
    with torch.no_grad():
        expected = reference.generate(
            input_ids=torch.tensor(prompts), attention_mask=torch.tensor(prompts > 0), max_new_tokens=12,
            do_sample=False, num_beams=1,
        ).numpy()[:, 1:]  # fmt: skip
    ours_tokens = np.asarray(decoding.greedy_decode(ours, jnp.asarray(prompts), max_length=12))
    np.testing.assert_array_equal(ours_tokens[:, : expected.shape[1]], expected)


SMALL_VOCAB = 16


@pytest.fixture(scope="module")
def eos_heavy() -> tuple[transformers.T5ForConditionalGeneration, EncoderDecoder]:
    """A 1+1-layer transformers T5 whose output layer favours EOS, and ours on the same weights.

    Random weights rarely end a sequence early, and then a length penalty has nothing to weigh; here EOS is
    likely, so finished hypotheses compete with live ones, which is where beam search can lose them.
    """
    hf_cfg = transformers.T5Config(
        vocab_size=SMALL_VOCAB, d_model=16, d_ff=32, num_heads=2, d_kv=8, num_layers=1, num_decoder_layers=1,
        feed_forward_proj="relu", tie_word_embeddings=False, dropout_rate=0.0, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=decoding.EOS_ID,
    )  # fmt: skip
    torch.manual_seed(0)
    reference = transformers.T5ForConditionalGeneration(hf_cfg).eval()
    head = reference.lm_head.weight.detach().clone() * 0.3  # flatter next-token distributions
    with torch.no_grad():
        reference.shared.weight[:, 0] += 4.0  # a near-constant feature in the residual stream ...
        head[:, 0] = 0.0  # ... read by the output layer as a bias:
        head[decoding.EOS_ID, 0] = 3.0  # EOS likely
        head[0, 0] = -5.0  # the pad token unlikely
    reference.lm_head.weight = torch.nn.Parameter(head)  # transformers 5 shares it with the input embedding
    return reference, _ours_on_weights_of(reference)


def _small_prompts() -> np.ndarray:
    prompts = np.random.default_rng(0).integers(2, SMALL_VOCAB, (8, 6)).astype(np.int32)
    prompts[1, 4:] = 0
    return prompts


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_beam_search_with_length_penalty_picks_what_transformers_picks(eos_heavy, alpha):
    """Finished hypotheses must not hold live beams' slots: the same pick as transformers' beam search, whose
    ``early_stopping="never"`` stops only when no live beam can win (as ours does), under its ``L ** alpha``."""
    reference, ours = eos_heavy
    prompts = _small_prompts()
    with torch.no_grad():
        expected = reference.generate(
            input_ids=torch.tensor(prompts), attention_mask=torch.tensor(prompts > 0), max_new_tokens=6,
            do_sample=False, num_beams=4, length_penalty=alpha, early_stopping="never",
        ).numpy()[:, 1:]  # fmt: skip
    expected = _cut_after_eos(expected)  # transformers fills after EOS with EOS when the pad id is 0
    tokens, log_probs = decoding.beam_search(
        ours, jnp.asarray(prompts), 6, beam_size=4, alpha=alpha, length_penalty_style="hf"
    )
    tokens = np.asarray(tokens)
    np.testing.assert_array_equal(tokens[:, : expected.shape[1]], expected)
    assert not tokens[:, expected.shape[1] :].any()
    assert 0 < (expected == decoding.EOS_ID).any(axis=1).sum() < len(prompts)  # some end early, some run to the end
    rescored, _ = decoding.score(ours, jnp.asarray(prompts), jnp.asarray(tokens))
    np.testing.assert_allclose(np.asarray(log_probs), np.asarray(rescored), rtol=1e-4)


def _every_sequence(max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every output up to ``max_length`` tokens (EOS only last, 0 after it) and its length."""
    rows, lengths = [], []
    for length in range(1, max_length + 1):
        last = range(SMALL_VOCAB) if length == max_length else [decoding.EOS_ID]
        body = [t for t in range(SMALL_VOCAB) if t != decoding.EOS_ID]
        for prefix in itertools.product(body, repeat=length - 1):
            for token in last:
                rows.append(list(prefix) + [token] + [0] * (max_length - length))
                lengths.append(length)
    return np.array(rows, np.int32), np.array(lengths)


@nnx.jit
def _teacher_forced_log_probs(model: EncoderDecoder, prompts_BxS, sequences_NxT, lengths_N) -> jax.Array:
    """``B x N``: each prompt's log-likelihood of each sequence's first ``length`` tokens, pad tokens 0 included
    (:func:`decoding.score` skips them, but a decoder may emit them)."""
    inputs_NxT = jnp.pad(sequences_NxT, ((0, 0), (1, 0)))[:, :-1]
    weights_NxT = jnp.arange(sequences_NxT.shape[1]) < lengths_N[:, None]

    def one_prompt(prompt_S: jax.Array) -> jax.Array:
        logits = model(jnp.broadcast_to(prompt_S, (sequences_NxT.shape[0], prompt_S.shape[0])), inputs_NxT)
        token_log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), sequences_NxT[..., None], -1)[..., 0]
        return (token_log_probs * weights_NxT).sum(axis=1)

    return jnp.stack([one_prompt(prompt) for prompt in prompts_BxS])


@pytest.mark.parametrize("style, alpha", [("gnmt", 3.0), ("hf", 1.0)])
def test_wide_beam_finds_the_best_penalised_sequence_of_an_exhaustive_search(eos_heavy, style, alpha):
    """With beams for every prefix, beam search is exhaustive: its pick maximises the penalised log-likelihood
    over all outputs of up to 3 tokens (teacher-forced, so a length convention off by one would show)."""
    _, ours = eos_heavy
    prompts, max_length = jnp.asarray(_small_prompts()[[2, 4]]), 3  # prompts whose pick the penalty changes
    sequences, lengths = _every_sequence(max_length)
    log_probs = np.asarray(_teacher_forced_log_probs(ours, prompts, jnp.asarray(sequences), jnp.asarray(lengths)))
    penalised = log_probs / np.asarray(decoding.length_penalty(lengths, alpha, style))
    best = penalised.argmax(axis=1)
    # Every candidate up to the step before the last fits in the beam: each prefix stays live, each EOS ending counts.
    beam_size = (SMALL_VOCAB - 1) ** (max_length - 2) * SMALL_VOCAB
    tokens, total = decoding.beam_search(
        ours, prompts, max_length, beam_size=beam_size, alpha=alpha, length_penalty_style=style
    )
    np.testing.assert_array_equal(np.asarray(tokens), sequences[best])
    np.testing.assert_allclose(np.asarray(total), log_probs[[0, 1], best], rtol=1e-5)
    assert (best != log_probs.argmax(axis=1)).any()  # the penalty changes the pick
