"""The model of a training checkpoint, rebuilt from the config its metadata records, for decoding."""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.registry import MODEL_KINDS
from t5x_tl.train.checkpoint_record import recorded_model
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.state import abstract_model


def load_model(workdir: Path, step: int | None = None) -> tuple[int, nnx.Module]:
    """(step, model) of a training work directory's checkpoint: the newest, or ``step``."""
    step, params, metadata = read_params(Path(workdir) / "checkpoints", step)
    model = recorded_model(metadata, Path(workdir) / "checkpoints" / str(step))
    if not model.kind.decodes:
        decoding = [name for name, kind in MODEL_KINDS.items() if kind.decodes]
        raise UserError(f"a {model.kind.name} model does not generate text; evaluate one of {decoding}")
    graphdef, _ = abstract_model(model.build)
    return step, nnx.merge(graphdef, params)
