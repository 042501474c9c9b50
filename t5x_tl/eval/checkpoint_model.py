"""The model of a training checkpoint, rebuilt from the config its metadata records, for decoding."""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config
from t5x_tl.models.kinds import build_model
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.train.checkpointing import read_params
from t5x_tl.train.state import abstract_model

DECODABLE_KINDS = ("encoder_decoder", "decoder_only", "prefix_lm")


def load_model(workdir: Path, step: int | None = None) -> tuple[int, nnx.Module]:
    """(step, model) of a training work directory's checkpoint: the newest, or ``step``."""
    step, params, metadata = read_params(Path(workdir) / "checkpoints", step)
    if "model_config" not in metadata:
        raise UserError(f"checkpoint {Path(workdir) / 'checkpoints' / str(step)} does not record its model config")
    kind = metadata.get("model", {}).get("kind", "encoder_decoder")
    if kind not in DECODABLE_KINDS:
        raise UserError(f"a {kind} model does not generate text; evaluate one of {DECODABLE_KINDS}")
    # the attention kernel is the machine's choice, not the checkpoint's (one trained with cuDNN evaluates on a CPU)
    cfg = T5Config(**{**metadata["model_config"], "attention_impl": "auto"})
    memory = MemoryConfig(**metadata["memory_config"]) if "memory_config" in metadata else None
    graphdef, _ = abstract_model(lambda rngs: build_model(kind, cfg, rngs, memory))
    return step, nnx.merge(graphdef, params)
