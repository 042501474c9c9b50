"""Two task models trained together: tied subtrees stay one, L2 and KL penalties pull the models together and
equal their definitions, and bad couplings are refused."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.train.state import TrainState
from t5x_tl.train.step import make_train_step
from t5x_tl.train.task_pair import Coupling, pair_params, penalty_value, symmetric_kl, task_params, train_pair

VOCAB = 64
CFG = t5_config(
    "tiny",
    VOCAB,
    d_model=32,
    d_ff=64,
    num_heads=4,
    d_kv=8,
    num_encoder_layers=1,
    num_decoder_layers=1,
    dropout_rate=0.0,
)


def _factory(rngs: nnx.Rngs) -> EncoderDecoder:
    return EncoderDecoder(CFG, rngs=rngs)


def _batches(seed: int, offset: int):
    """An endless stream of a fixed mapping task: the target is the input shifted by ``offset`` (mod vocab)."""
    rng = np.random.default_rng(seed)
    while True:
        inputs = rng.integers(2, VOCAB, (8, 10)).astype(np.int32)
        targets = (inputs - 2 + offset) % (VOCAB - 2) + 2
        yield {
            "encoder_input_tokens": inputs,
            "decoder_input_tokens": np.pad(targets, ((0, 0), (1, 0)))[:, :-1],
            "decoder_target_tokens": targets,
            "decoder_loss_weights": np.ones_like(targets, np.float32),
        }


def _train(coupling: Coupling, steps: int = 30) -> dict:
    _, pair = train_pair(_factory, optax.adam(3e-3), coupling, (_batches(0, 0), _batches(1, 5)), steps, seed=0)
    return pair


def _distance(pair: dict) -> float:
    return float(sum(jax.tree.leaves(jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), *pair["tasks"]))))


def test_tied_subtrees_are_one_and_the_rest_trains_apart():
    pair = _train(Coupling(tied=("token_embed", "encoder")))
    assert set(pair["shared"]) == {"token_embed", "encoder"}
    assert set(pair["tasks"][0]) == set(pair["tasks"][1]) == {"decoder", "lm_head"}
    low, high = task_params(pair, 0), task_params(pair, 1)
    for a, b in zip(jax.tree.leaves(low["encoder"]), jax.tree.leaves(high["encoder"]), strict=True):
        assert a is b
    assert _distance(pair) > 0  # the task-specific decoders learnt different mappings


def test_l2_and_kl_penalties_pull_the_two_models_together():
    free = _distance(_train(Coupling()))
    l2 = _distance(_train(Coupling(penalty="l2", coefficient=1.0)))
    kl = _distance(_train(Coupling(penalty="kl", coefficient=10.0)))
    assert free > 0
    assert l2 < 0.5 * free
    assert kl < free


def test_penalties_equal_their_definitions():
    graphdef, params = nnx.split(_factory(nnx.Rngs(0)), nnx.Param)
    pair = pair_params(nnx.to_pure_dict(params), ())
    assert float(penalty_value(graphdef, ENCODER_DECODER, Coupling((), "l2", 1.0), pair, ())) == 0.0
    pair["tasks"][1]["lm_head"] = pair["tasks"][1]["lm_head"] + 0.5
    expected = 0.25 * pair["tasks"][1]["lm_head"].size
    l2 = float(penalty_value(graphdef, ENCODER_DECODER, Coupling((), "l2", 1.0), pair, ()))
    assert l2 == pytest.approx(expected, rel=1e-5)
    batch = next(_batches(2, 0))
    batch["decoder_loss_weights"][:, 6:] = 0  # padding positions do not count
    kl = float(penalty_value(graphdef, ENCODER_DECODER, Coupling((), "kl", 1.0), pair, (batch,)))
    models = [nnx.merge(graphdef, task_params(pair, t)) for t in (0, 1)]
    logits = [np.asarray(m(batch["encoder_input_tokens"], batch["decoder_input_tokens"]), np.float64) for m in models]
    log_p = [x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)
             for x in logits]  # fmt: skip
    p = [np.exp(lp) for lp in log_p]
    per_position = 0.5 * ((p[0] * (log_p[0] - log_p[1])).sum(-1) + (p[1] * (log_p[1] - log_p[0])).sum(-1))
    weights = batch["decoder_loss_weights"]
    assert kl == pytest.approx((per_position * weights).sum() / weights.sum(), rel=1e-4)
    same, count = symmetric_kl(jnp.asarray(logits[0]), jnp.asarray(logits[0]), jnp.asarray(weights))
    assert float(same) == pytest.approx(0.0, abs=1e-6) and float(count) == weights.sum()


@pytest.mark.parametrize(
    ("coupling", "message"),
    [
        (Coupling(penalty="l1", coefficient=1.0), "penalty='l1' is unknown"),
        (Coupling(penalty="l2"), "must be above 0 with a penalty"),
        (Coupling(coefficient=0.5), "and 0 without"),
        (Coupling(tied=("encoder", "decodr")), r"names \['decodr'\]"),
    ],
)
def test_bad_couplings_are_refused(coupling, message):
    with pytest.raises(ValueError, match=message):
        train_pair(_factory, optax.adam(1e-3), coupling, (_batches(0, 0), _batches(1, 1)), 1)


def test_the_same_seed_gives_the_same_pair():
    first, second = (_train(Coupling(penalty="kl", coefficient=1.0), steps=3) for _ in range(2))
    for a, b in itertools.zip_longest(jax.tree.leaves(first), jax.tree.leaves(second)):
        np.testing.assert_array_equal(a, b)


def test_uncoupled_the_first_model_trains_exactly_as_alone():
    """Without ties or penalty nothing crosses between the models, so task a's model is the one the ordinary
    train step gives on task a's batches (Adam is per parameter)."""
    steps, optimizer = 5, optax.adam(3e-3)
    _, pair = train_pair(_factory, optimizer, Coupling(), (_batches(0, 0), _batches(1, 5)), steps, seed=0)
    graphdef, params = nnx.split(_factory(nnx.Rngs(params=jax.random.key(0))), nnx.Param)
    params = nnx.to_pure_dict(params)
    state = TrainState.create(params, optimizer)
    step = jax.jit(make_train_step(graphdef, optimizer, optax.constant_schedule(3e-3), 0.0, 0))
    for batch in itertools.islice(_batches(0, 0), steps):
        state, _ = step(state, batch)
    for alone, paired in zip(jax.tree.leaves(state.params), jax.tree.leaves(task_params(pair, 0)), strict=True):
        np.testing.assert_allclose(alone, paired, rtol=1e-4, atol=1e-6)
