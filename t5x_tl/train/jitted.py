"""The train and eval steps as ``t5x_tl-train`` runs them: jitted with the state's shardings, the state donated,
the batch split over the batch axes and the platform's compiler options (the loop and the AOT pod estimate
compile the same programs)."""

from __future__ import annotations

import jax
import optax
from flax import nnx
from ml_collections import ConfigDict

from t5x_tl.models.registry import model_kind
from t5x_tl.platform import compiler_options
from t5x_tl.train import partitioning
from t5x_tl.train.optimizers import learning_rate_schedule
from t5x_tl.train.state import TrainState
from t5x_tl.train.step import make_eval_step, make_train_step


def jit_train_step(
    cfg: ConfigDict,
    graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    shardings: TrainState,
    mesh: jax.sharding.Mesh,
    rules: partitioning.Rules,
    extra_compiler_options: dict | None = None,
) -> jax.stages.Wrapped:
    """The training step of ``cfg``, with any ``extra_compiler_options`` over the platform's."""
    step = make_train_step(
        graphdef,
        optimizer,
        learning_rate_schedule(cfg.optimizer, cfg.train.steps),
        cfg.train.z_loss,
        cfg.seed,
        model_kind(cfg.model.kind),
        cfg.train.microbatches,
        rules=rules,
    )
    return jax.jit(
        step,
        in_shardings=(shardings, partitioning.batch_sharding(mesh)),
        out_shardings=(shardings, None),
        # Only the state: XLA reuses a donated buffer only for an output of its shape and dtype, and no output is
        # shaped like the batch (donating it gave "Some donated buffers were not usable" for every batch array);
        # the loop holds no reference to a batch after dispatching it, so its memory is freed as soon.
        donate_argnums=0,
        compiler_options={**compiler_options(), **(extra_compiler_options or {})},
    )


def jit_eval_step(
    cfg: ConfigDict, graphdef: nnx.GraphDef, shardings: TrainState, mesh: jax.sharding.Mesh, rules: partitioning.Rules
) -> jax.stages.Wrapped:
    """The validation step of ``cfg`` (the parameters sharded as in training)."""
    return jax.jit(
        make_eval_step(graphdef, cfg.train.z_loss, model_kind(cfg.model.kind), rules=rules),
        in_shardings=(shardings.params, partitioning.batch_sharding(mesh)),
        compiler_options=compiler_options(),
    )
