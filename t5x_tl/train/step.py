"""Pure train and eval steps for every model kind: functions of (state, batch, key), no I/O.

The loss is normalised per target token (the sum of ``decoder_loss_weights``), so packed and padded batches
weigh every real target token equally. Given the job's logical-axis ``rules``, a step traces its model under them,
so the activations take the sharding constraints of :mod:`t5x_tl.models.sharding`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from t5x_tl.models.kinds import Batch, ModelKind
from t5x_tl.models.sharding import activation_rules
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.train.losses import token_losses
from t5x_tl.train.partitioning import Rules
from t5x_tl.train.state import TrainState

Metrics = dict[str, jax.Array]


def _token_losses(
    graphdef: nnx.GraphDef, kind: ModelKind, params: dict, batch: Batch, key: jax.Array | None, z_loss: float
) -> Metrics:
    logits, targets, weights, segments = kind.predict(nnx.merge(graphdef, params), batch, key)
    return token_losses(logits, targets, weights, z_loss, segments)


def _microbatches(batch: Batch, count: int) -> Batch:
    """``(B, ...) -> (count, B / count, ...)``, microbatch ``i`` holding rows ``i, i + count, ...``: a strided
    split, so every microbatch stays spread over the data-parallel shards of the batch axis."""
    split = lambda x: x.reshape(x.shape[0] // count, count, *x.shape[1:]).swapaxes(0, 1)
    return jax.tree.map(split, batch)


def make_train_step(
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    learning_rate: optax.Schedule,
    z_loss: float,
    dropout_seed: int,
    kind: ModelKind = ENCODER_DECODER,
    microbatches: int = 1,
    *,
    rules: Rules = (),
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """``train_step(state, batch) -> (state, metrics)``; dropout keys are folded from the step number.

    ``kind`` is the model kind, and so how the batch feeds the model (:meth:`ModelKind.predict`). With
    ``microbatches > 1`` the batch is split and gradients of the summed losses are accumulated by a scan
    before one normalisation per target token, so the update equals the whole batch's (to float rounding).
    ``rules`` (the logical-axis table of the parameters' shardings) constrain the activations' shardings when the
    step is traced on a mesh (``jax.set_mesh``); without them XLA propagates shardings from the parameters alone.
    """

    def summed_loss(params: dict, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics]:
        with activation_rules(rules):
            sums = _token_losses(graphdef, kind, params, batch, key, z_loss)
        return sums["cross_entropy_sum"] + sums["z_loss_sum"], sums

    sums_and_grads = jax.grad(summed_loss, has_aux=True)

    def accumulated(params: dict, batch: Batch, key: jax.Array) -> tuple[dict, Metrics]:
        if microbatches == 1:
            return sums_and_grads(params, batch, key)

        def add(carry: tuple[dict, Metrics], inputs: tuple[jax.Array, Batch]) -> tuple[tuple[dict, Metrics], None]:
            index, micro = inputs
            grads, sums = sums_and_grads(params, micro, jax.random.fold_in(key, index))
            return jax.tree.map(jnp.add, carry, (grads, sums)), None

        micro = _microbatches(batch, microbatches)
        shapes = jax.eval_shape(sums_and_grads, params, jax.tree.map(lambda x: x[0], micro), key)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return jax.lax.scan(add, zeros, (jnp.arange(microbatches), micro))[0]

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(jax.random.key(dropout_seed), state.step)
        grads, sums = accumulated(state.params, batch, key)
        tokens = jnp.maximum(sums["weight_sum"], 1.0)
        grads = jax.tree.map(lambda g: g / tokens, grads)
        loss = (sums["cross_entropy_sum"] + sums["z_loss_sum"]) / tokens
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
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
    graphdef: nnx.GraphDef, z_loss: float, kind: ModelKind = ENCODER_DECODER, *, rules: Rules = ()
) -> Callable[[dict, Batch], Metrics]:
    """``eval_step(params, batch) -> sums`` of cross-entropy, correct tokens, weights and fully correct
    sequences (no dropout); ``rules`` as for :func:`make_train_step`."""

    def eval_step(params: dict, batch: Batch) -> Metrics:
        with activation_rules(rules):
            return _token_losses(graphdef, kind, params, batch, None, z_loss)

    return eval_step
