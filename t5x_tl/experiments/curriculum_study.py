"""The curriculum study of "Learning to Execute": every strategy x target level x seed, trained for the same
budget, scored on the target level's test split, tabulated and charted against the baseline strategy.

Each run is an ordinary training job in ``<study_dir>/runs/<target>/<strategy>/seed<k>``; a finished run leaves
``result.json`` and is reused, a killed one resumes from its last checkpoint, so rerunning the same command
continues a stopped study. ``study.json`` records the study's config: a directory holding another study is
refused rather than mixed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict
from tqdm import tqdm

from t5x_tl.data.curriculum.execute import tasks
from t5x_tl.data.curriculum.strategies import STRATEGIES, Level
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_eval import evaluate_checkpoint
from t5x_tl.experiments.charts import chart
from t5x_tl.experiments.study_files import claim_study_dir, mean_and_std, write_results
from t5x_tl.experiments.study_runs import run_or_reuse
from t5x_tl.train.loop import TrainResult

log = logging.getLogger("t5x_tl")
_LENGTH_SAMPLES = 5000  # train examples read to size the features, besides the whole evaluation sets


@dataclasses.dataclass(frozen=True)
class Run:
    target: Level
    strategy: str
    seed: int

    def directory(self, study_dir: Path, family: str) -> Path:
        name = tasks.task_name(family, self.target.length, self.target.nesting)
        return study_dir / "runs" / name / self.strategy / f"seed{self.seed}"


def check_study(study: ConfigDict) -> None:
    """Raises UserError naming a bad family, target, strategy or empty seed list."""
    unknown = [s for s in study.strategies if s not in STRATEGIES]
    if unknown or not study.strategies:
        raise UserError(f"config.strategies={tuple(study.strategies)} is invalid: choose from {STRATEGIES}")
    if "baseline" not in study.strategies:
        raise UserError("config.strategies must include 'baseline': the chart is relative to it")
    if not study.seeds or not study.targets:
        raise UserError("config.seeds and config.targets must each name at least one")
    for length, nesting in study.targets:
        try:
            tasks.check_level(study.family, length, nesting)
        except ValueError as error:
            raise UserError(f"config.targets: {error}") from error


def feature_lengths(family: str, target: Level) -> tuple[int, int]:
    """Input and target lengths that hold the target level's evaluation sets and a sample of its training
    stream (with EOS), rounded up to multiples of 8; lower levels are shorter."""
    streams = [itertools.islice(tasks.examples(family, target.length, target.nesting, split, 0), n)
               for split, n in (("train", _LENGTH_SAMPLES), ("validation", tasks.EVAL_EXAMPLES),
                                ("test", tasks.EVAL_EXAMPLES))]  # fmt: skip
    examples = list(itertools.chain(*streams))
    round_up = lambda n: 8 * math.ceil((n + 1) / 8)
    return round_up(max(len(e.code) for e in examples)), round_up(max(len(e.output) for e in examples))


def run_config(study: ConfigDict, run: Run) -> ConfigDict:
    """The training job of one run: the study's ``train`` config with the run's curriculum and seed."""
    cfg = copy.deepcopy(study.train)
    family, target = study.family, run.target
    cfg.seed = run.seed
    cfg.curriculum.strategy = run.strategy
    cfg.curriculum.task = "lte_program_l{length}_n{nesting}" if family == "program" else f"lte_{family}_l{{length}}"
    cfg.curriculum.length, cfg.curriculum.nesting = target.length, target.nesting
    cfg.data.inputs_length, cfg.data.targets_length = feature_lengths(family, target)
    return cfg


def _score(cfg: ConfigDict, run: Run, workdir: Path, trained: TrainResult, seconds: float) -> dict:
    """The run's teacher-forced accuracy on the target level's test split, and where its curriculum went."""
    test = evaluate_checkpoint(cfg, workdir, split="test")
    return {
        "target": [run.target.length, run.target.nesting],
        "strategy": run.strategy,
        "seed": run.seed,
        "character_accuracy": 100 * test["accuracy"],
        "sequence_accuracy": 100 * test["sequence_accuracy"],
        "test_loss": test["loss"],
        "steps": trained.step,
        "seconds": seconds,
        "curriculum": trained.data_state["curriculum"],
    }


def _run(study: ConfigDict, run: Run, study_dir: Path) -> dict:
    workdir, cfg = run.directory(study_dir, study.family), run_config(study, run)
    return run_or_reuse(workdir, cfg, functools.partial(_score, cfg, run, workdir))


def summarise(results: Sequence[dict]) -> list[dict]:
    """Per target and strategy: means and spread over seeds, and the per-character change against the
    baseline of the same seed (paired, in points)."""
    rows = []
    key = lambda r: (tuple(r["target"]), r["strategy"])
    by_key = {k: list(group) for k, group in itertools.groupby(sorted(results, key=key), key=key)}
    for (target, strategy), group in by_key.items():
        baseline = {r["seed"]: r["character_accuracy"] for r in by_key.get((target, "baseline"), [])}
        change = [r["character_accuracy"] - baseline[r["seed"]] for r in group if r["seed"] in baseline]
        char = mean_and_std([r["character_accuracy"] for r in group])
        seq = mean_and_std([r["sequence_accuracy"] for r in group])
        vs_baseline = mean_and_std(change) if change else (float("nan"), 0.0)
        rows.append(
            {
                "length": target[0],
                "nesting": target[1],
                "strategy": strategy,
                "seeds": len(group),
                "character_accuracy": char[0],
                "character_accuracy_std": char[1],
                "sequence_accuracy": seq[0],
                "sequence_accuracy_std": seq[1],
                "vs_baseline": vs_baseline[0],
                "vs_baseline_std": vs_baseline[1],
                "minutes_per_run": float(np.mean([r["seconds"] for r in group])) / 60,
            }
        )
    order = {s: i for i, s in enumerate(STRATEGIES)}
    return sorted(rows, key=lambda r: (r["length"], r["nesting"], order[r["strategy"]]))


def wins(results: Sequence[dict], better: str, worse: str) -> dict[tuple[int, int], tuple[int, int]]:
    """Per target: on how many seeds ``better`` beat ``worse`` in per-character accuracy, out of how many."""
    score = {(tuple(r["target"]), r["strategy"], r["seed"]): r["character_accuracy"] for r in results}
    counts: dict[tuple[int, int], tuple[int, int]] = {}
    for target, strategy, seed in score:
        if strategy == better and (target, worse, seed) in score:
            won, total = counts.get(target, (0, 0))
            counts[target] = (won + (score[(target, better, seed)] > score[(target, worse, seed)]), total + 1)
    return counts


def markdown(rows: Sequence[dict], results: Sequence[dict]) -> str:
    lines = [
        "| length | nesting | strategy | per-character accuracy (%) | per-sequence accuracy (%) "
        "| vs baseline (char, points) | seeds | minutes per run |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['length']} | {r['nesting']} | {r['strategy']} "
            f"| {r['character_accuracy']:.1f} ± {r['character_accuracy_std']:.1f} "
            f"| {r['sequence_accuracy']:.1f} ± {r['sequence_accuracy_std']:.1f} "
            f"| {r['vs_baseline']:+.1f} ± {r['vs_baseline_std']:.1f} | {r['seeds']} | {r['minutes_per_run']:.1f} |"
        )
    lines.append("")
    lines.append("Mean ± sample standard deviation over seeds; test split of the target level; the change against")
    lines.append("the baseline is paired by seed. Per-character accuracy is teacher-forced, as in the paper;")
    lines.append("per-sequence accuracy is exact match (equal to greedy decoding's).")
    for target, (won, total) in sorted(wins(results, "combined", "naive").items()):
        lines.append(f"- combined beats naive at (length {target[0]}, nesting {target[1]}) on {won} of {total} seeds")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], path: Path) -> None:
    """The course's chart: per-character accuracy of each strategy relative to the baseline, per target."""
    targets = sorted({(r["length"], r["nesting"]) for r in rows})
    strategies = [s for s in STRATEGIES if s != "baseline" and any(r["strategy"] == s for r in rows)]
    with chart(path, (1.8 + 1.6 * len(targets), 3.6)) as axes:
        width = 0.8 / max(len(strategies), 1)
        for i, strategy in enumerate(strategies):
            cells = [next((r for r in rows if (r["length"], r["nesting"]) == t and r["strategy"] == strategy), None)
                     for t in targets]  # fmt: skip
            x = np.arange(len(targets)) + (i - (len(strategies) - 1) / 2) * width
            axes.bar(x, [c["vs_baseline"] if c else 0 for c in cells], width,
                     yerr=[c["vs_baseline_std"] if c else 0 for c in cells], capsize=3, label=strategy)  # fmt: skip
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_xticks(np.arange(len(targets)), [f"length {a}\nnesting {b}" for a, b in targets])
        axes.set_ylabel("per-character accuracy\nminus baseline (points)")
        axes.set_title("Curriculum strategies against the baseline")
        axes.legend(frameon=False, fontsize="small")


def run_study(study: ConfigDict, study_dir: str | Path) -> list[dict]:
    """Runs (or continues) every run of ``study`` and writes results.{json,csv,md} and the chart."""
    check_study(study)
    study_dir = Path(study_dir).expanduser()
    claim_study_dir(study, study_dir)
    runs = [
        Run(Level(*target), strategy, seed)
        for target in study.targets
        for seed in study.seeds
        for strategy in study.strategies
    ]
    results = []
    for run in tqdm(runs, desc="curriculum study", unit="run"):
        log.info("run %s", run)
        results.append(_run(study, run, study_dir))
    rows = summarise(results)
    write_results(study_dir, results, rows, markdown(rows, results))
    plot(rows, study_dir / "relative_to_baseline.png")
    return rows
