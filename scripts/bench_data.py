"""Span-corruption input-pipeline throughput, next to the rate at which the T5-small training step consumes it.

The pipeline is the built-in span-corruption task (default corpus and cache folder) read through
``t5x_tl.data.pipeline.numpy_batches`` on one host, unpacked and packed, at inputs 512 / targets 114: rows
(feature-converted examples) per second, the source examples they hold, and non-padding tokens per second,
counted over ``--seconds`` after ``--warmup`` seconds. The training step is the one ``scripts/bench_train_step.py``
times (``t5x_tl.benchmarking``: T5 v1.1 small at the task's vocabulary, AdamW, float32), median of ``--steps``
steps after compilation.

    python scripts/bench_data.py --seconds=20 --out=/tmp/bench_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from t5x_tl.benchmarking import median_seconds, synthetic_batch, t5x_tl_train_step
from t5x_tl.data.pipeline import BatchSpec, hide_accelerators_from_tensorflow, numpy_batches
from t5x_tl.data.tasks.builtin import BuiltinData, builtin_span_corruption_task
from t5x_tl.models.sizes import padded_vocab_size, t5_config


def pipeline_rates(spec: BatchSpec, seconds: float, warmup_s: float) -> dict[str, float]:
    """Rows, source examples and non-padding tokens per second of ``numpy_batches(spec)`` in steady state."""
    batches = numpy_batches(spec)
    start = time.perf_counter()
    next(batches)  # builds the corpus and vocabulary on first use, traces the tf.functions, fills the buffers
    first_batch_s = time.perf_counter() - start
    warm = time.perf_counter() + warmup_s
    while time.perf_counter() < warm:
        next(batches)
    rows = examples = tokens = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        batch = next(batches)
        inputs, targets = batch["encoder_input_tokens"], batch["decoder_target_tokens"]
        rows += len(inputs)
        examples += int(batch["encoder_segment_ids"].max(axis=1).sum()) if spec.pack else len(inputs)
        tokens += int(np.count_nonzero(inputs) + np.count_nonzero(targets))
    capacity = rows * (spec.inputs_length + spec.targets_length)
    return {
        "first_batch_s": first_batch_s,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "examples_per_s": examples / elapsed,
        "examples_per_row": examples / rows,
        "tokens_per_s": tokens / elapsed,
        "token_fill": tokens / capacity,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=114)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="bench_data.json")
    args = parser.parse_args()

    hide_accelerators_from_tensorflow()
    task = builtin_span_corruption_task(BuiltinData())
    pipeline = {}
    for name, pack in (("unpacked", False), ("packed", True)):
        spec = BatchSpec(task.name, "train", args.inputs, args.targets, args.batch, seed=0, pack=pack)
        pipeline[name] = pipeline_rates(spec, args.seconds, args.warmup)

    vocab_size = padded_vocab_size(task.output_features["targets"].vocabulary.vocab_size)
    cfg = t5_config(args.size, vocab_size)
    batch = synthetic_batch(cfg, args.batch, args.inputs, args.targets)
    step_s = median_seconds(t5x_tl_train_step(cfg, batch), args.steps)
    step_rows_per_s = args.batch / step_s
    result = {
        "config": vars(args),
        "task": task.name,
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0]),
        "pipeline": pipeline,
        "train_step": {"size": args.size, "vocab_size": vocab_size, "step_s": step_s, "rows_per_s": step_rows_per_s},
        "feed_ratio": {name: rates["rows_per_s"] / step_rows_per_s for name, rates in pipeline.items()},
    }

    print(f"span corruption {args.inputs}/{args.targets}, batch {args.batch}, one host, {os.cpu_count()} CPUs")
    print(f"{'':10}{'rows/s':>10}{'examples/s':>12}{'ex/row':>8}{'tokens/s':>12}{'fill':>7}{'first batch s':>15}")
    for name, rates in pipeline.items():
        print(
            f"{name:10}{rates['rows_per_s']:10.0f}{rates['examples_per_s']:12.0f}{rates['examples_per_row']:8.2f}"
            f"{rates['tokens_per_s']:12.0f}{rates['token_fill']:7.1%}{rates['first_batch_s']:15.1f}"
        )
    print(
        f"T5 v1.1 {args.size} step (vocab {vocab_size}, {result['device']}): {step_s:.3f} s, "
        f"{step_rows_per_s:.1f} rows/s"
    )
    for name, ratio in result["feed_ratio"].items():
        print(f"{name}: pipeline feeds the T5-{args.size} step {ratio:.0f}x over")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
