"""Multi-task learning on a low-resource task helped by a related high-resource one: does sharing beat training
on the low-resource task alone?

Methods, each trained for the same number of steps with the same number of low-resource examples per step:

- ``single_task``: the low-resource task alone (the training loop);
- ``hard_sharing``: one text-to-text model on a SeqIO mixture of both tasks (the training loop; ``mixing``
  picks the T5 study's rate: equal, examples-proportional with a cap, or temperature-scaled);
- ``hard_then_finetune``: the T5 paper's schedule, ``hard_sharing`` fine-tuned on the low-resource task;
- ``shared_encoder``: a shared encoder (and embedding) with task-specific decoders (:mod:`t5x_tl.train.task_pair`);
- ``soft_l2`` / ``soft_kl``: one model per task, coupled by an L2 penalty between their parameters, or a KL
  penalty between their output distributions.

Each is scored on the low-resource task's validation split by its metric (greedy decoding). Every method,
the paired ones too, is a run of the training loop in ``<study_dir>/runs/<method>/seed<k>``: finished runs are
reused, a stopped or killed one resumes from its last checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import seqio
from flax import nnx
from ml_collections import ConfigDict

from t5x_tl.data.cache import resolve_data_dir
from t5x_tl.data.corpus.documents import CorpusSpec
from t5x_tl.data.downstream.transfer import register_transfer_tasks
from t5x_tl.data.mixtures import register_mixture
from t5x_tl.data.tasks.builtin import BuiltinData
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.eval.evaluator import evaluate
from t5x_tl.experiments.charts import chart
from t5x_tl.experiments.study_files import claim_study_dir, mean_and_std, write_results
from t5x_tl.experiments.study_runs import run_or_reuse
from t5x_tl.train.loop import TrainResult
from t5x_tl.train.pair_trainee import TaskPair, task_model
from t5x_tl.train.task_pair import Coupling
from t5x_tl.train.trainee import ONE_MODEL

LOOP_METHODS = ("single_task", "hard_sharing", "hard_then_finetune")
PAIR_METHODS = ("shared_encoder", "soft_l2", "soft_kl")
METHODS = LOOP_METHODS + PAIR_METHODS


@dataclasses.dataclass(frozen=True)
class Tasks:
    low: str
    high: str
    mixture: str


def check_study(study: ConfigDict) -> None:
    """Raises UserError naming an unknown method, an empty seed list or a bad size."""
    unknown = [m for m in study.methods if m not in METHODS]
    if unknown or not study.methods:
        raise UserError(f"config.methods={tuple(study.methods)} is invalid: choose from {METHODS}")
    if "single_task" not in study.methods:
        raise UserError("config.methods must include 'single_task': every method is compared with it")
    if "hard_then_finetune" in study.methods and "hard_sharing" not in study.methods:
        raise UserError("config.methods has hard_then_finetune without hard_sharing, the run it fine-tunes")
    if not study.seeds:
        raise UserError("config.seeds must name at least one seed")
    for key in ("low_resource_examples", "high_resource_examples", "eval_examples", "finetune_steps"):
        if study[key] < 1:
            raise UserError(f"config.{key}={study[key]} must be at least 1")


def register_tasks(study: ConfigDict) -> Tasks:
    """The two tasks and their mixture (by ``study.mixing``), registered once."""
    data = _builtin_data(study.train)
    low, high = register_transfer_tasks(
        data, study.low_resource_examples, study.high_resource_examples, study.eval_examples
    )
    mixing = study.mixing
    name = f"{low}_with_{high.removeprefix('synthetic_')}_{mixing.strategy}_c{mixing.cap}_t{mixing.temperature:g}"
    name = name.replace(".", "p")
    if name not in seqio.MixtureRegistry.names():
        try:
            register_mixture(name, [low, high], mixing.strategy, cap=mixing.cap or None, temperature=mixing.temperature)
        except ValueError as error:
            raise UserError(f"config.mixing: {error}") from error
    return Tasks(low, high, name)


def _builtin_data(cfg: ConfigDict) -> BuiltinData:
    return BuiltinData(
        corpus=CorpusSpec(**cfg.data.corpus.to_dict()),
        data_dir=resolve_data_dir(cfg.data.cache_dir),
        vocabulary=cfg.data.vocabulary,
        sentencepiece_size=cfg.data.sentencepiece_size,
    )


def run_config(study: ConfigDict, tasks: Tasks, method: str, seed: int, study_dir: Path) -> ConfigDict:
    """The training job of ``method``: per step, ``train.data.batch_size`` low-resource examples (a pair also
    reads as many of the high-resource task)."""
    cfg = copy.deepcopy(study.train)
    cfg.seed = seed
    cfg.data.task = tasks.low
    if method == "hard_sharing":
        cfg.data.task = tasks.mixture
        cfg.data.batch_size *= 2  # with equal mixing, as many low-resource examples per step as the others
    if method == "hard_then_finetune":
        cfg.train.steps = study.finetune_steps
        cfg.checkpoint.init_from = str(study_dir / "runs" / "hard_sharing" / f"seed{seed}")
    return cfg


def coupling(study: ConfigDict, method: str) -> Coupling:
    if method == "shared_encoder":
        return Coupling(tied=("token_embed", "encoder"))
    if method == "soft_l2":
        return Coupling(penalty="l2", coefficient=study.l2_coefficient)
    return Coupling(penalty="kl", coefficient=study.kl_coefficient)


def _score(study: ConfigDict, tasks: Tasks, model: nnx.Module) -> dict[str, float]:
    data = study.train.data
    scored = evaluate(
        model,
        tasks.low,
        inputs_length=data.inputs_length,
        max_decode_length=data.targets_length,
        split="validation",
        batch_size=study.eval_batch_size,
    )
    return scored.metrics


def run_method(study: ConfigDict, tasks: Tasks, method: str, seed: int, study_dir: Path) -> dict:
    """Trains (or reuses, or resumes) one method at one seed and scores it on the low-resource task."""
    workdir = study_dir / "runs" / method / f"seed{seed}"
    cfg = run_config(study, tasks, method, seed, study_dir)
    if method in LOOP_METHODS:
        trainee, trained_model = ONE_MODEL, lambda: load_model(workdir)[1]
    else:
        trainee, trained_model = TaskPair(coupling(study, method), tasks.high), lambda: task_model(workdir)

    def score(trained: TrainResult, seconds: float) -> dict:
        return {"method": method, "seed": seed, "metrics": _score(study, tasks, trained_model()), "seconds": seconds}

    return run_or_reuse(workdir, cfg, score, trainee)


def summarise(study: ConfigDict, runs: list[dict]) -> list[dict]:
    """One row per method: the metric's mean and spread over seeds, and the change against single-task
    training paired by seed."""
    metric = study.metric
    single = {r["seed"]: r["metrics"][metric] for r in runs if r["method"] == "single_task"}
    rows = []
    for method in study.methods:
        mine = [r for r in runs if r["method"] == method]
        mean, std = mean_and_std([r["metrics"][metric] for r in mine])
        delta, delta_std = mean_and_std([r["metrics"][metric] - single[r["seed"]] for r in mine])
        wins = sum(r["metrics"][metric] > single[r["seed"]] for r in mine)
        row = {"method": method, f"{metric}_mean": mean, f"{metric}_std": std, "vs_single_task": delta}
        rows.append({**row, "vs_single_task_std": delta_std, "seeds_beating_single_task": wins, "seeds": len(mine)})
    return rows


def markdown(study: ConfigDict, tasks: Tasks, rows: list[dict]) -> str:
    metric = study.metric
    lines = [
        f"Low-resource task {tasks.low} ({study.low_resource_examples} training examples), helped by {tasks.high} "
        f"({study.high_resource_examples}); {metric} on {study.eval_examples} validation examples.",
        "",
        f"| method | {metric} | vs single-task | seeds beating single-task | seeds |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        single = r["method"] == "single_task"
        change = "" if single else f"{r['vs_single_task']:+.1f} ± {r['vs_single_task_std']:.1f}"
        wins = "" if single else r["seeds_beating_single_task"]
        lines.append(
            f"| {r['method']} | {r[f'{metric}_mean']:.1f} ± {r[f'{metric}_std']:.1f} | {change} | {wins} | "
            f"{r['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def plot(study: ConfigDict, rows: list[dict], path: Path) -> None:
    metric = study.metric
    names = [r["method"] for r in rows]
    with chart(path, (6, 3.5)) as ax:
        ax.bar(names, [r[f"{metric}_mean"] for r in rows], yerr=[r[f"{metric}_std"] for r in rows], color="C0")
        ax.axhline(rows[names.index("single_task")][f"{metric}_mean"], linestyle=":", color="k")
        ax.set_ylabel(f"{metric}, low-resource task")
        ax.tick_params(axis="x", labelrotation=30)


def run_study(study: ConfigDict, study_dir: str | Path) -> list[dict]:
    """Runs every method x seed (reusing finished runs) and writes results.{md,csv,json} and multitask.png."""
    study_dir = Path(study_dir).expanduser()
    check_study(study)
    tasks = register_tasks(study)
    claim_study_dir(study, study_dir)
    methods = [m for m in METHODS if m in study.methods]  # hard_sharing before the fine-tune of it
    runs = [run_method(study, tasks, m, s, study_dir) for s in study.seeds for m in methods]
    rows = summarise(study, runs)
    write_results(study_dir, runs, rows, markdown(study, tasks, rows))
    plot(study, rows, study_dir / "multitask.png")
    return rows
