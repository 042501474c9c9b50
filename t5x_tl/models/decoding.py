"""Decoding: greedy, temperature / top-k / top-p sampling, beam search, and scoring, for the encoder-decoder
and the decoder-only models alike.

Every decoder uses the key/value cache, so each new token costs O(1) in the generated length, and runs as one
``lax.while_loop`` under jit that stops early once every sequence has produced EOS. Prompts of mixed lengths
are batched with right padding (token 0), which attention masks out. Outputs are ``B x max_length`` token
arrays (the generated tokens only), padded with 0 after EOS.

A model decodes through two methods: ``start_decoding(prompts, max_length) -> (first logits, cache, context,
first position)`` and ``decode_step(tokens, position, cache, context) -> (logits, cache)``; every cache array
has the layers axis first and the batch axis second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.t5 import EncoderDecoder

EOS_ID = 1
_NEG_INF = -1e9

Picker = Callable[[jax.Array, jax.Array], jax.Array]  # (logits B x V float32, key) -> tokens B
Model = EncoderDecoder | DecoderOnly


def filter_logits(logits_BxV: jax.Array, *, temperature: float, top_k: int, top_p: float) -> jax.Array:
    """Temperature scaling, then keeps the ``top_k`` most likely tokens (0: all) and the smallest set whose
    probability reaches ``top_p`` (1.0: all); the rest get -inf. The most likely token always survives."""
    logits_BxV = logits_BxV / temperature
    if top_k > 0:
        kth_largest = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_largest, _NEG_INF, logits_BxV)
    if top_p < 1.0:
        sorted_BxV = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
        before_BxV = jnp.cumsum(jax.nn.softmax(sorted_BxV, axis=-1), axis=-1) - jax.nn.softmax(sorted_BxV, axis=-1)
        kept = jnp.where(before_BxV < top_p, sorted_BxV, jnp.inf).min(axis=-1, keepdims=True)
        logits_BxV = jnp.where(logits_BxV < kept, _NEG_INF, logits_BxV)
    return logits_BxV


def _validate(max_length: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for 0), got {temperature}")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got top_k={top_k}, top_p={top_p}")


@functools.partial(nnx.jit, static_argnames=("max_length", "pick", "eos_id"))
def _decode_loop(model: Model, prompts_BxS: jax.Array, key: jax.Array, *, max_length: int, pick: Picker, eos_id):
    batch = prompts_BxS.shape[0]
    logits, cache, context, first_position = model.start_decoding(prompts_BxS, max_length)
    tokens = jnp.zeros((batch, max_length), jnp.int32)

    def not_done(state) -> jax.Array:
        step, _, _, _, done, _ = state
        return (step < max_length) & ~done.all()

    def step_fn(state):
        step, tokens, logits, cache, done, key = state
        key, sub = jax.random.split(key)
        chosen = jnp.where(done, 0, pick(logits, sub))
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, chosen[:, None], step, axis=1)
        next_logits, cache = model.decode_step(chosen[:, None], first_position + step, cache, context)
        done = done if eos_id is None else done | (chosen == eos_id)
        return step + 1, tokens, next_logits[:, 0], cache, done, key

    state = (jnp.int32(0), tokens, logits, cache, jnp.zeros((batch,), bool), key)
    return jax.lax.while_loop(not_done, step_fn, state)[1]


def greedy_decode(model: Model, prompts_BxS: jax.Array, max_length: int, *, eos_id: int | None = EOS_ID) -> jax.Array:
    """The most likely token at every step; ``eos_id=None`` always generates ``max_length`` tokens."""
    _validate(max_length)
    return _decode_loop(model, prompts_BxS, jax.random.key(0), max_length=max_length, pick=_argmax, eos_id=eos_id)


def _argmax(logits_BxV: jax.Array, key: jax.Array) -> jax.Array:
    del key
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)


@functools.lru_cache(maxsize=32)
def _sampler(temperature: float, top_k: int, top_p: float) -> Picker:
    """One picker object per setting, so jit reuses its compilation."""

    def pick(logits_BxV: jax.Array, key: jax.Array) -> jax.Array:
        filtered = filter_logits(logits_BxV, temperature=temperature, top_k=top_k, top_p=top_p)
        return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)

    return pick


def sample_decode(
    model: Model,
    prompts_BxS: jax.Array,
    max_length: int,
    key: jax.Array,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_id: int | None = EOS_ID,
) -> jax.Array:
    """Ancestral sampling from the filtered distribution (see :func:`filter_logits`)."""
    _validate(max_length, temperature, top_k, top_p)
    pick = _sampler(temperature, top_k, top_p)
    return _decode_loop(model, prompts_BxS, key, max_length=max_length, pick=pick, eos_id=eos_id)


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's ``((5 + length) / 6) ** alpha``; alpha 0 ranks by total log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


@functools.partial(nnx.jit, static_argnames=("beam_size", "max_length", "alpha"))
def _beam_search(model: Model, prompts_BxS: jax.Array, *, beam_size: int, max_length: int, alpha: float):
    batch, vocab = prompts_BxS.shape[0], model.config.vocab_size
    logits, cache, context, first_position = model.start_decoding(jnp.repeat(prompts_BxS, beam_size, 0), max_length)
    tokens = jnp.zeros((batch, beam_size, max_length), jnp.int32)
    scores = jnp.tile(jnp.array([0.0] + [_NEG_INF] * (beam_size - 1)), (batch, 1))  # one live beam at first
    finished = jnp.zeros((batch, beam_size), bool)
    lengths = jnp.zeros((batch, beam_size), jnp.int32)
    # A finished beam may only extend with padding, at no cost, so it keeps its score and slot.
    pad_only = jnp.full((vocab,), _NEG_INF).at[0].set(0.0)

    def not_done(state) -> jax.Array:
        step, _, _, _, _, finished, _ = state
        return (step < max_length) & ~finished.all()

    def step_fn(state):
        step, tokens, scores, logits, cache, finished, lengths = state
        log_probs = jax.nn.log_softmax(logits, axis=-1).reshape(batch, beam_size, vocab)
        log_probs = jnp.where(finished[..., None], pad_only, log_probs)
        candidates = (scores[..., None] + log_probs).reshape(batch, beam_size * vocab)
        scores, index = jax.lax.top_k(candidates, beam_size)
        parent, token = index // vocab, (index % vocab).astype(jnp.int32)
        take = lambda x: jnp.take_along_axis(x, parent.reshape(parent.shape + (1,) * (x.ndim - 2)), axis=1)
        tokens = jax.lax.dynamic_update_slice_in_dim(take(tokens), token[..., None], step, axis=2)
        was_finished = take(finished)
        lengths = take(lengths) + (~was_finished).astype(jnp.int32)
        finished = was_finished | (token == EOS_ID)

        def reorder(x_LxBxN):  # cache arrays: layers first, then the flat batch x beam axis
            x = x_LxBxN.reshape(x_LxBxN.shape[0], batch, beam_size, *x_LxBxN.shape[2:])
            x = jax.vmap(take)(x)
            return x.reshape(x_LxBxN.shape)

        cache = jax.tree.map(reorder, cache)
        next_logits, cache = model.decode_step(token.reshape(-1, 1), first_position + step, cache, context)
        return step + 1, tokens, scores, next_logits[:, 0], cache, finished, lengths

    state = (jnp.int32(0), tokens, scores, logits, cache, finished, lengths)
    _, tokens, scores, _, _, _, lengths = jax.lax.while_loop(not_done, step_fn, state)
    ranked = scores / length_penalty(lengths.astype(jnp.float32), alpha)
    best = jnp.argmax(ranked, axis=1)
    pick_best = lambda x: jnp.take_along_axis(x, best.reshape((batch, 1) + (1,) * (x.ndim - 2)), axis=1)[:, 0]
    return pick_best(tokens), pick_best(scores)


def beam_search(
    model: Model, prompts_BxS: jax.Array, max_length: int, *, beam_size: int = 4, alpha: float = 0.6
) -> tuple[jax.Array, jax.Array]:
    """Beam search; returns the best sequence per prompt and its total log-probability.

    Beams compete on total log-probability while decoding; at the end the ``beam_size`` survivors are ranked
    by log-probability over :func:`length_penalty` (the GNMT normalisation T5 uses with alpha 0.6).
    """
    _validate(max_length)
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    return _beam_search(model, prompts_BxS, beam_size=beam_size, max_length=max_length, alpha=alpha)


@nnx.jit
def score(model: Model, prompts_BxS: jax.Array, targets_BxT: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Log-likelihood of given targets (padding 0 ignored, EOS counted): (sum, per-token mean) per example.

    A decoder-only model reads the prompt as its prefix: ``[0, prompt, targets]`` (bidirectional prompt for a
    prefix LM), and the targets are scored after it.
    """
    if isinstance(model, DecoderOnly):
        prefix, segments, causal_attention = model.prompt_attention(prompts_BxS)
        sequence = jnp.concatenate([prefix, targets_BxT[:, :-1]], axis=1)
        segments = jnp.pad(segments, ((0, 0), (0, targets_BxT.shape[1] - 1)), constant_values=1)
        if causal_attention is not None:
            causal_attention = jnp.pad(causal_attention, ((0, 0), (0, targets_BxT.shape[1] - 1)))
        logits = model(sequence, segments, causal_attention)[:, prefix.shape[1] - 1 :]
    else:
        logits = model(prompts_BxS, jnp.pad(targets_BxT, ((0, 0), (1, 0)))[:, :-1])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    token_log_probs = jnp.take_along_axis(log_probs, targets_BxT[..., None], axis=-1)[..., 0]
    weights = (targets_BxT > 0).astype(jnp.float32)
    total = (token_log_probs * weights).sum(axis=1)
    return total, total / jnp.maximum(weights.sum(axis=1), 1.0)
