"""Two task models trained together, one per task, with hard or soft parameter sharing between them.

The sharing schemes of multi-task learning (Caruana 1997; Ruder 2017's overview):

- ``tied``: top-level parameter subtrees the two models hold in common, exactly (hard sharing). Tying
  ``("token_embed", "encoder")`` gives a shared encoder with task-specific heads (each task its own decoder and
  output layer); tying everything is one model.
- ``penalty="l2"``: soft sharing by ``coefficient * sum ||theta_a - theta_b||^2`` over the untied parameters
  (Duong et al. 2015).
- ``penalty="kl"``: soft sharing of functions rather than weights: ``coefficient`` times the symmetrised KL
  divergence between the two models' next-token distributions, averaged over the target tokens of both tasks'
  batches (the shared inputs).

Both models start from the same initialisation, so a penalty measures how far training pulls them apart. The
loss is each task's cross-entropy per target token, summed, plus the penalty; the step is a pure function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from t5x_tl.models.kinds import Batch, ModelKind
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.train.losses import token_losses
from t5x_tl.train.state import ModelFactory, TrainState
from t5x_tl.train.step import Metrics

PENALTIES = ("none", "l2", "kl")


@dataclasses.dataclass(frozen=True)
class Coupling:
    tied: tuple[str, ...] = ()
    penalty: str = "none"
    coefficient: float = 0.0

    def check(self, param_names: tuple[str, ...]) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty={self.penalty!r} is unknown; choose one of {PENALTIES}")
        if self.coefficient < 0 or (self.penalty == "none") != (self.coefficient == 0):
            raise ValueError(
                f"coefficient={self.coefficient} must be above 0 with a penalty and 0 without ({self.penalty!r})"
            )
        unknown = sorted(set(self.tied) - set(param_names))
        if unknown:
            raise ValueError(f"tied={self.tied} names {unknown}, not among the model's parameters {param_names}")


def pair_layout(tree: dict, tied: tuple[str, ...]) -> dict:
    """The pair's tree from one model's (of parameters, shapes or shardings): tied subtrees once, the rest once
    per task, both tasks starting from the same values."""
    own = {k: v for k, v in tree.items() if k not in tied}
    return {"shared": {k: tree[k] for k in tied}, "tasks": (own, own)}


def pair_params(params: dict, tied: tuple[str, ...]) -> dict:
    """The pair's parameters from one model's, the second task's a copy (a buffer of its own to donate)."""
    pair = pair_layout(params, tied)
    return {**pair, "tasks": (pair["tasks"][0], jax.tree.map(jnp.copy, pair["tasks"][1]))}


def task_params(pair: dict, task: int) -> dict:
    """Task ``task``'s whole model (0: the first, low-resource task; 1: the second)."""
    return {**pair["shared"], **pair["tasks"][task]}


def _log_probs(logits: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def symmetric_kl(logits_a: jax.Array, logits_b: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted sum over positions of ``(KL(a||b) + KL(b||a)) / 2``, and the weight sum."""
    log_a, log_b = _log_probs(logits_a), _log_probs(logits_b)
    per_position = 0.5 * ((jnp.exp(log_a) - jnp.exp(log_b)) * (log_a - log_b)).sum(axis=-1)
    return (per_position * weights).sum(), weights.sum()


def penalty_value(graphdef: nnx.GraphDef, kind: ModelKind, coupling: Coupling, pair: dict, batches: tuple) -> jax.Array:
    """The coupling term of the loss (before its coefficient)."""
    if coupling.penalty == "l2":
        differences = jax.tree.map(lambda a, b: jnp.sum(jnp.square(a - b)), *pair["tasks"])
        return sum(jax.tree.leaves(differences), jnp.float32(0))
    if coupling.penalty == "kl":
        total = count = jnp.float32(0)
        models = [nnx.merge(graphdef, task_params(pair, task)) for task in (0, 1)]
        for batch in batches:
            (logits_a, _, weights, _), (logits_b, *_) = (kind.predict(m, batch, None) for m in models)
            kl, tokens = symmetric_kl(logits_a, logits_b, weights.astype(jnp.float32))
            total, count = total + kl, count + tokens
        return total / jnp.maximum(count, 1.0)
    return jnp.float32(0)


def make_pair_step(
    graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, coupling: Coupling, kind: ModelKind, z_loss: float
) -> Callable[[TrainState, Batch, Batch], tuple[TrainState, Metrics]]:
    """``step(state, batch_a, batch_b) -> (state, metrics)``, ``state.params`` a :func:`pair_params` tree."""

    def loss_fn(pair: dict, batch_a: Batch, batch_b: Batch) -> tuple[jax.Array, Metrics]:
        metrics, loss = {}, jnp.float32(0)
        for task, batch in enumerate((batch_a, batch_b)):
            logits, targets, weights, segments = kind.predict(nnx.merge(graphdef, task_params(pair, task)), batch, None)
            sums = token_losses(logits, targets, weights, z_loss, segments)
            tokens = jnp.maximum(sums["weight_sum"], 1.0)
            loss += (sums["cross_entropy_sum"] + sums["z_loss_sum"]) / tokens
            metrics[f"cross_entropy_{task}"] = sums["cross_entropy_sum"] / tokens
            metrics[f"accuracy_{task}"] = sums["correct_sum"] / tokens
        penalty = penalty_value(graphdef, kind, coupling, pair, (batch_a, batch_b))
        metrics["penalty"] = penalty
        return loss + coupling.coefficient * penalty, metrics

    def step(state: TrainState, batch_a: Batch, batch_b: Batch) -> tuple[TrainState, Metrics]:
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch_a, batch_b)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), {"loss": loss, **metrics}

    return step


def train_pair(
    model_factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    coupling: Coupling,
    batches: tuple[Iterator[Batch], Iterator[Batch]],
    steps: int,
    *,
    kind: ModelKind = ENCODER_DECODER,
    seed: int = 0,
    z_loss: float = 0.0,
    on_step: Callable[[int, Metrics], None] | None = None,
) -> tuple[nnx.GraphDef, dict]:
    """Trains the pair for ``steps`` steps on (task a, task b) batches in memory; returns the graph and the pair's
    params. A run with a mesh, checkpoints and resume is the training loop's (:mod:`t5x_tl.train.pair_trainee`)."""
    model = model_factory(nnx.Rngs(params=jax.random.key(seed)))
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    coupling.check(tuple(params))
    pair = pair_params(params, coupling.tied)
    state = TrainState.create(pair, optimizer)
    step_fn = jax.jit(make_pair_step(graphdef, optimizer, coupling, kind, z_loss), donate_argnums=0)
    for index in range(steps):
        state, metrics = step_fn(state, next(batches[0]), next(batches[1]))
        if on_step is not None:
            on_step(index + 1, metrics)
    return graphdef, state.params
