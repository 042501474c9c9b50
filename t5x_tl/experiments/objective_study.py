"""The T5 objective study: pretrain the same model with each objective (and its corruption-rate and span-length
variants) for the same number of steps, fine-tune a copy on every downstream task, score each with the task's
metric, and tabulate objective x task with the average, beside a model fine-tuned with no pretraining.

Every run is an ordinary training job: ``<study_dir>/pretrain/<objective>/seed<k>`` and
``<study_dir>/finetune/<objective>/<task>/seed<k>`` (``no_pretraining`` for the baseline row). A finished run
leaves ``result.json`` (a fine-tune also ``predictions.jsonl``, what it decoded) and is reused; a killed one
resumes from its last checkpoint; so rerunning the same command continues a stopped study. ``study.json``
records the config, and a directory of another study is refused. With ``workers > 1`` runs go to that many
processes, each fine-tune as soon as its pretraining ends.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from multiprocessing import get_context
from pathlib import Path

import jax
import seqio
from ml_collections import ConfigDict
from tqdm import tqdm

from t5x_tl.data.objectives.preprocessors import objective_lengths, objective_sentinels
from t5x_tl.data.task_modules import import_task_modules
from t5x_tl.data.tasks.pretraining import variants_by_name
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.eval.evaluator import evaluate
from t5x_tl.experiments import objective_tables
from t5x_tl.experiments.objective_tables import NO_PRETRAINING
from t5x_tl.experiments.study_files import claim_study_dir, read_result, write_jsonl, write_results
from t5x_tl.experiments.study_runs import RESULT, RunStopped, run_or_reuse
from t5x_tl.train.loop import TrainResult

COMPILATION_CACHE = "compilation_cache"
PREDICTIONS = "predictions.jsonl"  # each fine-tune's scored examples: inputs, target, greedy prediction


@dataclasses.dataclass(frozen=True)
class Job:
    """A pretraining (``task`` None) or the fine-tuning of ``objective``'s pretrained model on ``task``."""

    objective: str
    seed: int
    task: str | None = None

    def directory(self, study_dir: Path) -> Path:
        if self.task is None:
            return study_dir / "pretrain" / self.objective / f"seed{self.seed}"
        return study_dir / "finetune" / self.objective / self.task / f"seed{self.seed}"

    @property
    def pretraining(self) -> Job | None:
        """The job this one starts from, if any."""
        if self.task is None or self.objective == NO_PRETRAINING:
            return None
        return Job(self.objective, self.seed)


def check_study(study: ConfigDict) -> None:
    """Raises UserError naming an unknown objective or task, a task without lengths or metrics, or an empty
    list; imports the task modules the configs name."""
    known = variants_by_name()
    unknown = [name for name in study.objectives if name not in known]
    if unknown or not study.objectives:
        raise UserError(f"config.objectives has unknown objectives {unknown}: choose from {sorted(known)}")
    if not study.seeds or not study.tasks:
        raise UserError("config.seeds and config.tasks must each name at least one")
    if study.workers < 1:
        raise UserError(f"config.workers={study.workers} is invalid: it must be a positive integer")
    import_task_modules(study.pretrain.data.task_modules, "config.pretrain.data.task_modules")
    import_task_modules(study.finetune.data.task_modules, "config.finetune.data.task_modules")
    for name in study.objectives:
        _check_sentinels(study, name)
    for name, task in study.tasks.items():
        try:
            registered = seqio.get_mixture_or_task(name)
        except ValueError as error:
            raise UserError(
                f"config.tasks names {name!r}, which is not a registered SeqIO task; name the module that "
                "registers it in config.finetune.data.task_modules"
            ) from error
        if task.inputs_length < 1 or task.targets_length < 1:
            raise UserError(f"config.tasks.{name}: inputs_length and targets_length must be positive")
        reported = _metric_names(registered, study.eval_split)
        if not task.metrics or not set(task.metrics) <= reported:
            raise UserError(
                f"config.tasks.{name}.metrics={tuple(task.metrics)} is invalid: name the metrics averaged into its "
                f"score, from the {sorted(reported)} the task reports"
            )


def _check_sentinels(study: ConfigDict, objective: str) -> None:
    """Raises UserError if an example of ``objective`` may need more sentinels than its task's vocabulary has."""
    vocabulary = seqio.get_mixture_or_task(pretraining_task(study, objective)).output_features["targets"].vocabulary
    name, params = variants_by_name()[objective]
    inputs_length = study.pretrain.data.inputs_length
    try:
        needed = objective_sentinels(name, params, inputs_length)
    except ValueError as error:
        raise UserError(f"config.pretrain.data.inputs_length: {error}") from error
    if needed > vocabulary.extra_ids:
        raise UserError(
            f"objective {objective} with config.pretrain.data.inputs_length={inputs_length} may need {needed} "
            f"sentinels, but the vocabulary of {pretraining_task(study, objective)} has extra_ids="
            f"{vocabulary.extra_ids}: shorten the inputs, drop the objective, or register its tasks with a "
            f"vocabulary of at least {needed} extra ids"
        )


def _metric_names(task: seqio.Task, split: str) -> set[str]:
    """The names ``task``'s metrics report, found by scoring one example of ``split`` against itself."""
    if split not in task.splits:
        raise UserError(f"config.eval_split={split!r}: task {task.name!r} has splits {tuple(task.splits)}")
    dataset = task.get_dataset(None, split=split, shuffle=False, num_epochs=1, try_in_mem_cache=False)
    example = next(dataset.take(1).as_numpy_iterator())
    text = example["targets_pretokenized"].decode("utf-8")
    target = task.postprocess_fn(text, example=example, is_target=True)
    prediction = task.postprocess_fn(text, example=example, is_target=False)
    return {name for metric_fn in task.predict_metric_fns for name in metric_fn([target], [prediction])}


def pretraining_task(study: ConfigDict, objective: str) -> str:
    """``<corpus>_<objective>``, which must be registered (the built-in corpus's are on import)."""
    name = f"{study.corpus}_{objective}"
    if name not in seqio.TaskRegistry.names():
        raise UserError(
            f"no pretraining task {name!r} for config.corpus={study.corpus!r}; register the objectives over it "
            "(t5x_tl.data.tasks.pretraining.register_objective_tasks) in config.pretrain.data.task_modules"
        )
    return name


def pretrain_config(study: ConfigDict, objective: str, seed: int) -> ConfigDict:
    """The study's pretraining job on ``objective``, its targets as long as the objective needs."""
    cfg = copy.deepcopy(study.pretrain)
    cfg.seed = seed
    cfg.data.task = pretraining_task(study, objective)
    name, params = variants_by_name()[objective]
    cfg.data.targets_length = objective_lengths(name, params, cfg.data.inputs_length)[1]
    return cfg


def finetune_config(study: ConfigDict, job: Job, study_dir: Path) -> ConfigDict:
    """The study's fine-tuning job on ``job.task``, from the pretrained parameters of ``job.objective``."""
    cfg = copy.deepcopy(study.finetune)
    cfg.seed = job.seed
    cfg.data.task = job.task
    cfg.data.inputs_length = study.tasks[job.task].inputs_length
    cfg.data.targets_length = study.tasks[job.task].targets_length
    if job.pretraining is not None:
        cfg.checkpoint.init_from = str(job.pretraining.directory(study_dir))
    return cfg


def _pretraining_result(cfg: ConfigDict, job: Job, trained: TrainResult, seconds: float) -> dict:
    return {
        "objective": job.objective,
        "seed": job.seed,
        "steps": trained.step,
        "tokens": trained.step * cfg.data.batch_size * cfg.data.inputs_length,
        "targets_length": cfg.data.targets_length,
        "validation_loss": trained.last_eval["loss"],
        "validation_accuracy": trained.last_eval["accuracy"],
        "seconds": seconds,
    }


def _finetune_result(study: ConfigDict, job: Job, study_dir: Path, trained: TrainResult, seconds: float) -> dict:
    """The fine-tune's score on ``study.eval_split``, its decoded examples kept beside its checkpoints."""
    start = time.perf_counter()
    _, model = load_model(job.directory(study_dir))
    task = study.tasks[job.task]
    scored = evaluate(
        model,
        job.task,
        inputs_length=task.inputs_length,
        max_decode_length=task.targets_length,
        split=study.eval_split,
        batch_size=study.eval_batch_size,
        num_examples=study.eval_examples or None,
    )
    write_jsonl(job.directory(study_dir) / PREDICTIONS, scored.examples)
    return {
        "objective": job.objective,
        "task": job.task,
        "seed": job.seed,
        "metrics": scored.metrics,
        "score": sum(scored.metrics[name] for name in task.metrics) / len(task.metrics),
        "examples": len(scored.examples),
        "steps": trained.step,
        "seconds": seconds,
        "eval_seconds": time.perf_counter() - start,
    }


def run_job(study: ConfigDict, job: Job, study_dir: Path) -> dict:
    """Runs (or reuses, or resumes) one job; RunStopped when a signal stops it (its checkpoint is saved)."""
    if job.task is None:
        cfg = pretrain_config(study, job.objective, job.seed)
        score = functools.partial(_pretraining_result, cfg, job)
    else:
        cfg = finetune_config(study, job, study_dir)
        score = functools.partial(_finetune_result, study, job, study_dir)
    return run_or_reuse(job.directory(study_dir), cfg, score)


def jobs(study: ConfigDict) -> list[Job]:
    """Every job, each pretraining before the fine-tunes that start from it."""
    order: list[Job] = []
    for seed in study.seeds:
        order += [Job(NO_PRETRAINING, seed, task) for task in study.tasks]
        for objective in study.objectives:
            order.append(Job(objective, seed))
            order += [Job(objective, seed, task) for task in study.tasks]
    return order


@contextlib.contextmanager
def compilation_cache(directory: Path) -> Iterator[None]:
    """XLA's persistent cache in ``directory`` while the study runs: its runs compile the same few programs
    (one per task and seed), which otherwise costs every run several seconds."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    previous = {key: getattr(jax.config, key) for key in keys}
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    try:
        yield
    finally:
        for key, value in previous.items():
            jax.config.update(key, value)


def _worker_start(cache: Path) -> None:
    """A worker leaves Ctrl-C to the training job it runs (which saves a checkpoint and stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from t5x_tl.console import configure_logging
    from t5x_tl.host_allocator import keep_freed_host_memory

    configure_logging()
    keep_freed_host_memory()
    compilation_cache(cache).__enter__()  # for the worker's lifetime


def _run_in_processes(
    study: ConfigDict, todo: Sequence[Job], study_dir: Path, finished: Callable[[dict], None]
) -> None:
    """Runs ``todo`` on ``study.workers`` processes, a fine-tune once its pretraining is done. A stopped job
    stops the submitting; the running ones finish or save, then its RunStopped is raised."""
    waiting = list(todo)
    done = {job for job in jobs(study) if job not in waiting}  # finished before this call
    running: dict[futures.Future, Job] = {}
    stopped: RunStopped | None = None
    spawn, cache = get_context("spawn"), (study_dir / COMPILATION_CACHE,)
    with futures.ProcessPoolExecutor(study.workers, spawn, initializer=_worker_start, initargs=cache) as pool:
        try:
            while waiting or running:
                for job in [j for j in waiting if j.pretraining is None or j.pretraining in done]:
                    if stopped:
                        break
                    waiting.remove(job)
                    running[pool.submit(run_job, study, job, study_dir)] = job
                if not running:
                    break
                ready, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in ready:
                    job = running.pop(future)
                    try:
                        finished(future.result())
                        done.add(job)
                    except RunStopped as stop:
                        stopped = stopped or stop
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)  # running jobs save their checkpoints first
            raise
    if stopped:
        raise stopped


def _run(study: ConfigDict, todo: Iterable[Job], study_dir: Path, finished: Callable[[dict], None]) -> None:
    for job in todo:
        finished(run_job(study, job, study_dir))


def run_study(study: ConfigDict, study_dir: str | Path) -> list[dict]:
    """Runs (or continues) every job of ``study``; writes results.{json,csv,md} and the chart."""
    study_dir = Path(study_dir).expanduser()
    check_study(study)
    claim_study_dir(study, study_dir)
    every = jobs(study)
    results = [r for job in every if (r := read_result(job.directory(study_dir) / RESULT)) is not None]
    todo = [job for job in every if not (job.directory(study_dir) / RESULT).exists()]
    bar = tqdm(total=len(every), initial=len(every) - len(todo), desc="objective study", unit="run")

    def finished(result: dict) -> None:
        results.append(result)
        bar.update(1)

    with compilation_cache(study_dir / COMPILATION_CACHE), contextlib.closing(bar):
        (_run_in_processes if study.workers > 1 else _run)(study, todo, study_dir, finished)
    rows = objective_tables.summarise(study, results)
    write_results(study_dir, results, rows, objective_tables.markdown(study, rows, results))
    objective_tables.plot(rows, study_dir / "objective_study.png")
    return rows
