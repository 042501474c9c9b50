"""Time to the first batch after a restore, early and far in the stream: the saved tf.data iterator state
(what checkpoints hold) against replaying the batches consumed so far (how runs resumed before).

The stream is the main job's (built-in corpus, span corruption at inputs 128, packed, shuffled). The far
position is reached by reading the stream, without training, at ``--batch_size`` rows a batch (1 by default,
so that 100,000 batches take minutes here; the state holds the shuffle and packing buffers, whose size does not
depend on the batch count, and the source's file offset and epoch). Each restore is timed in a fresh stream,
median of ``--repeats`` interleaved rounds. The replay of the far position is the read-through itself (the same
preprocessing of the same examples), timed once.

    python scripts/bench_resume.py --far=100000 --out=/tmp/bench_resume.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from t5x_tl.benchmarking import interleaved_median_seconds
from t5x_tl.config import base_config
from t5x_tl.data.pipeline import BatchSpec, TaskBatches, hide_accelerators_from_tensorflow, numpy_batches
from t5x_tl.train.job import resolve_task


def _spec(batch_size: int) -> BatchSpec:
    cfg = base_config()
    cfg.data.inputs_length = 128
    task, targets_length = resolve_task(cfg)
    return BatchSpec(task.name, "train", 128, targets_length, batch_size=batch_size, seed=cfg.seed)


def _restored(spec: BatchSpec, state: dict, folder: Path) -> TaskBatches:
    batches = TaskBatches(spec)
    batches.load_state_dict(state)
    if not batches.restore_position(folder):
        raise RuntimeError(f"no iterator state in {folder}")
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--early", type=int, default=10)
    parser.add_argument("--far", type=int, default=100_000)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    hide_accelerators_from_tensorflow()
    spec = _spec(args.batch_size)
    scratch = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    stream, saved = TaskBatches(spec), {}
    start = time.perf_counter()
    for position in (args.early, args.far):
        while stream.batches < position:
            next(stream)
        folder = scratch / str(position)
        folder.mkdir()
        stream.save_position(folder)
        saved[position] = (stream.state_dict(), folder)
    read_through_s = time.perf_counter() - start
    rows: dict[str, float] = {"read_through_s": read_through_s}
    first_batch = {}
    for name, position in (("early", args.early), ("far", args.far)):
        state, folder = saved[position]
        rows[f"{name}_state_bytes"] = sum(f.stat().st_size for f in folder.iterdir())
        first_batch[f"{name}_restore_s"] = lambda state=state, folder=folder: next(_restored(spec, state, folder))
    first_batch["early_replay_s"] = lambda: next(numpy_batches(spec, args.early))
    rows |= interleaved_median_seconds(first_batch, args.repeats, warmup=0)
    rows["far_replay_s"] = read_through_s * args.far / (args.far + args.early)
    rows["restore_far_over_early"] = rows["far_restore_s"] / rows["early_restore_s"]
    rows["replay_far_over_early"] = rows["far_replay_s"] / rows["early_replay_s"]
    print(f"stream: {spec.task}, inputs {spec.inputs_length}, batch {spec.batch_size}")
    print(f"{'':>22} {'early':>12} {'far':>12} {'far / early':>12}")
    print(f"{'position (batches)':>22} {args.early:>12,} {args.far:>12,}")
    print(f"{'state (bytes)':>22} {rows['early_state_bytes']:>12,} {rows['far_state_bytes']:>12,}")
    for label, key in (("iterator state (s)", "restore"), ("replay (s)", "replay")):
        early, far = rows[f"early_{key}_s"], rows[f"far_{key}_s"]
        print(f"{label:>22} {early:>12.3f} {far:>12.3f} {far / early:>12.2f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
