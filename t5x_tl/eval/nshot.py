"""Zero-, one- and few-shot evaluation: prompts with K demonstrations, answers scored or generated.

Multiple-choice examples (``NShotSpec.choices``, or an example's own ``"choices"`` list) are ranked three ways,
as GPT-3 and its successors do: total log-likelihood of each answer, log-likelihood per answer token, and the
unconditional normalisation ``log P(answer | context) - log P(answer | unconditional context)`` (the answer's
likelihood after a bare "Answer" prompt). Other examples are answered by greedy generation up to the template's
separator and scored by exact match and token F1 (SQuAD's normalisation).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seqio
from tqdm import tqdm

from t5x_tl.data.pipeline import NumpyStream
from t5x_tl.errors import UserError
from t5x_tl.eval import metrics
from t5x_tl.eval.prompts import Example, Template, demonstration_indices, shuffled_labels
from t5x_tl.eval.scoring import Scorer

RANKINGS = ("total", "per_token", "unconditional")


@dataclasses.dataclass(frozen=True)
class NShotSpec:
    shots: tuple[int, ...] = (0, 1, 5)
    seed: int = 0
    template: Template = dataclasses.field(default_factory=Template)
    choices: tuple[str, ...] = ()  # empty: each example's "choices", else free-form generation
    unconditional_context: str = "Answer"
    max_decode_length: int = 32
    shuffle_labels: bool = False  # permute the demonstrations' answers among them (a control)


@dataclasses.dataclass
class ShotResult:
    k: int
    metrics: dict[str, float]
    examples: list[dict]


@dataclasses.dataclass
class NShotReport:
    name: str
    mode: str  # "multiple_choice" or "generation"
    num_examples: int
    results: list[ShotResult]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def markdown(self) -> str:
        names = list(self.results[0].metrics)
        lines = [
            f"# {self.name}: {self.mode}, {self.num_examples} examples",
            "",
            "| K | " + " | ".join(names) + " |",
            "| ---: | " + " | ".join("---:" for _ in names) + " |",
        ]
        lines += [f"| {r.k} | " + " | ".join(f"{r.metrics[n]:.1f}" for n in names) + " |" for r in self.results]
        return "\n".join(lines) + "\n"


def write_report(report: NShotReport, out_dir: Path) -> None:
    """``nshot.json`` (every prompt, answer and score) and ``nshot.md`` (the table) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "nshot.json").write_text(json.dumps(report.to_json(), indent=1))
    (out_dir / "nshot.md").write_text(report.markdown())


def _choices_of(example: Example, spec: NShotSpec) -> tuple[str, ...]:
    choices = tuple(example.get("choices", ())) or spec.choices
    if "choices" in example and not example["choices"]:
        raise UserError(f"an example has an empty answer list: {dict(example)}")
    if len(set(choices)) != len(choices):
        raise UserError(f"answer choices {choices} repeat an answer")
    return choices


def _check(spec: NShotSpec, queries: Sequence[Example], multiple_choice: bool) -> None:
    if not queries:
        raise UserError("there are no examples to evaluate")
    if not spec.shots or any(k < 0 for k in spec.shots):
        raise UserError(f"shots={spec.shots} must list one or more K of 0 or more")
    spec.template.check(list(queries[0]))
    field = spec.template.answer_field
    for example in queries if multiple_choice else ():
        if example[field] not in _choices_of(example, spec):
            raise UserError(f"answer {example[field]!r} is not among the choices {_choices_of(example, spec)}")


def _demonstrations(spec: NShotSpec, k: int, index: int, pool: Sequence[Example], exclude: int | None) -> list[Example]:
    chosen = [pool[i] for i in demonstration_indices(len(pool), k, spec.seed, index, exclude)]
    if spec.shuffle_labels:
        return shuffled_labels(chosen, spec.template.answer_field, spec.seed * 1_000_003 + index)
    return chosen


def _rank(scorer: Scorer, spec: NShotSpec, contexts: list[str], queries: Sequence[Example]) -> tuple[dict, list]:
    template, field = spec.template, spec.template.answer_field
    requests = [(i, c) for i, q in enumerate(queries) for c in _choices_of(q, spec)]
    scored = scorer.log_likelihoods([contexts[i] for i, _ in requests], [template.answer_of(c) for _, c in requests])
    answers = sorted({c for _, c in requests})
    bare = scorer.log_likelihoods([spec.unconditional_context] * len(answers), [template.answer_of(a) for a in answers])
    unconditional = dict(zip(answers, bare[:, 0], strict=True))
    correct = {name: [] for name in RANKINGS}
    records, row = [], 0
    for i, query in enumerate(queries):
        choices = _choices_of(query, spec)
        total, tokens = scored[row : row + len(choices), 0], scored[row : row + len(choices), 1]
        row += len(choices)
        ranked = {
            "total": total,
            "per_token": total / tokens,
            "unconditional": total - np.array([unconditional[c] for c in choices]),
        }
        picks = {name: choices[int(np.argmax(values))] for name, values in ranked.items()}
        for name in RANKINGS:
            correct[name].append(picks[name] == query[field])
        records.append(
            {
                "prompt": contexts[i],
                "target": query[field],
                "predictions": picks,
                "log_likelihoods": dict(zip(choices, total.tolist(), strict=True)),
            }
        )
    return {f"accuracy_{name}": 100 * float(np.mean(hits)) for name, hits in correct.items()}, records


def _generate(scorer: Scorer, spec: NShotSpec, contexts: list[str], queries: Sequence[Example]) -> tuple[dict, list]:
    field = spec.template.answer_field
    stop = spec.template.separator.strip()
    predictions = scorer.continue_greedily(contexts, spec.max_decode_length, stop=stop)
    targets = [[q[field].strip()] for q in queries]
    records = [
        {"prompt": c, "target": t[0], "prediction": p} for c, t, p in zip(contexts, targets, predictions, strict=True)
    ]
    return metrics.squad(targets, predictions), records


def evaluate(
    scorer: Scorer,
    queries: Sequence[Example],
    spec: NShotSpec,
    *,
    pool: Sequence[Example] | None = None,
    pools: Sequence[Sequence[Example]] | None = None,
    name: str = "nshot",
) -> NShotReport:
    """Every K of ``spec.shots`` on ``queries``, demonstrations drawn from ``pool`` (shared; when it is
    ``queries`` itself a query never demonstrates itself) or ``pools`` (one per query, e.g. an episode's own)."""
    if (pool is None) == (pools is None):
        raise ValueError("give exactly one of pool (shared by every query) or pools (one per query)")
    if pools is not None and len(pools) != len(queries):
        raise ValueError(f"{len(pools)} pools for {len(queries)} queries: give one pool per query")
    multiple_choice = bool(spec.choices) or (bool(queries) and "choices" in queries[0])
    _check(spec, queries, multiple_choice)
    results = []
    for k in tqdm(spec.shots, desc=f"{name}: K", unit="K", disable=not scorer.progress):
        contexts = []
        for i, query in enumerate(queries):
            source = pool if pools is None else pools[i]
            exclude = i if source is queries else None
            contexts.append(spec.template.context(_demonstrations(spec, k, i, source, exclude), query))
        scores, records = (_rank if multiple_choice else _generate)(scorer, spec, contexts, queries)
        results.append(ShotResult(k=k, metrics=scores, examples=records))
    mode = "multiple_choice" if multiple_choice else "generation"
    return NShotReport(name=name, mode=mode, num_examples=len(queries), results=results)


def task_examples(task_name: str, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """A SeqIO task's split as text examples (``inputs``, ``targets``: the preprocessed, untokenized text)."""
    try:
        task = seqio.get_mixture_or_task(task_name)
    except ValueError as error:
        raise UserError(f"{task_name!r} is not a registered SeqIO task; import the module that registers it") from error
    if split not in task.splits:
        raise UserError(f"task {task_name!r} has no split {split!r}; it has {tuple(task.splits)}")
    dataset = task.get_dataset(None, split=split, shuffle=False, num_epochs=1, try_in_mem_cache=False)
    if limit is not None:
        dataset = dataset.take(limit)
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
    examples = [
        {"inputs": text(e["inputs_pretokenized"]), "targets": text(e["targets_pretokenized"])}
        for e in NumpyStream(dataset)
    ]
    if not examples:
        raise UserError(f"split {split!r} of task {task_name!r} has no examples")
    return examples
