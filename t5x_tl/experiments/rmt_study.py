"""What the memory of a Recurrent Memory Transformer does, shown with controls.

For each memory task and seed, the same tiny T5 trains on inputs of N segments (the fact in the first or
anywhere before the last, the question at the end of the last) as five variants:

- ``rmt``: memory carried across segments (``configs/rmt_memorize.py``);
- ``no_memory``: the same segments without memory (the decoder sees only the last segment): chance expected;
- ``full_attention``: the plain backbone over the whole input in one segment: the oracle;
- ``bptt_1``: gradients truncated at every segment, so no segment learns to write for a later one;
- ``no_write``: the memory is never updated.

Every variant is scored on held-out examples by its answer (one token; chance is 1 / choices). The ``rmt`` runs
are also scored with the memory reset at evaluation (chance expected), with the memories of the last segment
swapped between examples (predictions should follow the donor's fact: reported as the share of rows whose
prediction is the donor's answer where the two answers differ), and on inputs of 2N segments.

Each run is an ordinary training job under ``<study_dir>/runs/<task>/<variant>/seed<k>``, reused when finished
and resumed when stopped; ``study.json`` guards the directory against another config.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import seqio
from flax import nnx
from ml_collections import ConfigDict

from t5x_tl.data.memory import tasks as memory_tasks
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.experiments.charts import chart
from t5x_tl.experiments.study_files import claim_study_dir, mean_and_std, write_results
from t5x_tl.experiments.study_runs import run_or_reuse
from t5x_tl.models.rmt import RecurrentMemory

log = logging.getLogger("t5x_tl")
ANSWER_TASKS = ("memorize", "detect", "reasoning", "retrieval", "long_document")  # one-token answers
VARIANTS = ("rmt", "no_memory", "full_attention", "bptt_1", "no_write")
# variant -> overrides of the RMT job
_OVERRIDES = {
    "rmt": {},
    "no_memory": {"model.rmt.memory_size": 0},
    "full_attention": {"model.rmt.segment_size": 0},
    "bptt_1": {"model.rmt.bptt_depth": 1},
    "no_write": {"model.rmt.write": False},
}


def check_study(study: ConfigDict) -> None:
    """Raises UserError naming an unknown task or variant, an empty list, or too few evaluation examples."""
    if not study.seeds:
        raise UserError("config.seeds must name at least one seed")
    unknown = sorted(set(study.tasks) - set(ANSWER_TASKS))
    if unknown or not study.tasks:
        raise UserError(f"config.tasks={tuple(study.tasks)}: choose from {ANSWER_TASKS}")
    unknown = sorted(set(study.variants) - set(VARIANTS))
    if unknown or "rmt" not in study.variants:
        raise UserError(f"config.variants={tuple(study.variants)} must include 'rmt' and come from {VARIANTS}")
    if not 2 <= study.eval_examples <= memory_tasks.EVAL_EXAMPLES:
        raise UserError(f"config.eval_examples={study.eval_examples} must be in 2..{memory_tasks.EVAL_EXAMPLES}")


def _spec(study: ConfigDict, task: str, segments: int) -> memory_tasks.MemoryTaskSpec:
    return memory_tasks.MemoryTaskSpec(
        task, segments=segments, segment_size=study.train.model.rmt.segment_size, choices=study.choices
    )


def job_config(study: ConfigDict, task: str, variant: str, seed: int) -> ConfigDict:
    """The training job of one run: the study's RMT job on ``task`` with the variant's overrides."""
    cfg = copy.deepcopy(study.train)
    spec = _spec(study, task, cfg.model.rmt.max_segments)
    cfg.seed = seed
    cfg.data.task = memory_tasks.register(spec)
    cfg.data.inputs_length = spec.inputs_length
    cfg.data.targets_length = spec.targets_length
    for key, value in _OVERRIDES[variant].items():
        section, *rest = key.split(".")
        node = cfg[section]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
    return cfg


def held_out(spec: memory_tasks.MemoryTaskSpec, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` validation examples: inputs ``count x L`` (EOS included) and their one-token answers."""
    task = seqio.get_mixture_or_task(memory_tasks.register(spec))
    lengths = {"inputs": spec.inputs_length, "targets": spec.targets_length}
    dataset = task.get_dataset(lengths, split="validation", shuffle=False, num_epochs=1)
    rows = list(itertools.islice(dataset.as_numpy_iterator(), count))
    inputs = np.zeros((len(rows), spec.inputs_length), np.int32)
    for i, row in enumerate(rows):
        inputs[i, : len(row["inputs"])] = row["inputs"]
    return inputs, np.array([row["targets"][0] for row in rows], np.int32)


def predict(model: nnx.Module, inputs: np.ndarray, batch_size: int, *, swap: bool = False, **controls) -> np.ndarray:
    """The first decoded token of every row (greedy: decoded from the start token alone). ``swap`` gives each
    row's last segment the memory of the next row of its batch (cyclically); ``controls`` go to the model."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def first_token(state, tokens, permutation):
        options = dict(controls, memory_permutation=permutation) if swap else controls
        logits = nnx.merge(graphdef, state)(tokens, jnp.zeros((tokens.shape[0], 1), jnp.int32), **options)
        return logits[:, 0].argmax(-1)

    predictions = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        rows = len(batch)
        permutation = np.where(np.arange(batch_size) < rows, (np.arange(batch_size) + 1) % rows, 0)
        batch = np.pad(batch, [(0, batch_size - rows), (0, 0)])
        predictions.append(np.asarray(first_token(state, batch, jnp.asarray(permutation)))[:rows])
    return np.concatenate(predictions)


def _donors(answers: np.ndarray, batch_size: int) -> np.ndarray:
    """Row i's donor under ``predict(swap=True)``: the next row of its batch, cyclically."""
    index = np.arange(len(answers))
    start = index // batch_size * batch_size
    size = np.minimum(batch_size, len(answers) - start)
    return answers[start + (index - start + 1) % size]


def evaluate_run(study: ConfigDict, task: str, variant: str, workdir: Path) -> dict:
    """Answer accuracy (%) on N and 2N segments; for ``rmt``, also with the memory reset and swapped."""
    _, model = load_model(workdir)
    segments = study.train.model.rmt.max_segments
    batch = study.eval_batch_size
    inputs, answers = held_out(_spec(study, task, segments), study.eval_examples)
    scores = {"accuracy": 100 * float((predict(model, inputs, batch) == answers).mean())}
    long_inputs, long_answers = held_out(_spec(study, task, 2 * segments), study.eval_examples)
    if isinstance(model, RecurrentMemory):
        model.memory_config = dataclasses.replace(model.memory_config, max_segments=2 * segments)
    scores["accuracy_2n"] = 100 * float((predict(model, long_inputs, batch) == long_answers).mean())
    if variant == "rmt":
        model.memory_config = dataclasses.replace(model.memory_config, max_segments=segments)
        reset = predict(model, inputs, batch, reset_memory=True)
        scores["accuracy_reset"] = 100 * float((reset == answers).mean())
        swapped, donors = predict(model, inputs, batch, swap=True), _donors(answers, batch)
        differ = donors != answers
        scores["swap_follows_donor"] = 100 * float((swapped == donors)[differ].mean())
        scores["swap_keeps_own"] = 100 * float((swapped == answers)[differ].mean())
    return scores


def _run(study: ConfigDict, study_dir: Path, task: str, variant: str, seed: int) -> dict:
    workdir = study_dir / "runs" / task / variant / f"seed{seed}"
    identity = {"task": task, "variant": variant, "seed": seed}
    score = lambda trained, seconds: {**identity, **evaluate_run(study, task, variant, workdir)}
    return run_or_reuse(workdir, job_config(study, task, variant, seed), score)


METRICS = ("accuracy", "accuracy_2n", "accuracy_reset", "swap_follows_donor", "swap_keeps_own")


def summarise(study: ConfigDict, runs: list[dict]) -> list[dict]:
    """One row per task and variant: mean and standard deviation over seeds of every score it has."""
    rmt = study.train.model.rmt
    rows = []
    for task in study.tasks:
        for variant in study.variants:
            mine = [r for r in runs if r["task"] == task and r["variant"] == variant]
            full = variant == "full_attention"
            row = {
                "task": task,
                "model": variant,
                "segment_size": study.train.data.inputs_length if full else rmt.segment_size,
                "memory_size": 0 if variant in ("no_memory", "full_attention") else rmt.memory_size,
                "n_segments": 1 if full else rmt.max_segments,
                "chance": round(100 * _spec(study, task, rmt.max_segments).chance, 1),
            }
            for metric in METRICS:
                values = [r[metric] for r in mine if metric in r]
                row[f"{metric}_mean"], row[f"{metric}_std"] = mean_and_std(values) if values else (None, None)
            row["seeds"] = len(mine)
            rows.append(row)
    return rows


def _cell(row: dict, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return "" if mean is None else f"{mean:.1f} ± {std:.1f}"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | model | segment_size | memory_size | n_segments | accuracy (%) | at 2N segments (%) | "
        "memory reset (%) | swapped: follows donor (%) | swapped: keeps own (%) | chance (%) | seeds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = " | ".join(_cell(r, metric) for metric in METRICS)
        lines.append(
            f"| {r['task']} | {r['model']} | {r['segment_size']} | {r['memory_size']} | {r['n_segments']} | "
            f"{cells} | {r['chance']:.1f} | {r['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy of every variant per task, chance dotted."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.8 / len(variants)
    with chart(path, (7, 4)) as ax:
        for index, variant in enumerate(variants):
            mine = [next(r for r in rows if r["task"] == t and r["model"] == variant) for t in tasks]
            ax.bar(
                np.arange(len(tasks)) + index * width,
                [r["accuracy_mean"] for r in mine],
                width,
                yerr=[r["accuracy_std"] for r in mine],
                label=variant,
            )
        ax.axhline(rows[0]["chance"], linestyle=":", color="black", label="chance")
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
        ax.set_ylabel("answer accuracy on held-out examples (%)")
        ax.legend(fontsize=7)


def run_study(study: ConfigDict, study_dir: str | Path) -> list[dict]:
    """Trains and evaluates every run (reusing finished ones) and writes results.{md,csv,json} and rmt.png."""
    study_dir = Path(study_dir).expanduser()
    check_study(study)
    claim_study_dir(study, study_dir)
    runs = []
    for task, variant, seed in itertools.product(study.tasks, study.variants, study.seeds):
        log.info("RMT study: %s, %s, seed %d", task, variant, seed)
        runs.append(_run(study, study_dir, task, variant, seed))
    rows = summarise(study, runs)
    write_results(study_dir, runs, rows, markdown(rows))
    plot(rows, study_dir / "rmt.png")
    return rows
