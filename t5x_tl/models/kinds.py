"""The model kinds a job can train, by name: the same names as the data pipeline's feature converters."""

from __future__ import annotations

from typing import Any

from flax import nnx

from t5x_tl.models.config import T5Config
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.rmt import RecurrentMemory
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.t5 import EncoderDecoder

MODEL_KINDS = ("encoder_decoder", "decoder_only", "prefix_lm", "encoder_only")


def build_model(
    kind: str, cfg: T5Config, rngs: nnx.Rngs, memory: MemoryConfig | None = None, **options: Any
) -> nnx.Module:
    """A ``kind`` model; ``options`` go to its class (e.g. ``num_outputs`` for the encoder-only head). With
    ``memory``, the model is a Recurrent Memory Transformer over that backbone (parameters under ``backbone/``,
    plus the initial ``memory``)."""
    if memory is not None:
        return RecurrentMemory(build_model(kind, cfg, rngs, **options), kind, memory, rngs=rngs)
    if kind == "encoder_decoder":
        return EncoderDecoder(cfg, rngs=rngs, **options)
    if kind in ("decoder_only", "prefix_lm"):
        return DecoderOnly(cfg, prefix_lm=kind == "prefix_lm", rngs=rngs, **options)
    if kind == "encoder_only":
        return EncoderOnly(cfg, rngs=rngs, **options)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {MODEL_KINDS}")
