"""Evaluate a training checkpoint on a SeqIO task by greedy decoding, with the task's postprocessor and metrics.

python scripts/evaluate.py --workdir=/tmp/ds_qa --task=synthetic_qa \\
    --task_modules=t5x_tl.data.downstream.registry --inputs_length=256 --max_decode_length=16 \\
    [--split=validation] [--num_examples=N] [--step=N] [--out=eval.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from t5x_tl.data.pipeline import hide_accelerators_from_tensorflow
from t5x_tl.data.task_modules import import_task_modules
from t5x_tl.errors import UserError
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.eval.evaluator import evaluate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--task_modules", nargs="*", default=["t5x_tl.data.downstream.registry"])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--inputs_length", type=int, required=True)
    parser.add_argument("--max_decode_length", type=int, required=True)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_examples", type=int, default=None)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    hide_accelerators_from_tensorflow()
    try:
        import_task_modules(args.task_modules, "--task_modules")
        step, model = load_model(args.workdir, args.step)
        result = evaluate(
            model,
            args.task,
            inputs_length=args.inputs_length,
            max_decode_length=args.max_decode_length,
            split=args.split,
            batch_size=args.batch_size,
            num_examples=args.num_examples,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = {"workdir": str(args.workdir), "step": step, **dataclasses.asdict(result)}
    print(f"{args.task} ({args.split}, {len(result.examples)} examples, step {step}): "
          + ", ".join(f"{name} {value:.2f}" for name, value in result.metrics.items()))  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
