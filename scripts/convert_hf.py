"""Convert between Hugging Face model directories (T5 / mT5 / UMT5, and every kind with a twin) and t5x_tl
checkpoints.

# a training work directory's checkpoint -> config.json + model.safetensors
python scripts/convert_hf.py export --workdir=/tmp/t5x_tl_pretrain --out=/tmp/hf_model [--step=N]
# a Hugging Face directory -> a parameters-only Orbax checkpoint + model_config.json
python scripts/convert_hf.py import --hf_dir=/path/to/t5-small --out=/tmp/imported [--kind=encoder_only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np

from t5x_tl.errors import UserError
from t5x_tl.models.hf_convert import FULL_MODEL
from t5x_tl.models.kinds import ModelKind
from t5x_tl.models.registry import hf_kinds, model_kind
from t5x_tl.train.checkpoint_record import recorded_model
from t5x_tl.train.checkpointing import read_params, save_params


def export(workdir: Path, out: Path, step: int | None) -> None:
    step, params, metadata = read_params(workdir / "checkpoints", step)
    model = recorded_model(metadata, workdir / "checkpoints" / str(step))
    cfg, kind = model.config, model.kind
    kind.save_hf(out, cfg, params)
    print(f"exported step {step} of {workdir} to {out} (config.json, model.safetensors)")
    if kind.hf_head == FULL_MODEL and not cfg.tie_word_embeddings:
        print("note: transformers 5 warns that lm_head.weight differs from shared.weight, then loads this untied head "
              "as it is", file=sys.stderr)  # fmt: skip


def import_(hf_dir: Path, out: Path, kind: ModelKind) -> None:
    cfg, params = kind.load_hf(hf_dir)
    save_params(out, params)
    (out / "model_config.json").write_text(json.dumps({"kind": kind.name, **dataclasses.asdict(cfg)}, indent=2))
    count = sum(np.size(leaf) for leaf in jax.tree.leaves(params))
    print(f"imported {hf_dir} as {kind.name} ({count:,} parameters) to {out / 'params'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    export_cmd = commands.add_parser("export", help="t5x_tl training checkpoint -> Hugging Face directory")
    export_cmd.add_argument("--workdir", type=Path, required=True)
    export_cmd.add_argument("--out", type=Path, required=True)
    export_cmd.add_argument("--step", type=int, default=None)
    import_cmd = commands.add_parser("import", help="Hugging Face directory -> t5x_tl parameters checkpoint")
    import_cmd.add_argument("--hf_dir", type=Path, required=True)
    import_cmd.add_argument("--out", type=Path, required=True)
    import_cmd.add_argument("--kind", choices=hf_kinds(), default="encoder_decoder", help="encoder_only: the encoder")
    args = parser.parse_args()
    try:
        if args.command == "export":
            export(args.workdir, args.out, args.step)
        else:
            import_(args.hf_dir, args.out, model_kind(args.kind))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
