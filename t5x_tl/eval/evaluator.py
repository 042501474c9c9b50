"""Evaluation by decoding: a SeqIO task's split -> greedy predictions -> the task's postprocessor and metrics.

Predictions come from the cached greedy decoder in fixed-size batches (the last one padded, so one program
serves the whole split), are detokenized with the task's vocabulary up to EOS, and are scored as SeqIO scores
them: ``task.postprocess_fn`` on predictions (``is_target=False``) and on the pretokenized targets
(``is_target=True``), then every one of the task's prediction metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
import seqio
from flax import nnx
from tqdm import tqdm

from t5x_tl.data.pipeline import NumpyStream
from t5x_tl.errors import UserError
from t5x_tl.models import decoding


@dataclasses.dataclass(frozen=True)
class Evaluation:
    task: str
    split: str
    metrics: dict[str, float]
    examples: list[dict[str, str]]  # inputs, target and prediction text, in split order


def _until_eos(tokens: np.ndarray) -> list[int]:
    ends = np.flatnonzero(tokens == decoding.EOS_ID)
    return tokens[: ends[0] if ends.size else len(tokens)].tolist()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def evaluate(
    model: nnx.Module,
    task_name: str,
    *,
    inputs_length: int,
    max_decode_length: int,
    split: str = "validation",
    batch_size: int = 32,
    num_examples: int | None = None,
) -> Evaluation:
    """Decodes ``split`` of ``task_name`` greedily with ``model`` and scores it with the task's metrics."""
    try:
        task = seqio.get_mixture_or_task(task_name)
    except ValueError as error:
        raise UserError(f"{task_name!r} is not a registered SeqIO task; import the module that registers it") from error
    if not task.predict_metric_fns:
        raise UserError(f"task {task_name!r} has no prediction metrics to evaluate with")
    if split not in task.splits:
        raise UserError(f"task {task_name!r} has no split {split!r}; it has {tuple(task.splits)}")
    lengths = {"inputs": inputs_length, "targets": max_decode_length}
    dataset = task.get_dataset(lengths, split=split, shuffle=False, num_epochs=1)
    if num_examples is not None:
        dataset = dataset.take(num_examples)
    examples = list(NumpyStream(dataset))
    if not examples:
        raise UserError(f"split {split!r} of task {task_name!r} has no examples")
    vocabulary = task.output_features["targets"].vocabulary
    texts: list[str] = []
    for start in tqdm(range(0, len(examples), batch_size), desc=f"decode {task_name}", unit="batch"):
        chunk = examples[start : start + batch_size]
        prompts = np.zeros((batch_size, inputs_length), np.int32)
        for row, example in enumerate(chunk):
            prompts[row, : len(example["inputs"])] = example["inputs"]
        tokens = np.asarray(decoding.greedy_decode(model, jnp.asarray(prompts), max_decode_length))
        texts += [vocabulary.decode(_until_eos(row)) for row in tokens[: len(chunk)]]
    targets = [task.postprocess_fn(_text(e["targets_pretokenized"]), example=e, is_target=True) for e in examples]
    predictions = [task.postprocess_fn(t, example=e, is_target=False) for t, e in zip(texts, examples, strict=True)]
    metrics: dict[str, float] = {}
    for metric_fn in task.predict_metric_fns:
        metrics.update({name: float(value) for name, value in metric_fn(targets, predictions).items()})
    shown = [
        {"inputs": _text(e["inputs_pretokenized"]), "target": _text(e["targets_pretokenized"]), "prediction": t}
        for e, t in zip(examples, texts, strict=True)
    ]
    return Evaluation(task=task_name, split=split, metrics=metrics, examples=shown)
