"""GPT-2 through t5x_tl's decoders unchanged: the cache equals full forwards, and cached greedy tokens equal
transformers' ``generate(do_sample=False)`` for prompts of mixed lengths (left-padded there, right-padded here)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from gpt2_reference import assert_close, ours, padded_tokens, reference

from t5x_tl.models import decoding

STEPS = 8


@pytest.fixture(scope="module", params=["tied", "odd_heads"])
def pair(request) -> tuple[torch.nn.Module, nnx.Module]:
    lm = reference(request.param, seed=1)
    return lm, ours(lm)


def _prompts() -> np.ndarray:
    return padded_tokens([8, 3, 5], 8, seed=7)[0]  # right-padded, as decoding takes them


def _left_padded(prompts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = prompts > 0
    order = np.argsort(real, axis=1, kind="stable")  # padding first, the prompt's order kept
    return np.take_along_axis(prompts, order, 1), np.take_along_axis(real, order, 1).astype(np.int64)


@nnx.jit
def _forward(model: nnx.Module, tokens: jax.Array, segments: jax.Array) -> jax.Array:
    return model(tokens, segments)


def _full_logits(model: nnx.Module, rows: list[np.ndarray]) -> list[np.ndarray]:
    """Each row's logits from one uncached forward of the rows right-padded into a batch."""
    width = max(len(row) for row in rows)
    tokens = np.stack([np.pad(row, (0, width - len(row))) for row in rows])
    segments = (np.arange(width)[None] < np.array([len(row) for row in rows])[:, None]).astype(np.int32)
    logits = np.asarray(_forward(model, jnp.asarray(tokens), jnp.asarray(segments)))
    return [logits[i, : len(row)] for i, row in enumerate(rows)]


def test_cached_steps_equal_a_full_forward_of_each_row(pair):
    _, model = pair
    prompts = _prompts()
    continuation = np.random.default_rng(8).integers(2, 100, (3, STEPS))
    start = nnx.jit(lambda m, p: m.start_decoding(p, STEPS))
    logits, cache, context, position = start(model, jnp.asarray(prompts))
    step = nnx.jit(lambda m, *args: m.decode_step(*args))
    cached = [np.asarray(logits)]
    for i in range(STEPS - 1):
        logits, cache = step(model, jnp.asarray(continuation[:, i : i + 1]), jnp.int32(position + i), cache, context)
        cached.append(np.asarray(logits[:, 0]))
    cached = np.stack(cached, axis=1)
    rows = [np.concatenate([prompt[prompt > 0], continuation[i, : STEPS - 1]]) for i, prompt in enumerate(prompts)]
    for row, full in enumerate(_full_logits(model, rows)):
        assert_close(cached[row], full[-STEPS:], rtol=1e-5)


def test_greedy_equals_transformers_generate_with_mixed_prompt_lengths(pair):
    reference_lm, model = pair
    prompts = _prompts()
    left, mask = _left_padded(prompts)
    with torch.no_grad():
        expected = reference_lm.generate(
            input_ids=torch.tensor(left), attention_mask=torch.tensor(mask), max_new_tokens=STEPS,
            min_new_tokens=STEPS, do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0,
        ).numpy()[:, prompts.shape[1] :]  # fmt: skip
    tokens = np.asarray(decoding.greedy_decode(model, jnp.asarray(prompts), STEPS, eos_id=None))
    np.testing.assert_array_equal(tokens, expected)
    assert len({tuple(row) for row in tokens}) == 3  # the rows differ: each followed its own prompt
    alone = np.asarray(decoding.greedy_decode(model, jnp.asarray(prompts[1:2, :3]), STEPS, eos_id=None))
    np.testing.assert_array_equal(alone, tokens[1:2])


def test_beam_of_one_is_greedy_and_its_log_probability_is_teacher_forced(pair):
    _, model = pair
    prompts = _prompts()
    greedy = np.asarray(decoding.greedy_decode(model, jnp.asarray(prompts), 6))
    tokens, log_probs = decoding.beam_search(model, jnp.asarray(prompts), 6, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(np.asarray(tokens), greedy)
    outputs = []
    for tokens_row in greedy:
        eos = np.flatnonzero(tokens_row == decoding.EOS_ID)
        outputs.append(tokens_row[: eos[0] + 1] if eos.size else tokens_row)
    rows = [np.concatenate([prompt[prompt > 0], out]) for prompt, out in zip(prompts, outputs, strict=True)]
    for row, (logits, generated) in enumerate(zip(_full_logits(model, rows), outputs, strict=True)):
        predicting = np.asarray(jax.nn.log_softmax(logits[-len(generated) - 1 : -1]))
        expected = predicting[np.arange(len(generated)), generated].sum()
        assert float(log_probs[row]) == pytest.approx(float(expected), rel=1e-4)


def test_prompts_and_outputs_past_the_last_position_are_refused(pair):
    _, model = pair
    prompts = jnp.asarray(_prompts())
    room = model.config.n_positions - prompts.shape[1]
    with pytest.raises(ValueError, match=f"need {room + 9} positions; this GPT-2 has {room + 8}"):
        decoding.greedy_decode(model, prompts, room + 1)
    assert decoding.greedy_decode(model, prompts, room, eos_id=None).shape == (3, room)  # up to the last position


def test_scored_targets_equal_transformers_log_likelihood_after_the_prompt(pair):
    """``decoding.score`` reads GPT-2 as a decoder: ``[0, prompt, targets]``, the targets scored after the prompt."""
    lm, model = pair
    prompts = _prompts()
    targets = np.random.default_rng(9).integers(2, 100, (3, 4))
    targets[1, 3] = 0  # padding is not scored
    total, mean = decoding.score(model, jnp.asarray(prompts), jnp.asarray(targets))
    for row in range(3):
        prompt = prompts[row][prompts[row] > 0]
        scored = targets[row][targets[row] > 0]
        sequence = torch.tensor(np.concatenate([[0], prompt, scored])[None])
        with torch.no_grad():
            log_probs = torch.log_softmax(lm(sequence).logits[0].double(), -1).numpy()
        positions = np.arange(len(prompt), len(prompt) + len(scored))  # each predicts the next token
        expected = log_probs[positions, scored].sum()
        np.testing.assert_allclose(float(total[row]), expected, rtol=1e-4)
        np.testing.assert_allclose(float(mean[row]), expected / len(scored), rtol=1e-4)
