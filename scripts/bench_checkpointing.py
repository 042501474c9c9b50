"""Checkpointing costs, measured on real training runs (scripts/train.py, the copy task of
configs/learning_to_execute.py):

1. step-time overhead of asynchronous Orbax saves every ``--every`` steps against the same run with no saves
   during training (median tokens/s over the logged windows after the first), for ``--size``;
2. time from SIGTERM to exit with a committed checkpoint, for ``--sigterm_size`` (T5 v1.1 base by default):
   the run finishes its step, saves, and exits 0.

    python scripts/bench_checkpointing.py --size=small --every=10 --steps=60 --out=/tmp/bench_checkpointing.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _command(workdir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        f"--config={REPO / 'configs' / 'learning_to_execute.py'}",
        f"--workdir={workdir}",
        "--config.curriculum.task=lte_copy_l{length}",
        "--config.curriculum.length=8",
        "--config.curriculum.nesting=1",
        "--config.curriculum.strategy=baseline",
        "--config.data.inputs_length=16",
        "--config.data.targets_length=16",
        "--config.data.batch_size=16",
        "--config.train.eval_batches=1",
        *overrides,
    ]


def _train_rates(workdir: Path) -> list[float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_second"] for r in records if r["split"] == "train"][1:]  # the first window compiles


def overhead(root: Path, size: str, every: int, steps: int, log_every: int) -> dict:
    rates = {}
    for name, interval in (("no_saves", 10**9), ("async_saves", every)):
        workdir = root / name
        overrides = [f"--config.model.size={size}", f"--config.train.steps={steps}",
                     f"--config.train.eval_every={steps}", f"--config.train.log_every={log_every}",
                     f"--config.checkpoint.every={interval}"]  # fmt: skip
        subprocess.run(_command(workdir, *overrides), check=True, capture_output=True, timeout=3600)
        rates[name] = float(np.median(_train_rates(workdir)))
    return {"tokens_per_s": rates, "overhead": rates["no_saves"] / rates["async_saves"] - 1.0}


def sigterm_to_exit(root: Path, size: str) -> dict:
    workdir = root / "sigterm"
    overrides = [f"--config.model.size={size}", "--config.train.steps=100000", "--config.train.eval_every=100000",
                 "--config.train.log_every=1", "--config.checkpoint.every=100000"]  # fmt: skip
    process = subprocess.Popen(_command(workdir, *overrides), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = workdir / "metrics.jsonl"
    while process.poll() is None and not (metrics.exists() and '"split": "train"' in metrics.read_text()):
        time.sleep(0.1)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=3600)
    seconds = time.perf_counter() - sent
    committed = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())
    return {"seconds": seconds, "exit_code": process.returncode, "committed_steps": committed,
            "message": stderr.decode().strip().splitlines()[-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--sigterm_size", default="base")
    parser.add_argument("--workdir", default="/tmp/t5x_tl_bench_checkpointing")
    parser.add_argument("--out", default="bench_checkpointing.json")
    args = parser.parse_args()
    root = Path(args.workdir)
    shutil.rmtree(root, ignore_errors=True)
    result = {"config": vars(args), "overhead": overhead(root, args.size, args.every, args.steps, args.log_every)}
    result["sigterm"] = sigterm_to_exit(root, args.sigterm_size)
    o, t = result["overhead"], result["sigterm"]
    print(f"T5 v1.1 {args.size}: {o['tokens_per_s']['no_saves']:.0f} tokens/s without saves, "
          f"{o['tokens_per_s']['async_saves']:.0f} with an async save every {args.every} steps: "
          f"overhead {o['overhead']:+.1%}")  # fmt: skip
    print(f"T5 v1.1 {args.sigterm_size}: SIGTERM -> exit {t['exit_code']} in {t['seconds']:.1f} s, "
          f"committed steps {t['committed_steps']} ({t['message']})")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
