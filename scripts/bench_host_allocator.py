"""Training-step time with glibc's default allocator against ``keep_freed_host_memory``, side by side.

Each side runs in a fresh process (the allocator must be set before JAX starts): the tiny T5 of the objective
study's summaries fine-tune (batch 16, inputs 256, targets 64, vocabulary 1152, AdamW), timed steps after
warm-up. Reports the first call (compilation), the median step, and per step the kernel (system) CPU
seconds and minor page faults.

    python scripts/bench_host_allocator.py --steps=40 --out=/tmp/bench_host_allocator.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIDES = ("glibc_default", "keep_freed_host_memory")


def child(args: argparse.Namespace) -> dict:
    if args.side == "keep_freed_host_memory":
        from t5x_tl.host_allocator import keep_freed_host_memory

        assert keep_freed_host_memory(), "this C library has no mallopt"
    from t5x_tl.benchmarking import median_seconds, synthetic_batch, t5x_tl_train_step
    from t5x_tl.models.sizes import t5_config

    cfg = t5_config("tiny", args.vocab)
    run = t5x_tl_train_step(cfg, synthetic_batch(cfg, args.batch, args.inputs, args.targets))
    start = time.perf_counter()
    run()
    compile_s = time.perf_counter() - start
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = median_seconds(run, args.steps, warmup=2)
    after = resource.getrusage(resource.RUSAGE_SELF)
    calls = args.steps + 2
    return {
        "compile_s": compile_s,
        "step_s": seconds,
        "system_s_per_step": (after.ru_stime - before.ru_stime) / calls,
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=1152)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # set in the child processes
    parser.add_argument("--out", default="bench_host_allocator.json")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(child(args)))
        return
    results = {}
    for side in SIDES:
        command = [sys.executable, __file__, *sys.argv[1:], f"--side={side}"]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = results["glibc_default"]["step_s"] / results["keep_freed_host_memory"]["step_s"]
    print(f"tiny T5, batch {args.batch}, {args.inputs}/{args.targets}, vocabulary {args.vocab}, float32, AdamW")
    print(f"{'':26}{'compile s':>10}{'step s':>10}{'system s/step':>15}{'page faults/step':>18}")
    for side in SIDES:
        r = results[side]
        timing = f"{r['compile_s']:10.2f}{r['step_s']:10.3f}{r['system_s_per_step']:15.3f}"
        print(f"{side:26}{timing}{r['minor_faults_per_step']:18.0f}")
    print(f"default / kept step time: {ratio:.2f}x")
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), **results, "speedup": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
