"""The objective study's table (objective x task, plus the average), its chart, and how its ranking compares
with the T5 paper's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict

from t5x_tl.experiments.charts import chart
from t5x_tl.experiments.study_files import mean_and_std

NO_PRETRAINING = "no_pretraining"
SPAN_OBJECTIVES = ("iid_replace_spans_d15", "random_spans_d15_s3")
CORRUPTION_RATES = ("iid_replace_spans_d10", "iid_replace_spans_d15", "iid_replace_spans_d25", "iid_replace_spans_d50")
SPAN_LENGTHS = ("random_spans_d15_s2", "random_spans_d15_s3", "random_spans_d15_s5", "random_spans_d15_s10")
# The seven objectives of the paper's Tables 3 and 4, at their default parameters.
PAPER_OBJECTIVES = ("prefix_lm", "bert_style_d15", "deshuffling", "mass_style_d15", "iid_replace_spans_d15",
                    "iid_drop_tokens_d15", "random_spans_d15_s3")  # fmt: skip


def downstream(label: str, inputs_length: int, targets_length: int, metrics: tuple[str, ...]) -> ConfigDict:
    """A study's downstream column: the task's label, SeqIO lengths and the metrics averaged into its score."""
    return ConfigDict(dict(label=label, inputs_length=inputs_length, targets_length=targets_length, metrics=metrics))


def _averages(study: ConfigDict, results: Sequence[dict]) -> dict[tuple[str, int], float]:
    """(objective, seed) -> the mean score over the study's tasks, where every task has a result."""
    scores: dict[tuple[str, int], dict[str, float]] = {}
    for r in results:
        if "task" in r:
            scores.setdefault((r["objective"], r["seed"]), {})[r["task"]] = r["score"]
    return {key: float(np.mean(list(s.values()))) for key, s in scores.items() if set(s) == set(study.tasks)}


def summarise(study: ConfigDict, results: Sequence[dict]) -> list[dict]:
    """One row per objective (no pretraining first): each task's score and the average, mean and spread over
    seeds, and the average's change against no pretraining, paired by seed."""
    averages = _averages(study, results)
    rows = []
    for objective in (NO_PRETRAINING, *study.objectives):
        row: dict[str, object] = {"objective": objective}
        for task in study.tasks:
            row[task], row[f"{task}_std"] = mean_and_std(
                [r["score"] for r in results if r.get("task") == task and r["objective"] == objective]
            )
        seeds = [seed for seed in study.seeds if (objective, seed) in averages]
        row["average"], row["average_std"] = mean_and_std([averages[(objective, s)] for s in seeds])
        change = [averages[(objective, s)] - averages[(NO_PRETRAINING, s)] for s in seeds
                  if (NO_PRETRAINING, s) in averages]  # fmt: skip
        row["vs_no_pretraining"], row["vs_no_pretraining_std"] = mean_and_std(change)
        row["seeds_above_no_pretraining"] = sum(c > 0 for c in change)
        row["seeds"] = len(seeds)
        pretraining = [r["seconds"] for r in results if "task" not in r and r["objective"] == objective]
        row["pretrain_minutes"] = float(np.mean(pretraining)) / 60 if pretraining else 0.0
        rows.append(row)
    return rows


def _cell(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def paper_comparison(rows: Sequence[dict]) -> list[str]:
    """Where the study's ranking agrees with the paper's and where it does not (only for rows it has)."""
    average = {r["objective"]: r["average"] for r in rows}
    verdict = lambda agrees: "agrees" if agrees else "DIFFERS"
    lines = []
    pretrained = [r for r in rows if r["objective"] != NO_PRETRAINING]
    margins = [r["vs_no_pretraining"] for r in pretrained]
    if margins and NO_PRETRAINING in average:
        all_seeds = all(r["seeds_above_no_pretraining"] == r["seeds"] for r in pretrained)
        lines.append(
            "- pretraining matters (paper: every objective beats no pretraining): "
            f"{verdict(min(margins) > 0 and all_seeds)}"
            f"; the smallest gain in the average is {min(margins):+.1f} points"
            f" ({'on every seed' if all_seeds else 'not on every seed'})"
        )
    seven = [o for o in PAPER_OBJECTIVES if o in average]
    if "deshuffling" in seven and len(seven) > 1:
        ranked = sorted(seven, key=average.get)
        lines.append(f"- deshuffling last of the objectives (paper: last by far): {verdict(ranked[0] == 'deshuffling')}"
                     f"; last here is {ranked[0]} ({average[ranked[0]]:.1f})")  # fmt: skip
    if "bert_style_d15" in average and "prefix_lm" in average:
        gap = average["bert_style_d15"] - average["prefix_lm"]
        lines.append(f"- BERT-style above prefix LM (paper: above): {verdict(gap > 0)}, by {gap:+.1f} points")
    spans = [o for o in SPAN_OBJECTIVES if o in seven]
    if spans and len(seven) > len(spans):
        best = max(seven, key=average.get)
        lines.append(f"- a span objective at the top (paper: replace spans and random spans among the best): "
                     f"{verdict(best in spans)}; the best here is {best} ({average[best]:.1f})")  # fmt: skip
    for family, worst, what in ((CORRUPTION_RATES, "iid_replace_spans_d50", "corruption rate 50%"),
                                (SPAN_LENGTHS, "random_spans_d15_s10", "span length 10")):  # fmt: skip
        present = [o for o in family if o in average]
        if worst in present and len(present) > 1:
            lowest = min(present, key=average.get)
            lines.append(f"- {what} the lowest of its variants (paper: the lowest): {verdict(lowest == worst)}; "
                         f"lowest here is {lowest} ({average[lowest]:.1f})")  # fmt: skip
    return lines


def markdown(study: ConfigDict, rows: Sequence[dict], results: Sequence[dict]) -> str:
    labels = [study.tasks[task].label or task for task in study.tasks]
    lines = [
        "| objective | " + " | ".join(labels) + " | average | vs no pretraining | seeds |",
        "| --- | " + " | ".join("---:" for _ in labels) + " | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = [_cell(r[task], r[f"{task}_std"]) for task in study.tasks]
        change = f"{r['vs_no_pretraining']:+.1f} ± {r['vs_no_pretraining_std']:.1f}"
        change = "" if r["objective"] == NO_PRETRAINING else change
        lines.append(f"| {r['objective']} | " + " | ".join(cells)
                     + f" | {_cell(r['average'], r['average_std'])} | {change} | {r['seeds']} |")  # fmt: skip
    metrics = "; ".join(f"{study.tasks[t].label or t}: {' + '.join(study.tasks[t].metrics)}" for t in study.tasks)
    lines += [
        "",
        f"Mean ± sample standard deviation over seeds; {study.eval_split} split, greedy decoding. Scores: {metrics}",
        "(several metrics are averaged, as GLUE's are). The change against no pretraining is paired by seed.",
        "",
        "Against the paper's ranking:",
        *paper_comparison(rows),
    ]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], path: Path) -> None:
    """The average score of every objective with its spread, against the no-pretraining baseline."""
    pretrained = [r for r in rows if r["objective"] != NO_PRETRAINING]
    with chart(path, (6.4, 1.2 + 0.32 * len(pretrained))) as axes:
        y = np.arange(len(pretrained))[::-1]
        axes.barh(y, [r["average"] for r in pretrained], xerr=[r["average_std"] for r in pretrained], capsize=3)
        baseline = next((r for r in rows if r["objective"] == NO_PRETRAINING), None)
        if baseline is not None:
            axes.axvline(baseline["average"], color="black", linestyle="--", linewidth=1, label="no pretraining")
            axes.legend(frameon=False, fontsize="small", loc="lower right")
        axes.set_yticks(y, [r["objective"] for r in pretrained])
        axes.set_xlabel("average downstream score")
        axes.set_title("Pretraining objectives")
