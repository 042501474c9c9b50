"""Model sizes by name: the published T5 v1.1 dimensions (small..xxl) and a CPU-sized ``tiny``."""

from __future__ import annotations

import dataclasses
from typing import Any

from t5x_tl.models.config import T5Config

# name: (d_model, d_ff, num_heads, d_kv, num_layers) -- encoder and decoder have num_layers each.
T5_1_1_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (128, 384, 4, 32, 2),
    "small": (512, 1024, 6, 64, 8),
    "base": (768, 2048, 12, 64, 12),
    "large": (1024, 2816, 16, 64, 24),
    "xl": (2048, 5120, 32, 64, 24),
    "xxl": (4096, 10240, 64, 64, 24),
}


def t5_config(size: str, vocab_size: int, **overrides: Any) -> T5Config:
    """The T5 v1.1 config of a named size; ``overrides`` replace any field (e.g. ``num_encoder_layers``)."""
    if size not in T5_1_1_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(T5_1_1_SIZES)}")
    d_model, d_ff, num_heads, d_kv, num_layers = T5_1_1_SIZES[size]
    cfg = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        num_heads=num_heads,
        d_kv=d_kv,
        num_encoder_layers=num_layers,
        num_decoder_layers=num_layers,
    )
    return dataclasses.replace(cfg, **overrides)


def padded_vocab_size(vocab_size: int, multiple: int = 128) -> int:
    """Rounds the embedding table up to a multiple of 128 (T5 uses 32128 for a 32100-entry vocabulary)."""
    return -(-vocab_size // multiple) * multiple
