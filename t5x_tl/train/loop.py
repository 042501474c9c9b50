"""The training loop: everything with side effects (data, checkpoints, metrics, signals) lives here.

config -> SeqIO task -> host batches -> global arrays -> jitted ``train_step`` -> metrics and Orbax.
A stop request (Ctrl-C or SIGTERM) finishes the current step, saves, and leaves; the next run resumes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from pathlib import Path

import jax
import seqio
from ml_collections import ConfigDict
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from t5x_tl.config import memory_config, validate
from t5x_tl.data import pretraining_tasks, tasks
from t5x_tl.data.cache import resolve_data_dir
from t5x_tl.data.corpus import CorpusSpec
from t5x_tl.data.curriculum import Curriculum, Level, PlateauRule
from t5x_tl.data.curriculum_batches import CurriculumBatches, level_task
from t5x_tl.data.objectives import objective_sentinels
from t5x_tl.data.pipeline import BatchSpec, TaskBatches, hide_accelerators_from_tensorflow
from t5x_tl.data.pretraining_tasks import variants_by_name
from t5x_tl.data.task_modules import import_task_modules
from t5x_tl.data.text_files import TextFiles, register_text_file_tasks
from t5x_tl.data.vocabularies import EXTRA_IDS
from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config
from t5x_tl.models.kinds import build_model
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.sizes import padded_vocab_size, t5_config
from t5x_tl.platform import compiler_options
from t5x_tl.train import distributed, partitioning
from t5x_tl.train.checkpointing import Checkpointer, pretrained_path, read_params
from t5x_tl.train.evaluation import CurriculumListener, evaluate, global_batch, validation_batches
from t5x_tl.train.flops import peak_flops_per_device, train_step_flops
from t5x_tl.train.metrics import MetricWriter
from t5x_tl.train.model_info import parameter_table
from t5x_tl.train.optimizers import learning_rate_schedule, make_optimizer
from t5x_tl.train.progress import LaggedProgress
from t5x_tl.train.restore import restore_or_init
from t5x_tl.train.state import abstract_model, state_shardings
from t5x_tl.train.step import make_eval_step, make_train_step

log = logging.getLogger("t5x_tl")


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame) -> None:
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


def prepare_workdir(workdir: str | Path) -> Path:
    path = Path(workdir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test_{jax.process_index()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"cannot write to work directory {path} ({error.strerror}); choose a writable --workdir"
        ) from error
    return path


def _curriculum(cfg: ConfigDict) -> Curriculum | None:
    if cfg.curriculum.strategy == "none":
        return None
    c = cfg.curriculum
    return Curriculum(c.strategy, Level(c.length, c.nesting), PlateauRule(c.patience, c.min_delta, c.advance_at))


def _task_name(cfg: ConfigDict) -> str:
    """``data.task``, or the target level's task of a curriculum, or empty for the built-in default."""
    curriculum = _curriculum(cfg)
    return level_task(cfg.curriculum.task, curriculum.target) if curriculum else cfg.data.task


def resolve_task(cfg: ConfigDict) -> tuple[seqio.Task, int]:
    """The task to train on (with a curriculum: validate on) and the targets length (derived for a pretraining
    objective when the config says 0)."""
    import_task_modules(cfg.data.task_modules, "config.data.task_modules")
    task_name = _task_name(cfg)
    text_files = bool(cfg.data.text_files.train or cfg.data.text_files.validation)
    if task_name and text_files:
        raise UserError("config.data.task and config.data.text_files both name the training data: set only one")
    if cfg.data.concatenate_documents and not text_files:
        raise UserError("config.data.concatenate_documents applies to config.data.text_files, which is empty")
    default_data = not (task_name or text_files) and cfg.data.objective == pretraining_tasks.DEFAULT_OBJECTIVE
    if cfg.model.kind != "encoder_decoder" and default_data:
        raise UserError(
            f"config.model.kind={cfg.model.kind!r} needs config.data.task or config.data.objective: the default is "
            "span corruption for an encoder-decoder. Pick an objective that fits, e.g. "
            "--config.data.objective=prefix_lm"
        )
    if task_name:
        key = "curriculum.task" if cfg.curriculum.strategy != "none" else "data.task"
        try:
            task = seqio.get_mixture_or_task(task_name)
        except ValueError as error:
            raise UserError(
                f"config.{key} names {task_name!r}, which is not a registered SeqIO task or mixture; "
                "name the module that registers it in config.data.task_modules"
            ) from error
    else:
        task = seqio.get_mixture_or_task(_objective_task(cfg, text_files))
    return task, _targets_length(cfg, task.name)


def _builtin_data(cfg: ConfigDict) -> tasks.BuiltinData:
    builtin = tasks.BuiltinData(
        corpus=CorpusSpec(**cfg.data.corpus.to_dict()),
        data_dir=resolve_data_dir(cfg.data.cache_dir),
        vocabulary=cfg.data.vocabulary,
        sentencepiece_size=cfg.data.sentencepiece_size,
    )
    try:
        builtin.corpus.validate()
    except ValueError as error:
        raise UserError(f"config.data.corpus: {error}") from error
    return builtin


def _objective_task(cfg: ConfigDict, text_files: bool) -> str:
    """The task of ``data.objective`` over ``data.text_files`` or the built-in corpus (its historical span
    corruption task for the default objective, the same preprocessing under the name older runs recorded)."""
    variants = variants_by_name()
    if cfg.data.objective not in variants:
        raise UserError(f"config.data.objective={cfg.data.objective!r} is unknown: choose one of {sorted(variants)}")
    if not text_files:
        builtin = _builtin_data(cfg)
        if cfg.data.objective == pretraining_tasks.DEFAULT_OBJECTIVE:
            return tasks.builtin_span_corruption_task(builtin).name
        pretraining_tasks.register_builtin_tasks(builtin)
        return f"{pretraining_tasks.builtin_source_name(builtin)}_{cfg.data.objective}"
    objective, params = variants[cfg.data.objective]
    try:
        sentinels = objective_sentinels(objective, params, cfg.data.inputs_length)
    except ValueError as error:
        raise UserError(f"config.data.inputs_length={cfg.data.inputs_length} does not fit: {error}") from error
    try:
        files = TextFiles(
            cfg.data.text_files.train,
            cfg.data.text_files.validation,
            resolve_data_dir(cfg.data.cache_dir),
            vocabulary=cfg.data.vocabulary,
            sentencepiece_size=cfg.data.sentencepiece_size,
            extra_ids=max(EXTRA_IDS, sentinels),
            concatenate=cfg.data.concatenate_documents,
        )
        return f"{register_text_file_tasks(files)}_{cfg.data.objective}"
    except (ValueError, OSError) as error:
        raise UserError(f"config.data.text_files: {error}") from error


def _targets_length(cfg: ConfigDict, task_name: str) -> int:
    """``data.targets_length``, or for a pretraining objective the length it needs when that is 0."""
    try:
        needed = tasks.objective_targets_length(task_name, cfg.data.inputs_length)
    except ValueError as error:
        raise UserError(f"config.data.inputs_length={cfg.data.inputs_length} does not fit: {error}") from error
    if needed is None:
        if not cfg.data.targets_length:
            raise UserError(f"config.data.targets_length must be set for {task_name}, which is not an objective task")
        return cfg.data.targets_length
    if cfg.data.targets_length and cfg.data.targets_length < needed:
        raise UserError(
            f"config.data.targets_length={cfg.data.targets_length} is too short for {task_name} with "
            f"inputs_length={cfg.data.inputs_length}: it needs {needed}; set it to 0 to derive it"
        )
    return cfg.data.targets_length or needed


def model_config(cfg: ConfigDict, vocabulary: seqio.Vocabulary) -> T5Config:
    return t5_config(
        cfg.model.size,
        padded_vocab_size(vocabulary.vocab_size),
        dropout_rate=cfg.model.dropout_rate,
        dtype=cfg.model.dtype,
        param_dtype=cfg.model.param_dtype,
        scan_layers=cfg.model.scan_layers,
        remat_policy=cfg.model.remat_policy,
        attention_impl=cfg.model.attention_impl,
    )


def _host_batch_size(global_batch: int, mesh: jax.sharding.Mesh) -> int:
    shards = partitioning.batch_shards(mesh)
    if global_batch % shards or global_batch % jax.process_count():
        raise UserError(
            f"config.data.batch_size={global_batch} must be divisible by the batch's mesh shards (replica x data x "
            f"fsdp = {shards}) and the number of processes ({jax.process_count()})"
        )
    return global_batch // jax.process_count()


def _mesh(cfg: ConfigDict) -> jax.sharding.Mesh:
    p = cfg.partitioning
    try:
        return partitioning.make_mesh(p.data, p.model, fsdp=p.fsdp, replica=p.replica)
    except ValueError as error:
        raise UserError(
            f"config.partitioning: {error}; set the axes (replica, data, fsdp, model) so their product is "
            f"{jax.device_count()}, e.g. one of them -1"
        ) from error


def _rules(cfg: ConfigDict) -> partitioning.Rules:
    return partitioning.resolve_rules(cfg.partitioning.preset, cfg.partitioning.rules)


def _check_microbatches(global_batch: int, microbatches: int, mesh: jax.sharding.Mesh) -> None:
    shards = partitioning.batch_shards(mesh)
    if global_batch % (microbatches * shards):
        raise UserError(
            f"config.data.batch_size={global_batch} must be divisible by config.train.microbatches={microbatches} "
            f"times the batch's mesh shards ({shards}), so every microbatch spreads over all of them"
        )


def signature(kind: str, model_cfg: T5Config, memory: MemoryConfig | None = None) -> dict:
    """What fixes the parameter tree of a job's model: a checkpoint restores only onto an equal one."""
    extra = {} if memory is None else {"rmt_memory_size": memory.memory_size}
    return {"kind": kind, **model_cfg.shape_signature(), **extra}


def model_record(kind: str, model_cfg: T5Config, memory: MemoryConfig | None) -> dict:
    """What a checkpoint's metadata records of its model, enough to rebuild it (see ``eval.checkpoint_model``)."""
    record = {"model": signature(kind, model_cfg, memory), "model_config": dataclasses.asdict(model_cfg)}
    if memory is not None:
        record["memory_config"] = dataclasses.asdict(memory)
    return record


def _train_batches(cfg: ConfigDict, spec: BatchSpec) -> TaskBatches | CurriculumBatches:
    curriculum = _curriculum(cfg)
    if curriculum is None:
        return TaskBatches(spec)
    try:
        return CurriculumBatches(curriculum, cfg.curriculum.task, spec)
    except ValueError as error:
        raise UserError(f"config.curriculum: {error}") from error


def _host_sharding(setting: str) -> str:
    """``data.host_sharding`` with "auto" resolved: hosts shard the source when there is more than one."""
    if setting != "auto":
        return setting
    return "source" if jax.process_count() > 1 else "examples"


def _host_spec(
    cfg: ConfigDict, task: str, targets_length: int, mesh: jax.sharding.Mesh, split: str, pack: bool
) -> BatchSpec:
    """What this host reads of ``task``'s ``split`` for the config's lengths, batch and model kind."""
    try:
        return BatchSpec(
            task=task,
            split=split,
            inputs_length=cfg.data.inputs_length,
            targets_length=targets_length,
            batch_size=_host_batch_size(cfg.data.batch_size, mesh),
            seed=cfg.seed,
            pack=pack,
            host_index=jax.process_index(),
            num_hosts=jax.process_count(),
            model_kind=cfg.model.kind,
            host_sharding=_host_sharding(cfg.data.host_sharding),
        )
    except ValueError as error:
        raise UserError(f"config.data does not fit config.model.kind: {error}") from error


def _restore_input_position(
    checkpointer: Checkpointer, step: int, saved: dict, batches: TaskBatches | CurriculumBatches
) -> None:
    """Puts the training stream where the checkpoint left it: this host's saved iterator state when the step
    holds one (constant time), else a replay of the batches consumed (same batches, time growing with the step)."""
    try:
        batches.load_state_dict(saved.get("data_state", {"batches": step}))
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


def train(cfg: ConfigDict, workdir: str | Path) -> TrainResult:
    """Runs (or resumes) the job described by ``cfg`` in ``workdir``."""
    validate(cfg)
    distributed.initialize(cfg)
    workdir = prepare_workdir(workdir)
    hide_accelerators_from_tensorflow()
    task, targets_length = resolve_task(cfg)
    model_cfg = model_config(cfg, task.output_features["targets"].vocabulary)
    kind = cfg.model.kind
    memory = memory_config(cfg)
    factory = lambda rngs: build_model(kind, model_cfg, rngs, memory)
    mesh = _mesh(cfg)
    data_sharding = partitioning.batch_sharding(mesh)
    spec = _host_spec(cfg, task.name, targets_length, mesh, "train", cfg.data.pack)
    _check_microbatches(cfg.data.batch_size, cfg.train.microbatches, mesh)
    eval_batches = validation_batches(spec, cfg.train.eval_batches, data_sharding)
    batches = _train_batches(cfg, spec)
    if cfg.checkpoint.init_from:
        pretrained_path(Path(cfg.checkpoint.init_from))
    optimizer = make_optimizer(cfg.optimizer, cfg.train.steps)
    shardings = state_shardings(factory, optimizer, mesh, _rules(cfg))
    checkpointer = Checkpointer(workdir / "checkpoints", cfg.checkpoint.every, cfg.checkpoint.keep)
    state, saved = restore_or_init(checkpointer, signature(kind, model_cfg, memory), cfg, factory, optimizer, shardings)
    start = int(jax.device_get(state.step))
    if saved:
        _restore_input_position(checkpointer, start, saved, batches)

    graphdef, abstract_params = abstract_model(factory)
    _write_model_info(workdir, parameter_table(abstract_params, _rules(cfg), mesh))
    schedule = learning_rate_schedule(cfg.optimizer, cfg.train.steps)
    train_step = jax.jit(
        make_train_step(
            graphdef, optimizer, schedule, cfg.train.z_loss, cfg.seed, kind, cfg.train.microbatches, rules=_rules(cfg)
        ),
        in_shardings=(shardings, data_sharding),
        out_shardings=(shardings, None),
        # Only the state: XLA reuses a donated buffer only for an output of its shape and dtype, and no output is
        # shaped like the batch (donating it gave "Some donated buffers were not usable" for every batch array);
        # the loop holds no reference to a batch after dispatching it, so its memory is freed as soon.
        donate_argnums=0,
        compiler_options=compiler_options(),
    )
    eval_step = jax.jit(
        make_eval_step(graphdef, cfg.train.z_loss, kind, rules=_rules(cfg)),
        in_shardings=(shardings.params, data_sharding),
        compiler_options=compiler_options(),
    )
    record = model_record(kind, model_cfg, memory)
    metadata = lambda step: {
        **record,
        "data_batches": step,
        "task": task.name,
        "data_state": batches.state_dict(),
    }
    writer = MetricWriter(workdir)
    listener = (
        CurriculumListener(batches, cfg.train.eval_batches, data_sharding, writer)
        if (isinstance(batches, CurriculumBatches) and batches.curriculum.listens)
        else None
    )
    tokens_per_step = cfg.data.batch_size * spec.tokens_per_example()
    flops_per_step = train_step_flops(model_cfg, cfg.data.batch_size, spec.inputs_length, targets_length, kind, memory)
    peak = peak_flops_per_device(jax.devices()[0], cfg.model.dtype, cfg.train.peak_flops_per_device)
    stop = StopRequest()
    last_eval: dict[str, float] = {}
    step = start
    try:
        with jax.set_mesh(mesh), logging_redirect_tqdm():
            if start == 0:
                last_eval = evaluate(eval_step, state.params, eval_batches)
                writer.write(0, "validation", last_eval)
                log.info("step 0: validation %s", _fmt(last_eval))
            bar = tqdm(total=cfg.train.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
            progress = LaggedProgress(
                writer,
                bar,
                log_every=cfg.train.log_every,
                last_step=cfg.train.steps,
                tokens_per_step=tokens_per_step,
                flops_per_step=flops_per_step,
                peak_flops=peak * jax.device_count() if peak else None,
            )
            while step < cfg.train.steps and stop.signal is None:
                state, metrics = train_step(state, global_batch(next(batches), data_sharding))
                step += 1
                progress.dispatched(step, metrics)
                if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
                    progress.flush()  # evaluation waits for this step anyway
                    last_eval = evaluate(eval_step, state.params, eval_batches)
                    writer.write(step, "validation", last_eval)
                    log.info("step %d: validation %s", step, _fmt(last_eval))
                    if listener:
                        listener(step, eval_step, state.params)
                checkpointer.save(step, state, metadata(step), batches)  # after the curriculum heard this step's eval
            progress.flush()
            bar.close()
            checkpointer.save(step, state, metadata(step), batches, force=checkpointer.latest_step() != step)
            checkpointer.wait()
            log.info("Saved step %d to %s", step, checkpointer.directory / str(step))
    finally:
        stop.restore()
        batches.close()
        checkpointer.close()
        writer.close()
    return TrainResult(step=step, stopped_by=stop.signal, last_eval=last_eval, data_state=batches.state_dict())


def _write_model_info(workdir: Path, table: str) -> None:
    path = workdir / "model-info.txt"
    if jax.process_index() == 0:
        path.write_text(table)
    log.info("Parameter shardings (also in %s):\n%s", path, table)


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def evaluate_checkpoint(cfg: ConfigDict, workdir: str | Path, split: str = "test") -> dict[str, float]:
    """Teacher-forced loss, token accuracy and sequence accuracy (= greedy exact match) of the newest checkpoint
    in ``workdir`` on the whole ``split`` of the config's task (with a curriculum: the target level's task)."""
    validate(cfg)
    task, targets_length = resolve_task(cfg)
    model_cfg = model_config(cfg, task.output_features["targets"].vocabulary)
    memory = memory_config(cfg)
    factory = lambda rngs: build_model(cfg.model.kind, model_cfg, rngs, memory)
    _, params, saved = read_params(Path(workdir) / "checkpoints")
    if saved.get("model") != signature(cfg.model.kind, model_cfg, memory):
        raise UserError(f"{workdir} holds a checkpoint of another model shape {saved.get('model')}")
    mesh = _mesh(cfg)
    spec = _host_spec(cfg, task.name, targets_length, mesh, split, pack=False)  # an example is a sequence
    batches = validation_batches(spec, None, partitioning.batch_sharding(mesh), split=split)
    eval_step = jax.jit(make_eval_step(abstract_model(factory)[0], cfg.train.z_loss, cfg.model.kind))
    with jax.set_mesh(mesh):
        return evaluate(eval_step, params, batches)
