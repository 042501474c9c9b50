"""Crash soak: a tiny training run killed with SIGKILL at random moments, resumed each time, must end with
parameters bit-identical to the same run left alone.

Each cycle starts ``scripts/train.py`` on the work directory and, once it has logged a random few steps
more, kills it (``kill -9``: no handler runs, an asynchronous save may be half-written) after a random
fraction of a second; after ``--cycles`` kills the run is left to finish. The job is
configs/learning_to_execute.py on the copy task (tiny model, combined curriculum, checkpoints every 3 steps).

    python scripts/soak_resume.py --cycles=20 --workdir=/tmp/t5x_tl_soak --out=/tmp/soak.json
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
JOB = [
    "--config.curriculum.task=lte_copy_l{length}",
    "--config.curriculum.length=4",
    "--config.curriculum.nesting=1",
    "--config.curriculum.patience=1",
    "--config.data.inputs_length=8",
    "--config.data.targets_length=8",
    "--config.data.batch_size=8",
    "--config.optimizer.schedule=constant",
    "--config.train.eval_every=5",
    "--config.train.eval_batches=1",
    "--config.train.log_every=1",
    "--config.checkpoint.every=3",
]


def _command(workdir: Path, steps: int) -> list[str]:
    script, config = REPO / "scripts" / "train.py", REPO / "configs" / "learning_to_execute.py"
    return [
        sys.executable,
        str(script),
        f"--config={config}",
        f"--workdir={workdir}",
        f"--config.train.steps={steps}",
        *JOB,
    ]


def _final_params(workdir: Path) -> tuple[int, list[np.ndarray]]:
    import jax

    from t5x_tl.train.checkpointing import read_params

    step, params, _ = read_params(workdir / "checkpoints")
    return step, [np.asarray(leaf) for leaf in jax.tree.leaves(params)]


def _last_step(workdir: Path) -> int:
    """The newest logged train step of ``workdir`` (0 before any)."""
    metrics = workdir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    steps = [record["step"] for record in map(_json_or_none, lines) if record and record["split"] == "train"]
    return max(steps, default=0)


def _json_or_none(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:  # a line the killed process was writing
        return None


def soak(workdir: Path, cycles: int, steps: int, max_jitter_s: float, seed: int) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    straight, killed = workdir / "uninterrupted", workdir / "killed"
    subprocess.run(_command(straight, steps), check=True, capture_output=True, timeout=600)
    rng = np.random.default_rng(seed)
    kills = []
    for _ in range(cycles):
        target = _last_step(killed) + int(rng.integers(1, 6))  # a few steps on from where this run resumes
        jitter = float(rng.uniform(0.0, max_jitter_s))
        process = subprocess.Popen(_command(killed, steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and _last_step(killed) < target:
            time.sleep(0.05)
        time.sleep(jitter)  # anywhere in a step, an evaluation or an asynchronous save
        if process.poll() is not None:
            kills.append({"target_step": target, "killed": False})  # it finished first
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        committed = sorted(int(p.name) for p in (killed / "checkpoints").glob("*") if p.name.isdigit())
        kills.append({"target_step": target, "jitter_s": jitter, "killed": True, "committed_steps": committed})
    start = time.perf_counter()
    final = subprocess.run(_command(killed, steps), capture_output=True, text=True, timeout=600)
    if final.returncode:
        raise RuntimeError(f"the resumed run failed:\n{final.stderr[-3000:]}")
    step_a, a = _final_params(straight)
    step_b, b = _final_params(killed)
    identical = step_a == step_b == steps and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    return {
        "cycles": cycles,
        "kills": kills,
        "kills_landed": sum(k["killed"] for k in kills),
        "final_run_s": time.perf_counter() - start,
        "steps": steps,
        "identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300)  # room for 20 kills a few steps apart
    parser.add_argument("--max_jitter", type=float, default=1.0, help="seconds after the target step, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/t5x_tl_soak")
    parser.add_argument("--out", default="soak_resume.json")
    args = parser.parse_args()
    result = soak(Path(args.workdir), args.cycles, args.steps, args.max_jitter, args.seed)
    for i, kill in enumerate(result["kills"], 1):
        state = f"killed, committed {kill.get('committed_steps')}" if kill["killed"] else "finished before the kill"
        print(f"cycle {i:2d}: past step {kill['target_step']:3d}, {state}")
    print(f"{result['kills_landed']} kills; resumed run ended at step {result['steps']}: "
          f"{'bit-identical' if result['identical'] else 'DIFFERENT'} to the uninterrupted run")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))
    sys.exit(0 if result["identical"] else 1)


if __name__ == "__main__":
    main()
