"""In-context learning shown, not assumed: accuracy against the number of demonstrations K on held-out mappings.

For each seed a small decoder-only model trains on ``icl_mappings`` (every sequence a fresh letter -> label
mapping: ``configs/in_context_learning.py``); then, for every task of the mixture, N-shot evaluation ranks the
labels of held-out mappings' queries after K demonstrations from the query's own mapping, and again with the
demonstrations' labels shuffled among them. With no demonstration a label is a guess (chance is 1 / labels);
if the model learnt to use its context, accuracy rises with K, and shuffled labels take that away.

Each seed's run is an ordinary training job in ``<study_dir>/runs/seed<k>``, reused when finished and resumed
when stopped; ``study.json`` guards the directory against another config.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from ml_collections import ConfigDict

from t5x_tl.data.downstream import icl_mappings
from t5x_tl.errors import UserError
from t5x_tl.eval import nshot
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.eval.scoring import Scorer
from t5x_tl.experiments.charts import chart
from t5x_tl.experiments.study_files import claim_study_dir, mean_and_std, write_results
from t5x_tl.experiments.study_runs import run_or_reuse

log = logging.getLogger("t5x_tl")
RANKING = "accuracy_total"


def check_study(study: ConfigDict) -> None:
    """Raises UserError naming an empty seed list, a bad K, or a pool too small for the largest K."""
    if not study.seeds:
        raise UserError("config.seeds must name at least one seed")
    if not study.shots or min(study.shots) < 0:
        raise UserError(f"config.shots={tuple(study.shots)} must list one or more K of 0 or more")
    if max(study.shots) > study.pool_size:
        raise UserError(f"config.shots reach K={max(study.shots)} but config.pool_size={study.pool_size}; raise it")
    if study.split not in ("validation", "test"):
        raise UserError(f"config.split={study.split!r} must be 'validation' or 'test' (held-out mappings)")
    if study.eval_episodes < 1:
        raise UserError(f"config.eval_episodes={study.eval_episodes} must be at least 1")


def evaluate_run(study: ConfigDict, workdir: Path) -> dict:
    """Accuracy by K, with and without shuffled labels, on every task of the mixture."""
    _, model = load_model(workdir)
    scorer = Scorer(model, icl_mappings.VOCABULARY, batch_size=study.batch_size)
    scores = {}
    for spec in icl_mappings.DEFAULT_SPECS:
        queries, pools = icl_mappings.episodes(spec, study.split, study.eval_episodes, study.pool_size)
        for shuffled in (False, True):
            nshot_spec = nshot.NShotSpec(
                shots=tuple(study.shots), template=icl_mappings.TEMPLATE, choices=spec.choices, shuffle_labels=shuffled
            )
            report = nshot.evaluate(scorer, queries, nshot_spec, pools=pools, name=spec.name)
            scores[f"{spec.name}/{'shuffled' if shuffled else 'true'}"] = {r.k: r.metrics for r in report.results}
    return scores


def _run_seed(study: ConfigDict, study_dir: Path, seed: int) -> dict:
    workdir = study_dir / "runs" / f"seed{seed}"
    cfg = copy.deepcopy(study.train)
    cfg.seed = seed
    return run_or_reuse(workdir, cfg, lambda trained, seconds: {"seed": seed, "scores": evaluate_run(study, workdir)})


def summarise(study: ConfigDict, runs: list[dict]) -> list[dict]:
    """One row per task and K: mean and standard deviation over seeds, with true and shuffled labels."""
    rows = []
    for spec in icl_mappings.DEFAULT_SPECS:
        for k in study.shots:
            row = {"task": spec.name, "labels": spec.labels, "k": k, "chance": round(100 / spec.labels, 1)}
            for labels in ("true", "shuffled"):
                values = [run["scores"][f"{spec.name}/{labels}"][str(k)][RANKING] for run in runs]
                row[f"{labels}_mean"], row[f"{labels}_std"] = mean_and_std(values)
            row["seeds"] = len(runs)
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | K | accuracy, true labels (%) | accuracy, shuffled labels (%) | chance (%) | seeds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['k']} | {r['true_mean']:.1f} ± {r['true_std']:.1f} | "
            f"{r['shuffled_mean']:.1f} ± {r['shuffled_std']:.1f} | {r['chance']:.1f} | {r['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy against K per task: true labels solid, shuffled dashed, chance dotted."""
    with chart(path, (6, 4)) as ax:
        for index, task in enumerate(dict.fromkeys(r["task"] for r in rows)):
            mine = [r for r in rows if r["task"] == task]
            ks = [r["k"] for r in mine]
            color = f"C{index}"
            ax.errorbar(ks, [r["true_mean"] for r in mine], [r["true_std"] for r in mine], color=color, label=task)
            ax.plot(ks, [r["shuffled_mean"] for r in mine], "--", color=color, label=f"{task}, shuffled labels")
            ax.axhline(mine[0]["chance"], linestyle=":", color=color)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("demonstrations K")
        ax.set_ylabel("accuracy on held-out mappings (%)")
        ax.legend(fontsize=7)


def run_study(study: ConfigDict, study_dir: str | Path) -> list[dict]:
    """Trains and evaluates every seed (reusing finished ones) and writes results.{md,csv,json} and icl.png."""
    study_dir = Path(study_dir).expanduser()
    check_study(study)
    claim_study_dir(study, study_dir)
    runs = []
    for seed in study.seeds:
        log.info("in-context learning study: seed %d", seed)
        runs.append(_run_seed(study, study_dir, seed))
    rows = summarise(study, runs)
    write_results(study_dir, runs, rows, markdown(rows))
    plot(rows, study_dir / "icl.png")
    return rows
