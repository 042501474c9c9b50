"""The training loop: it runs the job :mod:`t5x_tl.train.job` resolves from the config, with every side effect of
a run (data, checkpoints, metrics, signals).

config -> job (task, model, mesh, host batches) -> global arrays -> jitted ``train_step`` -> metrics and Orbax
(each step's metadata as :mod:`t5x_tl.train.checkpoint_record` writes it). A stop request (Ctrl-C or SIGTERM)
finishes the current step, saves, and leaves; the next run resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import types
from pathlib import Path

import jax
from ml_collections import ConfigDict
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from t5x_tl.config import validate
from t5x_tl.data.curriculum.batches import CurriculumBatches
from t5x_tl.data.pipeline import hide_accelerators_from_tensorflow
from t5x_tl.train import distributed
from t5x_tl.train.checkpoint_record import step_metadata
from t5x_tl.train.checkpointing import Checkpointer, pretrained_path
from t5x_tl.train.evaluation import CurriculumListener, evaluate, global_batch, validation_batches
from t5x_tl.train.flops import peak_flops_per_device, train_step_flops
from t5x_tl.train.job import Job, check_microbatches, prepare_workdir, resolve_job
from t5x_tl.train.metrics import MetricWriter
from t5x_tl.train.model_info import parameter_table
from t5x_tl.train.optimizers import make_optimizer
from t5x_tl.train.progress import LaggedProgress
from t5x_tl.train.restore import restore_input_position, restore_or_init
from t5x_tl.train.state import abstract_model, state_shardings
from t5x_tl.train.trainee import ONE_MODEL, StepContext, Trainee

log = logging.getLogger("t5x_tl")


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("%s received: finishing this step, saving a checkpoint, then stopping", signal.Signals(signum).name)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class TrainResult:
    step: int
    stopped_by: int | None  # the signal number, or None when all steps ran
    last_eval: dict[str, float]
    data_state: dict  # the training stream's position (and curriculum) at the end


def train(cfg: ConfigDict, workdir: str | Path, trainee: Trainee = ONE_MODEL) -> TrainResult:
    """Runs (or resumes) the job described by ``cfg`` in ``workdir``, training its model (or, e.g., a task pair:
    ``trainee`` gives the parameter tree, the training stream and the steps)."""
    validate(cfg)
    distributed.initialize(cfg)
    workdir = prepare_workdir(workdir)
    hide_accelerators_from_tensorflow()
    job = resolve_job(cfg, "train", cfg.data.pack)
    check_microbatches(cfg.data.batch_size, cfg.train.microbatches, job.mesh)
    eval_batches = validation_batches(job.spec, cfg.train.eval_batches, job.data_sharding)
    batches = trainee.batches(cfg, job.spec)
    if cfg.checkpoint.init_from:
        pretrained_path(Path(cfg.checkpoint.init_from))
    optimizer = make_optimizer(cfg.optimizer, cfg.train.steps)
    shardings = state_shardings(job.model.build, optimizer, job.mesh, job.rules, trainee.layout)
    checkpointer = Checkpointer(workdir / "checkpoints", cfg.checkpoint.every, cfg.checkpoint.keep)
    signature = trainee.signature(job.model)
    state, saved = restore_or_init(checkpointer, signature, cfg, job.model.build, optimizer, shardings, trainee.layout)
    start = int(jax.device_get(state.step))
    if saved:
        restore_input_position(checkpointer, start, saved, batches)

    graphdef, abstract_params = abstract_model(job.model.build)
    _write_model_info(workdir, parameter_table(abstract_params, job.rules, job.mesh))
    step_context = StepContext(cfg, job, graphdef, optimizer, shardings)
    train_step, eval_step = trainee.train_step(step_context), trainee.eval_step(step_context)
    record = job.model.record(signature)
    metadata = lambda step: step_metadata(record, step, job.task.name, batches.state_dict())
    writer = MetricWriter(workdir)
    listener = (
        CurriculumListener(batches, cfg.train.eval_batches, job.data_sharding, writer)
        if (isinstance(batches, CurriculumBatches) and batches.curriculum.listens)
        else None
    )
    stop = StopRequest()
    last_eval: dict[str, float] = {}
    step = start
    try:
        with jax.set_mesh(job.mesh), logging_redirect_tqdm():
            if start == 0:
                last_eval = _validate(0, eval_step, state.params, eval_batches, writer)
            progress = _progress(cfg, job, trainee, writer, start)
            while step < cfg.train.steps and stop.signal is None:
                state, metrics = train_step(state, global_batch(next(batches), job.data_sharding))
                step += 1
                progress.dispatched(step, metrics)
                if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
                    progress.flush()  # evaluation waits for this step anyway
                    last_eval = _validate(step, eval_step, state.params, eval_batches, writer)
                    if listener:
                        listener(step, eval_step, state.params)
                checkpointer.save(step, state, metadata(step), batches)  # after the curriculum heard this step's eval
            progress.flush()
            progress.bar.close()
            checkpointer.save(step, state, metadata(step), batches, force=checkpointer.latest_step() != step)
            checkpointer.wait()
            log.info("Saved step %d to %s", step, checkpointer.directory / str(step))
    finally:
        stop.restore()
        batches.close()
        checkpointer.close()
        writer.close()
    return TrainResult(step=step, stopped_by=stop.signal, last_eval=last_eval, data_state=batches.state_dict())


def _validate(
    step: int, eval_step: jax.stages.Wrapped, params: dict, eval_batches: list[dict], writer: MetricWriter
) -> dict[str, float]:
    """Validation metrics of ``params`` at ``step``, written and logged."""
    metrics = evaluate(eval_step, params, eval_batches)
    writer.write(step, "validation", metrics)
    log.info("step %d: validation %s", step, _fmt(metrics))
    return metrics


def _progress(cfg: ConfigDict, job: Job, trainee: Trainee, writer: MetricWriter, start: int) -> LaggedProgress:
    """The progress bar from ``start`` and the train metrics it logs, with tokens/s and MFU of every model."""
    bar = tqdm(total=cfg.train.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    spec, model = job.spec, job.model
    flops_per_step = trainee.models_per_step * train_step_flops(
        model.config, cfg.data.batch_size, spec.inputs_length, job.targets_length, model.kind, model.memory
    )
    peak = peak_flops_per_device(jax.devices()[0], cfg.model.dtype, cfg.train.peak_flops_per_device)
    return LaggedProgress(
        writer,
        bar,
        log_every=cfg.train.log_every,
        last_step=cfg.train.steps,
        tokens_per_step=trainee.models_per_step * cfg.data.batch_size * spec.tokens_per_example(),
        flops_per_step=flops_per_step,
        peak_flops=peak * jax.device_count() if peak else None,
    )


def _write_model_info(workdir: Path, table: str) -> None:
    path = workdir / "model-info.txt"
    if jax.process_index() == 0:
        path.write_text(table)
    log.info("Parameter shardings (also in %s):\n%s", path, table)


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
