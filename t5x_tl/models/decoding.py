"""Decoding: greedy, temperature / top-k / top-p sampling, beam search, and scoring, for the encoder-decoder
and the decoder-only models alike.

Every decoder uses the key/value cache, so each new token costs O(1) in the generated length, and runs as one
``lax.while_loop`` under jit that stops early once every sequence has produced EOS (beam search: once no live
beam can still win). Prompts of mixed lengths are batched with right padding (token 0), which attention masks
out. Outputs are ``B x max_length`` token arrays (the generated tokens only), padded with 0 after EOS.

Beam search keeps finished hypotheses apart from the live beams (as T5X's does), so a finished one never takes
a slot a live beam could grow in: live beams are ranked by total log-probability, finished ones by
log-probability over a length penalty, GNMT's ``((5 + L) / 6) ** alpha`` (Wu et al. 2016, T5X's) by default, or
transformers' ``L ** alpha``. L counts the generated tokens, EOS included (transformers 5 counts the same: the
new tokens only, for decoder-only models too).

A model decodes through two methods: ``start_decoding(prompts, max_length) -> (first logits, cache, context,
first position)`` and ``decode_step(tokens, position, cache, context) -> (logits, cache)``; every cache array
has the layers axis first and the batch axis second.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, get_args

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.blocks import Cache
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.gpt2.model import GPT2LMHeadModel
from t5x_tl.models.t5 import EncoderDecoder

EOS_ID = 1
_NEG_INF = -1e9

Picker = Callable[[jax.Array, jax.Array], jax.Array]  # (logits B x V float32, key) -> tokens B
Model = EncoderDecoder | DecoderOnly | GPT2LMHeadModel
LengthPenaltyStyle = Literal["gnmt", "hf"]
# (step, tokens, logits, cache, done, key) of the sampling loop
_SampleState = tuple[jax.Array, jax.Array, jax.Array, Cache, jax.Array, jax.Array]
# (step, live tokens, live scores, logits, cache, best tokens, best log-probability, best score) of beam search
_BeamState = tuple[jax.Array, jax.Array, jax.Array, jax.Array, Cache, jax.Array, jax.Array, jax.Array]


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
def _decode_loop(
    model: Model, prompts_BxS: jax.Array, key: jax.Array, *, max_length: int, pick: Picker, eos_id: int | None
) -> jax.Array:
    batch = prompts_BxS.shape[0]
    logits, cache, context, first_position = model.start_decoding(prompts_BxS, max_length)
    tokens = jnp.zeros((batch, max_length), jnp.int32)

    def not_done(state: _SampleState) -> jax.Array:
        step, _, _, _, done, _ = state
        return (step < max_length) & ~done.all()

    def step_fn(state: _SampleState) -> _SampleState:
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


def length_penalty(length: jax.Array | float, alpha: float, style: LengthPenaltyStyle = "gnmt") -> jax.Array:
    """The divisor of a finished hypothesis' log-probability; ``length`` counts its generated tokens, EOS included.

    ``"gnmt"``: ``((5 + length) / 6) ** alpha`` (Wu et al. 2016, what T5X uses); ``"hf"``: ``length ** alpha``
    (transformers' ``length_penalty``). Alpha 0 ranks by total log-probability, alpha > 0 favours longer outputs.
    """
    _check_style(style)
    return ((5.0 + length) / 6.0) ** alpha if style == "gnmt" else jnp.asarray(length, jnp.float32) ** alpha


def _check_style(style: str) -> None:
    if style not in get_args(LengthPenaltyStyle):
        raise ValueError(f"length_penalty_style must be one of {get_args(LengthPenaltyStyle)}, got {style!r}")


def _gather_beams(x_BxKx: jax.Array, index_BxN: jax.Array) -> jax.Array:
    """``x[b, index[b, n]]``: the rows of the beams named per batch element."""
    return jnp.take_along_axis(x_BxKx, index_BxN.reshape(index_BxN.shape + (1,) * (x_BxKx.ndim - 2)), axis=1)


@functools.partial(nnx.jit, static_argnames=("beam_size", "max_length", "alpha", "style"))
def _beam_search(
    model: Model, prompts_BxS: jax.Array, *, beam_size: int, max_length: int, alpha: float, style: LengthPenaltyStyle
) -> tuple[jax.Array, jax.Array]:
    batch, vocab = prompts_BxS.shape[0], model.config.vocab_size
    penalty = functools.partial(length_penalty, alpha=alpha, style=style)
    logits, cache, context, first_position = model.start_decoding(jnp.repeat(prompts_BxS, beam_size, 0), max_length)
    live_tokens = jnp.zeros((batch, beam_size, max_length), jnp.int32)
    live_scores = jnp.tile(jnp.array([0.0] + [_NEG_INF] * (beam_size - 1)), (batch, 1))  # one live beam at first
    best_tokens = jnp.zeros((batch, max_length), jnp.int32)
    best_log_prob = jnp.zeros((batch,))
    best_score = jnp.full((batch,), -jnp.inf)  # penalised; -inf until a hypothesis finishes

    def not_done(state: _BeamState) -> jax.Array:
        step, _, live_scores, _, _, _, _, best_score = state
        # A live beam's log-probability only falls as it grows, and a hypothesis finishing from here on has
        # step + 1 .. max_length tokens, so its penalised score is at most this bound (the penalty is monotone).
        largest_penalty = jnp.maximum(penalty(step + 1.0), penalty(float(max_length)))
        can_improve = live_scores.max(axis=1) / largest_penalty > best_score
        return (step < max_length) & can_improve.any()

    def step_fn(state: _BeamState) -> _BeamState:
        step, live_tokens, live_scores, logits, cache, best_tokens, best_log_prob, best_score = state
        log_probs = jax.nn.log_softmax(logits, axis=-1).reshape(batch, beam_size, vocab)
        candidates = (live_scores[..., None] + log_probs).reshape(batch, beam_size * vocab)
        # At most beam_size candidates end in EOS (one per beam), so the 2 * beam_size best hold beam_size that go on.
        top_scores, top_index = jax.lax.top_k(candidates, 2 * beam_size)
        parent, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
        top_tokens = jax.lax.dynamic_update_slice_in_dim(
            _gather_beams(live_tokens, parent), token[..., None], step, axis=2
        )
        ends = (token == EOS_ID) | (step == max_length - 1)

        # Those among the beam_size best that end (EOS, or max_length reached) leave the beam; the best of them by
        # penalised score replaces the best finished hypothesis if it beats it.
        in_beam = jnp.arange(2 * beam_size) < beam_size
        finishing = jnp.where(ends & in_beam, top_scores / penalty(step + 1.0), -jnp.inf)
        first = jnp.argmax(finishing, axis=1)[:, None]
        improves = _gather_beams(finishing, first)[:, 0] > best_score
        best_tokens = jnp.where(improves[:, None], _gather_beams(top_tokens, first)[:, 0], best_tokens)
        best_log_prob = jnp.where(improves, _gather_beams(top_scores, first)[:, 0], best_log_prob)
        best_score = jnp.where(improves, _gather_beams(finishing, first)[:, 0], best_score)

        # The rest go on, ranked by log-probability alone: the beam_size best candidates that have not ended.
        live_scores, keep = jax.lax.top_k(jnp.where(ends, _NEG_INF, top_scores), beam_size)
        live_tokens, token, parent = (_gather_beams(x, keep) for x in (top_tokens, token, parent))

        def reorder(x_LxBxN: jax.Array) -> jax.Array:  # cache arrays: layers first, then the flat batch x beam axis
            x = x_LxBxN.reshape(x_LxBxN.shape[0], batch, beam_size, *x_LxBxN.shape[2:])
            return jax.vmap(_gather_beams, (0, None))(x, parent).reshape(x_LxBxN.shape)

        cache = jax.tree.map(reorder, cache)
        next_logits, cache = model.decode_step(token.reshape(-1, 1), first_position + step, cache, context)
        return step + 1, live_tokens, live_scores, next_logits[:, 0], cache, best_tokens, best_log_prob, best_score

    state = (jnp.int32(0), live_tokens, live_scores, logits, cache, best_tokens, best_log_prob, best_score)
    *_, best_tokens, best_log_prob, _ = jax.lax.while_loop(not_done, step_fn, state)
    return best_tokens, best_log_prob


def beam_search(
    model: Model,
    prompts_BxS: jax.Array,
    max_length: int,
    *,
    beam_size: int = 4,
    alpha: float = 0.6,
    length_penalty_style: LengthPenaltyStyle = "gnmt",
) -> tuple[jax.Array, jax.Array]:
    """Beam search; returns the best finished sequence per prompt and its total log-probability.

    Live beams compete on total log-probability. A candidate among a step's ``beam_size`` best that ends (EOS, or
    ``max_length`` tokens, so something always finishes) leaves the beam for the finished set, ranked by
    log-probability over :func:`length_penalty` (T5 uses GNMT's with alpha 0.6); the next best unfinished
    candidates take its slot. The search stops once no live beam can beat the best finished hypothesis, whatever
    it appends. With ``length_penalty_style="hf"`` it picks what transformers'
    ``generate(num_beams=beam_size, length_penalty=alpha, early_stopping="never")`` picks (its default
    ``early_stopping=False`` may stop before a longer hypothesis that would win).
    """
    _validate(max_length)
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    _check_style(length_penalty_style)
    return _beam_search(
        model, prompts_BxS, beam_size=beam_size, max_length=max_length, alpha=alpha, style=length_penalty_style
    )


@nnx.jit
def score(model: Model, prompts_BxS: jax.Array, targets_BxT: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Log-likelihood of given targets (padding 0 ignored, EOS counted): (sum, per-token mean) per example.

    A decoder-only model (one with ``prompt_attention``) reads the prompt as its prefix: ``[0, prompt, targets]``
    (bidirectional prompt for a prefix LM), and the targets are scored after it.
    """
    if hasattr(model, "prompt_attention"):
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
