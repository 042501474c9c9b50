"""Learning-to-Execute data throughput: the program generator, its SeqIO tasks, and curriculum batches, next
to the rate at which the tiny T5 training step of configs/learning_to_execute.py consumes them.

Rates are counted over ``--seconds`` after one warm-up batch, on one host. The training step is the one
``scripts/bench_train_step.py`` times (``t5x_tl.benchmarking``) at the byte vocabulary and the study's feature
lengths (median of ``--steps``).

    python scripts/bench_curriculum_data.py --seconds=5 --out=/tmp/bench_curriculum_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import seqio

from t5x_tl.benchmarking import median_seconds, synthetic_batch, t5x_tl_train_step
from t5x_tl.data.curriculum.batches import CurriculumBatches
from t5x_tl.data.curriculum.execute import programs, tasks
from t5x_tl.data.curriculum.strategies import Curriculum, Level
from t5x_tl.data.pipeline import BatchSpec, hide_accelerators_from_tensorflow
from t5x_tl.experiments.curriculum_study import feature_lengths
from t5x_tl.models.sizes import padded_vocab_size, t5_config


def _rate(next_item: Callable[[], object], seconds: float, items_per_call: int = 1) -> float:
    next_item()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        next_item()
        count += items_per_call
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=2)
    parser.add_argument("--nesting", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="bench_curriculum_data.json")
    args = parser.parse_args()
    hide_accelerators_from_tensorflow()
    target = Level(args.length, args.nesting)
    inputs_length, targets_length = feature_lengths("program", target)

    rng = np.random.default_rng(0)
    rates = {"generator programs/s": _rate(lambda: programs.program(rng, args.length, args.nesting), args.seconds)}
    split_stream = tasks.examples("program", args.length, args.nesting, "train", 0)
    rates["train-split programs/s"] = _rate(lambda: next(split_stream), args.seconds)
    lengths = {"inputs": inputs_length, "targets": targets_length}
    dataset = seqio.get_mixture_or_task(tasks.task_name("program", *vars(target).values())).get_dataset(
        lengths, split="train", shuffle=False, seed=0
    )
    examples: Iterator = dataset.as_numpy_iterator()
    rates["SeqIO task examples/s"] = _rate(lambda: next(examples), args.seconds)
    spec = BatchSpec("", "train", inputs_length, targets_length, args.batch, seed=0, pack=False)
    for strategy in ("baseline", "combined"):
        batches = CurriculumBatches(Curriculum(strategy, target), "lte_program_l{length}_n{nesting}", spec)
        rates[f"{strategy} curriculum examples/s"] = _rate(batches.__next__, args.seconds, args.batch)
        batches.close()

    cfg = t5_config("tiny", padded_vocab_size(tasks.VOCABULARY.vocab_size))
    batch = synthetic_batch(cfg, args.batch, inputs_length, targets_length)
    step_s = median_seconds(t5x_tl_train_step(cfg, batch), args.steps)
    consumed = args.batch / step_s

    print(f"Learning to Execute, target length {args.length} nesting {args.nesting}, {os.cpu_count()} CPUs")
    for name, rate in rates.items():
        print(f"{name:34}{rate:10.0f}")
    print(f"tiny T5 step ({inputs_length}/{targets_length}, batch {args.batch}): {step_s * 1000:.0f} ms, "
          f"{consumed:.0f} examples/s")  # fmt: skip
    for strategy in ("baseline", "combined"):
        print(f"{strategy} curriculum feeds the step {rates[f'{strategy} curriculum examples/s'] / consumed:.1f}x over")
    result = {"config": vars(args), "rates": rates, "train_step_s": step_s, "step_examples_per_s": consumed}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
