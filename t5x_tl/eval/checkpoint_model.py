"""The model of a training checkpoint, rebuilt from the config its metadata records, for decoding."""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.train.checkpoint_record import recorded_model
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.state import abstract_model

DECODABLE_KINDS = ("encoder_decoder", "decoder_only", "prefix_lm")


def load_model(workdir: Path, step: int | None = None) -> tuple[int, nnx.Module]:
    """(step, model) of a training work directory's checkpoint: the newest, or ``step``."""
    step, params, metadata = read_params(Path(workdir) / "checkpoints", step)
    model = recorded_model(metadata, Path(workdir) / "checkpoints" / str(step))
    if model.kind not in DECODABLE_KINDS:
        raise UserError(f"a {model.kind} model does not generate text; evaluate one of {DECODABLE_KINDS}")
    graphdef, _ = abstract_model(model.build)
    return step, nnx.merge(graphdef, params)
