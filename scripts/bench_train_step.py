"""Training-step throughput of our T5 v1.1 against Hugging Face's PyTorch T5, side by side in one run.

Both sides train the same configuration (T5 v1.1 small by default, batch 8, inputs 512, targets 114,
float32) with AdamW on random tokens; times are medians over timed steps after warm-up (JAX compilation
excluded), the two sides' steps taken in turn. MFU is model FLOPs (analytic) per second over a float32 matmul
peak measured in this run. The process keeps freed host memory as ``t5x_tl-train`` does
(``--host_allocator=kept``); both sides share it, and the heap takes a few rounds to settle (in the first
rounds after PyTorch's first step, the XLA step faulted in up to 2.8 GB of new pages), hence ``--warmup=3``.

    pip install torch==2.13.0 transformers   # the CPU build; see README
    python scripts/bench_train_step.py --size=small --steps=5 --out=/tmp/bench_train_step.json
    python scripts/bench_train_step.py --size=base --steps=2 --in_turn=0 --out=/tmp/bench_train_step_base.json

Taken in turn, the base sides hold both models' activations and did not fit in 24 GiB (killed at 24.4 GB
resident); ``--in_turn=0`` runs one side after the other.
"""

from __future__ import annotations

import argparse
import json

import jax

from t5x_tl.benchmarking import (
    add_model_arguments,
    interleaved_median_seconds,
    matmul_peak_flops,
    median_seconds,
    run_torch_as_xla_cpu_runs,
    synthetic_batch,
    t5x_tl_train_step,
    torch_train_step,
)
from t5x_tl.host_allocator import keep_freed_host_memory
from t5x_tl.models.sizes import t5_config
from t5x_tl.train.flops import train_step_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--remat_policy", default="none", help="ours: a REMAT_POLICIES name; torch: checkpointing")
    parser.add_argument("--scan_layers", type=int, choices=(0, 1), default=1, help="ours: 1 scan, 0 unrolled loop")
    parser.add_argument("--host_allocator", choices=("kept", "glibc_default"), default="kept")
    parser.add_argument(
        "--in_turn", type=int, choices=(0, 1), default=1, help="0: one side after the other, when both do not fit"
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed rounds: the first compiles, the next let the heap settle"
    )
    parser.add_argument("--out", default="bench_train_step.json")
    args = parser.parse_args()

    if args.host_allocator == "kept" and not keep_freed_host_memory():
        raise SystemExit("this C library has no mallopt: rerun with --host_allocator=glibc_default")
    run_torch_as_xla_cpu_runs()
    cfg = t5_config(args.size, args.vocab, remat_policy=args.remat_policy, scan_layers=bool(args.scan_layers))
    batch = synthetic_batch(cfg, args.batch, args.inputs, args.targets)
    tokens = args.batch * (args.inputs + args.targets)
    flops = train_step_flops(cfg, args.batch, args.inputs, args.targets)
    peak = matmul_peak_flops()
    sides = {"ours": t5x_tl_train_step, "theirs": torch_train_step}
    if args.in_turn:
        steps = {k: make(cfg, batch) for k, make in sides.items()}
        seconds = interleaved_median_seconds(steps, args.steps, args.warmup)
    else:  # one side's model and activations freed before the other's are made
        seconds = {k: median_seconds(make(cfg, batch), args.steps, args.warmup) for k, make in sides.items()}
    ours, theirs = seconds["ours"], seconds["theirs"]
    result = {
        "config": vars(args),
        "device": str(jax.devices()[0]),
        "model_flops_per_step": flops,
        "matmul_peak_flops": peak,
        "t5x_tl": {"step_s": ours, "tokens_per_s": tokens / ours, "mfu": flops / ours / peak["jax"]},
        "transformers_torch": {
            "step_s": theirs,
            "tokens_per_s": tokens / theirs,
            "mfu": flops / theirs / peak["torch"],
        },
        "speedup": theirs / ours,
    }
    print(f"T5 v1.1 {args.size}, batch {args.batch}, {args.inputs}/{args.targets}, float32, AdamW, "
          f"remat {args.remat_policy}, scan_layers {args.scan_layers}, host allocator {args.host_allocator}, "
          f"{result['device']}")  # fmt: skip
    print(f"matmul peak: jax {peak['jax'] / 1e9:.1f} GFLOP/s, torch {peak['torch'] / 1e9:.1f} GFLOP/s")
    print(f"{'':22}{'step s':>10}{'tokens/s':>12}{'MFU':>8}")
    for name in ("t5x_tl", "transformers_torch"):
        row = result[name]
        print(f"{name:22}{row['step_s']:10.3f}{row['tokens_per_s']:12.0f}{row['mfu']:8.1%}")
    print(f"t5x_tl / transformers tokens/s: {result['speedup']:.2f}x")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
