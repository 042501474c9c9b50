"""Zero-, one- and few-shot evaluation of a model on a SeqIO task: GPT-3-style prompts, answers ranked by
log-likelihood (with --choices) or generated greedily and scored by exact match and F1.

python scripts/nshot_eval.py --workdir=/tmp/t5x_tl_pretrain --task=synthetic_pairs --shots=0,1,5 \\
    --choices=entailment,neutral,contradiction --out=/tmp/nshot   # or --hf_dir=/path/to/t5 (a T5 directory)

Demonstrations come from --demo_split (never the evaluated example itself), drawn with --seed; the template
is --question, --answer, --separator and --instruction, with fields of the task's text examples
({inputs}, {targets}). Writes nshot.json (every prompt and score) and nshot.md (the table) under --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import seqio
from flax import nnx

from t5x_tl.data.pipeline import hide_accelerators_from_tensorflow
from t5x_tl.data.task_modules import import_task_modules
from t5x_tl.errors import UserError
from t5x_tl.eval import nshot
from t5x_tl.eval.checkpoint_model import load_model
from t5x_tl.eval.prompts import Template
from t5x_tl.eval.scoring import Scorer
from t5x_tl.models.hf_convert import load_hf_directory
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.train.state import abstract_model


def _model(args: argparse.Namespace) -> nnx.Module:
    if (args.workdir is None) == (args.hf_dir is None):
        raise UserError("give exactly one of --workdir (a training run) or --hf_dir (a Hugging Face T5 directory)")
    if args.workdir is not None:
        return load_model(args.workdir, args.step)[1]
    cfg, params = load_hf_directory(args.hf_dir)
    graphdef, _ = abstract_model(lambda rngs: ENCODER_DECODER.build(cfg, rngs))
    return nnx.merge(graphdef, params)


def _shots(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--shots={text!r} must be comma-separated integers, e.g. 0,1,5") from error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--hf_dir", type=Path, default=None)
    parser.add_argument("--task", required=True)
    parser.add_argument("--task_modules", nargs="*", default=["t5x_tl.data.downstream.registry"])
    parser.add_argument("--split", default="validation")
    parser.add_argument("--demo_split", default="train")
    parser.add_argument("--num_examples", type=int, default=200)
    parser.add_argument("--demo_pool", type=int, default=1000, help="training examples to draw demonstrations from")
    parser.add_argument("--shots", type=_shots, default=(0, 1, 5))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--choices", default="", help="comma-separated answers to rank; empty: generate")
    parser.add_argument("--question", default="{inputs}")
    parser.add_argument("--answer", default=" {targets}")
    parser.add_argument("--separator", default=" ")
    parser.add_argument("--instruction", default="")
    parser.add_argument("--unconditional_context", default="Answer")
    parser.add_argument("--max_decode_length", type=int, default=32)
    parser.add_argument("--max_context_tokens", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--shuffle_labels", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    hide_accelerators_from_tensorflow()
    try:
        import_task_modules(args.task_modules, "--task_modules")
        model = _model(args)
        queries = nshot.task_examples(args.task, args.split, args.num_examples)
        same_split = args.demo_split == args.split  # then a query is never its own demonstration
        pool = queries if same_split else nshot.task_examples(args.task, args.demo_split, args.demo_pool)
        vocabulary = seqio.get_mixture_or_task(args.task).output_features["targets"].vocabulary
        template = Template(args.question, args.answer, args.separator, args.instruction)
        spec = nshot.NShotSpec(
            shots=args.shots,
            seed=args.seed,
            template=template,
            choices=tuple(c for c in args.choices.split(",") if c),
            unconditional_context=args.unconditional_context,
            max_decode_length=args.max_decode_length,
            shuffle_labels=args.shuffle_labels,
        )
        scorer = Scorer(model, vocabulary, batch_size=args.batch_size, max_context_tokens=args.max_context_tokens)
        report = nshot.evaluate(scorer, queries, spec, pool=pool, name=args.task)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    nshot.write_report(report, args.out)
    print(report.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
