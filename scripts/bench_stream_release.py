"""How long dropping an input stream blocks its owner: tf.data's own numpy iterator against ``NumpyStream``.

Each trial reads ``--batches`` batches of the objective study's QA fine-tuning stream (``synthetic_qa``,
256 / 16, batch 16, packed) while the main thread keeps both cores busy after every batch with five
1024 x 1024 matrix products, as a training step would, then drops the stream and times how long the drop
holds the caller. A training job drops its validation stream at its start and its training stream at its
end, and a study's fine-tune then drops its decoding stream: each job pays this two or three times.

    python scripts/bench_stream_release.py --trials=12 --out=/tmp/bench_stream_release.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from t5x_tl.data.downstream import qa, registry  # registry registers the synthetic suite
from t5x_tl.data.pipeline import BatchSpec, NumpyStream, batched_dataset, hide_accelerators_from_tensorflow


def drop_seconds(open_stream: Callable[[], Iterator], trials: int, batches: int) -> list[float]:
    """Seconds the caller waits on ``del`` of each trial's stream, after reading ``batches`` from it."""
    step = jax.jit(lambda a: jnp.tanh(a @ a) @ a)
    weights = jnp.ones((1024, 1024))
    waits = []
    for _ in range(trials):
        stream = open_stream()
        for _ in range(batches):
            next(stream)
            for _ in range(5):
                step(weights).block_until_ready()
        start = time.perf_counter()
        del stream
        waits.append(time.perf_counter() - start)
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--out", default="bench_stream_release.json")
    args = parser.parse_args()

    hide_accelerators_from_tensorflow()
    spec = BatchSpec(registry.TASK_PREFIX + qa.FAMILY.name, "train", 256, 16, 16, seed=0)
    dataset = lambda: batched_dataset(spec).prefetch(tf.data.AUTOTUNE)  # as numpy_batches reads
    sides = {
        "tf.data iterator": lambda: dataset().as_numpy_iterator(),
        "NumpyStream": lambda: NumpyStream(dataset()),
    }
    waits = {name: drop_seconds(open_stream, args.trials, args.batches) for name, open_stream in sides.items()}
    summary = {name: {"median_s": float(np.median(w)), "max_s": max(w), "total_s": sum(w)} for name, w in waits.items()}
    print(f"dropping a stream after {args.batches} batches, {args.trials} trials, {os.cpu_count()} CPUs")
    print(f"{'':18}{'median s':>10}{'max s':>8}{'total s':>9}")
    for name, s in summary.items():
        print(f"{name:18}{s['median_s']:10.3f}{s['max_s']:8.2f}{s['total_s']:9.2f}")
    ours, peer = summary["NumpyStream"]["total_s"], summary["tf.data iterator"]["total_s"]
    print(f"NumpyStream holds the caller {peer / max(ours, 1e-6):.0f}x less in all ({ours:.2f} s against {peer:.2f} s)")
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), "waits_s": waits, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
