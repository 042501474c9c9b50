"""Pure train and eval steps for every model kind: functions of (state, batch, key), no I/O.

The loss is normalised per target token (the sum of ``decoder_loss_weights``), so packed and padded batches
weigh every real target token equally.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from t5x_tl.train.losses import token_losses
from t5x_tl.train.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
Prediction = tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]


def _rngs(key: jax.Array | None) -> dict:
    return dict(deterministic=key is None, rngs=None if key is None else nnx.Rngs(dropout=key))


def _encoder_decoder(model, batch: Batch, key) -> Prediction:
    logits = model(
        batch["encoder_input_tokens"],
        batch["decoder_input_tokens"],
        batch.get("encoder_segment_ids"),
        batch.get("decoder_segment_ids"),
        **_rngs(key),
    )
    return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")


def _decoder_only(model, batch: Batch, key) -> Prediction:
    logits = model(
        batch["decoder_input_tokens"],
        batch.get("decoder_segment_ids"),
        batch.get("decoder_causal_attention"),
        **_rngs(key),
    )
    return logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], batch.get("decoder_segment_ids")


def _encoder_only(model, batch: Batch, key) -> Prediction:
    logits = model(batch["encoder_input_tokens"], batch.get("encoder_segment_ids"), **_rngs(key))
    return logits, batch["encoder_target_tokens"], batch["encoder_loss_weights"], batch.get("encoder_segment_ids")


# model kind -> how its SeqIO feature converter's batch feeds it: (logits, targets, loss weights, segment ids)
PREDICTIONS: dict[str, Callable[[nnx.Module, Batch, jax.Array | None], Prediction]] = {
    "encoder_decoder": _encoder_decoder,
    "decoder_only": _decoder_only,
    "prefix_lm": _decoder_only,
    "encoder_only": _encoder_only,
}


def _token_losses(graphdef, kind: str, params: dict, batch: Batch, key, z_loss: float) -> Metrics:
    logits, targets, weights, segments = PREDICTIONS[kind](nnx.merge(graphdef, params), batch, key)
    return token_losses(logits, targets, weights, z_loss, segments)


def make_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    learning_rate: optax.Schedule,
    z_loss: float,
    dropout_seed: int,
    kind: str = "encoder_decoder",
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """``train_step(state, batch) -> (state, metrics)``; dropout keys are folded from the step number.

    ``kind`` names the model kind, and so the batch features (see :data:`PREDICTIONS`).
    """

    def loss_fn(params: dict, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        sums = _token_losses(graphdef, kind, params, batch, key, z_loss)
        tokens = jnp.maximum(sums["weight_sum"], 1.0)
        return (sums["cross_entropy_sum"] + sums["z_loss_sum"]) / tokens, sums

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(jax.random.key(dropout_seed), state.step)
        (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        tokens = jnp.maximum(sums["weight_sum"], 1.0)
        metrics = {
            "loss": loss,
            "cross_entropy": sums["cross_entropy_sum"] / tokens,
            "z_loss": sums["z_loss_sum"] / tokens,
            "accuracy": sums["correct_sum"] / tokens,
            "target_tokens": sums["weight_sum"],
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": learning_rate(state.step),
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return train_step


def make_eval_step(
    graphdef: nnx.GraphDef, z_loss: float, kind: str = "encoder_decoder"
) -> Callable[[dict, Batch], Metrics]:
    """``eval_step(params, batch) -> sums`` of cross-entropy, correct tokens, weights and fully correct
    sequences (no dropout)."""

    def eval_step(params: dict, batch: Batch) -> Metrics:
        return _token_losses(graphdef, kind, params, batch, None, z_loss)

    return eval_step
