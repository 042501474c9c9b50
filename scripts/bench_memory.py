"""Peak memory of the training step with and without rematerialisation: t5x_tl against transformers' PyTorch T5
(gradient checkpointing) on the same config, side by side in one run.

Each side runs in a fresh child process (two training steps) so that its peak resident memory
(``ru_maxrss``) is its own; for t5x_tl the run also prints XLA's compiled buffer sizes (temporaries = the
activations kept for the backward pass, arguments = parameters, optimizer state and batch).

    python scripts/bench_memory.py --size=base --batch=8 --out=/tmp/bench_memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from t5x_tl.benchmarking import (
    add_model_arguments,
    run_torch_as_xla_cpu_runs,
    step_runner,
    synthetic_batch,
    torch_train_step,
    train_state_and_step,
)
from t5x_tl.models.sizes import t5_config

SIDES = ("t5x_tl", "transformers_torch")


def child(args: argparse.Namespace) -> dict:
    """Two training steps of one side; returns its peak RSS and, for t5x_tl, XLA's buffer sizes."""
    cfg = t5_config(args.size, args.vocab, remat_policy="full" if args.remat else "none")
    batch = synthetic_batch(cfg, args.batch, args.inputs, args.targets)
    result = {}
    if args.child == "t5x_tl":
        state, step_fn = train_state_and_step(cfg)
        memory = step_fn.lower(state, batch).compile().memory_analysis()
        result = {"xla_temp_bytes": memory.temp_size_in_bytes, "xla_argument_bytes": memory.argument_size_in_bytes}
        run = step_runner(step_fn, state, batch)
        del state
    else:
        run_torch_as_xla_cpu_runs()
        run = torch_train_step(cfg, batch)
    for _ in range(2):
        run()
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--out", default="bench_memory.json")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--remat", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    shape = [f"--{name}={getattr(args, name)}" for name in ("size", "batch", "inputs", "targets", "vocab")]
    results: dict[str, dict] = {}
    for side in SIDES:
        for remat in (False, True):
            command = [sys.executable, __file__, f"--child={side}", *shape] + (["--remat"] if remat else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[f"{side}/{'remat' if remat else 'no_remat'}"] = json.loads(done.stdout.strip().splitlines()[-1])
    gib = 2.0**30
    print(f"T5 v1.1 {args.size}, batch {args.batch}, {args.inputs}/{args.targets}, float32, AdamW training step")
    print(f"{'':34}{'peak RSS GiB':>14}{'XLA temp GiB':>14}")
    for name, row in results.items():
        temp = f"{row['xla_temp_bytes'] / gib:14.2f}" if "xla_temp_bytes" in row else f"{'':>14}"
        print(f"{name:34}{row['peak_rss_bytes'] / gib:14.2f}{temp}")
    for side in SIDES:
        saved = results[f"{side}/no_remat"]["peak_rss_bytes"] / results[f"{side}/remat"]["peak_rss_bytes"]
        print(f"{side}: peak RSS without / with remat {saved:.2f}x")
    ratio = results["transformers_torch/no_remat"]["peak_rss_bytes"] / results["t5x_tl/no_remat"]["peak_rss_bytes"]
    print(f"transformers / t5x_tl peak RSS without remat: {ratio:.2f}x")
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
