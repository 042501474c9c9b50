"""Where a run starts: the newest intact checkpoint of its work directory, else fresh parameters (from the
seed, then any pretrained ones ``checkpoint.init_from`` maps in), and the training stream where that checkpoint
left it. A damaged step is moved aside, never deleted, and the next older one is tried; a checkpoint of another
model is an error, never a fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import optax
from ml_collections import ConfigDict

from t5x_tl.errors import UserError
from t5x_tl.train import warm_start
from t5x_tl.train.checkpoint_record import recorded_batches, recorded_data_state, recorded_signature
from t5x_tl.train.checkpointing import Checkpointer, read_pretrained
from t5x_tl.train.state import Layout, ModelFactory, TrainState, abstract_train_state, init_train_state, one_model
from t5x_tl.train.trainee import TrainStream

log = logging.getLogger("t5x_tl")


def _fresh_state(
    cfg: ConfigDict,
    factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    shardings: TrainState,
    layout: Layout,
) -> TrainState:
    """Parameters from the seed, then the pretrained ones of ``checkpoint.init_from`` where the mapping finds
    them (with a report of what was loaded, initialised fresh and ignored)."""
    state = init_train_state(factory, optimizer, shardings, cfg.seed, layout)
    if not cfg.checkpoint.init_from:
        return state
    sources = read_pretrained(Path(cfg.checkpoint.init_from))
    warm = warm_start.plan(state.params, sources, cfg.checkpoint.init_mapping)
    if not warm.loaded:
        raise UserError(
            f"no parameter of this model is found in {cfg.checkpoint.init_from} ({len(warm.ignored)} tensors there, "
            f"e.g. {warm.ignored[:3]}); map the names with config.checkpoint.init_mapping"
        )
    log.info("Warm start from %s: %s", cfg.checkpoint.init_from, warm.report())
    return state.replace(params=warm_start.apply(state.params, sources, warm))


def restore_or_init(
    checkpointer: Checkpointer,
    model_signature: dict,
    cfg: ConfigDict,
    factory: ModelFactory,
    optimizer: optax.GradientTransformation,
    shardings: TrainState,
    layout: Layout = one_model,
) -> tuple[TrainState, dict | None]:
    """The newest intact checkpoint's state and metadata, or a fresh state (and None) when there is none.

    An unreadable step is moved aside with a warning and the next older one is tried; a checkpoint of another
    model is an error, not a fallback.
    """
    quarantined = []
    for step in checkpointer.steps():
        try:
            saved = checkpointer.metadata(step)
        except UserError as error:
            quarantined.append(_set_aside(checkpointer, step, error))
            continue
        if recorded_signature(saved) != model_signature:
            raise UserError(
                f"{checkpointer.directory} holds a checkpoint of another model shape {recorded_signature(saved)}, but "
                f"this config builds {model_signature}; use a fresh --workdir or the matching model config"
            )
        try:
            state = checkpointer.restore(step, abstract_train_state(factory, optimizer, shardings, layout))
        except Exception as error:  # whatever the storage layer raises for damaged arrays
            quarantined.append(_set_aside(checkpointer, step, error))
            continue
        log.info(
            "Restored step %d from %s (model %s, data position %d batches)",
            step,
            checkpointer.directory / str(step),
            recorded_signature(saved),
            recorded_batches(saved, step),
        )
        return state, saved
    if quarantined:
        raise UserError(
            f"no intact checkpoint is left in {checkpointer.directory}: the unreadable ones were moved to "
            f"{[str(p) for p in quarantined]}; rerun to start from scratch, or restore them from a backup"
        )
    log.info("No checkpoint in %s: initialising parameters from seed %d", checkpointer.directory, cfg.seed)
    return _fresh_state(cfg, factory, optimizer, shardings, layout), None


def restore_input_position(checkpointer: Checkpointer, step: int, saved: dict, batches: TrainStream) -> None:
    """Puts the training stream where the checkpoint left it: this host's saved iterator state when the step
    holds one (constant time), else a replay of the batches consumed (same batches, time growing with the step)."""
    try:
        batches.load_state_dict(recorded_data_state(saved, step))
    except ValueError as error:
        raise UserError(f"{checkpointer.directory}: {error}") from error
    try:
        if checkpointer.restore_input_position(step, batches):
            log.info("Restored the input position of step %d from its iterator state", step)
    except Exception as error:  # whatever TensorFlow raises for a damaged or foreign iterator file
        log.warning(
            "The input iterator state of step %d is unreadable (%s: %s); replaying the stream to that position instead",
            step,
            type(error).__name__,
            str(error).splitlines()[0][:300] if str(error) else "",
        )


def _set_aside(checkpointer: Checkpointer, step: int, error: Exception) -> Path:
    moved = checkpointer.quarantine(step)
    log.warning(
        "Checkpoint step %d is unreadable (%s: %s); moved it to %s and falling back to the previous step",
        step,
        type(error).__name__,
        str(error).splitlines()[0][:300] if str(error) else "",
        moved,
    )
    return moved
