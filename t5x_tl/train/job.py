"""A training job's config turned into what the loop runs: its work directory, task and lengths, model, mesh,
sharding rules and this host's share of the batches.

A mistake in the config surfaces here as a UserError naming the key, before a batch is read or any state made,
so the loop (:mod:`t5x_tl.train.loop`) only runs what this module resolved.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import seqio
from ml_collections import ConfigDict

from t5x_tl.config import memory_config, model_config
from t5x_tl.data.cache import resolve_data_dir
from t5x_tl.data.corpus.documents import CorpusSpec
from t5x_tl.data.curriculum.batches import CurriculumBatches, level_task
from t5x_tl.data.curriculum.strategies import Curriculum, Level, PlateauRule
from t5x_tl.data.features import ENCODER_DECODER
from t5x_tl.data.objectives.preprocessors import objective_sentinels
from t5x_tl.data.pipeline import BatchSpec, TaskBatches
from t5x_tl.data.task_modules import import_task_modules
from t5x_tl.data.tasks import builtin as tasks
from t5x_tl.data.tasks import pretraining as pretraining_tasks
from t5x_tl.data.tasks.pretraining import variants_by_name
from t5x_tl.data.tasks.text_files import TextFiles, register_text_file_tasks
from t5x_tl.data.vocabularies import EXTRA_IDS
from t5x_tl.errors import UserError
from t5x_tl.models.registry import model_kind
from t5x_tl.train import partitioning
from t5x_tl.train.checkpoint_record import ModelSpec


@dataclasses.dataclass(frozen=True)
class Job:
    """What :func:`resolve_job` made of a config: the task (with a curriculum: the target level's), its targets
    length, the model, the mesh with its sharding rules, and this host's batches of one split."""

    task: seqio.Task
    targets_length: int
    model: ModelSpec
    mesh: jax.sharding.Mesh
    rules: partitioning.Rules
    spec: BatchSpec

    @property
    def data_sharding(self) -> jax.sharding.NamedSharding:
        return partitioning.batch_sharding(self.mesh)


def resolve_job(cfg: ConfigDict, split: str, pack: bool) -> Job:
    """The job of a validated ``cfg`` reading ``split`` (packed or not); registers the tasks it names."""
    task, targets_length = resolve_task(cfg)
    vocab_size = task.output_features["targets"].vocabulary.vocab_size
    model = ModelSpec(model_kind(cfg.model.kind), model_config(cfg, vocab_size), memory_config(cfg))
    mesh = _mesh(cfg)
    rules = partitioning.resolve_rules(cfg.partitioning.preset, cfg.partitioning.rules)
    return Job(task, targets_length, model, mesh, rules, _host_spec(cfg, task.name, targets_length, mesh, split, pack))


def prepare_workdir(workdir: str | Path) -> Path:
    """``workdir``, created and probed for writing (by every process), so that a read-only or mistyped path fails
    at start-up rather than at the first checkpoint."""
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
    if model_kind(cfg.model.kind).features != ENCODER_DECODER and default_data:
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


def check_microbatches(global_batch: int, microbatches: int, mesh: jax.sharding.Mesh) -> None:
    """Refuses a split of the batch into microbatches that would leave some of the batch's mesh shards idle."""
    shards = partitioning.batch_shards(mesh)
    if global_batch % (microbatches * shards):
        raise UserError(
            f"config.data.batch_size={global_batch} must be divisible by config.train.microbatches={microbatches} "
            f"times the batch's mesh shards ({shards}), so every microbatch spreads over all of them"
        )


def train_batches(cfg: ConfigDict, spec: BatchSpec) -> TaskBatches | CurriculumBatches:
    """This host's training stream: the task's batches, or a curriculum's drawn level by level."""
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
            features=model_kind(cfg.model.kind).features,
            host_sharding=_host_sharding(cfg.data.host_sharding),
        )
    except ValueError as error:
        raise UserError(f"config.data does not fit config.model.kind: {error}") from error
