"""Pure train and eval steps for the encoder-decoder: functions of (state, batch, key), no I/O.

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


def _logits(graphdef: nnx.GraphDef, params: dict, batch: Batch, key: jax.Array | None) -> jax.Array:
    model = nnx.merge(graphdef, params)
    return model(
        batch["encoder_input_tokens"],
        batch["decoder_input_tokens"],
        batch.get("encoder_segment_ids"),
        batch.get("decoder_segment_ids"),
        deterministic=key is None,
        rngs=None if key is None else nnx.Rngs(dropout=key),
    )


def make_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    learning_rate: optax.Schedule,
    z_loss: float,
    dropout_seed: int,
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """``train_step(state, batch) -> (state, metrics)``; dropout keys are folded from the step number."""

    def loss_fn(params: dict, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        sums = token_losses(
            _logits(graphdef, params, batch, key), batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss
        )
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


def make_eval_step(graphdef: nnx.GraphDef, z_loss: float) -> Callable[[dict, Batch], Metrics]:
    """``eval_step(params, batch) -> sums`` of cross-entropy, correct tokens and weights (no dropout)."""

    def eval_step(params: dict, batch: Batch) -> Metrics:
        logits = _logits(graphdef, params, batch, None)
        return token_losses(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss)

    return eval_step
