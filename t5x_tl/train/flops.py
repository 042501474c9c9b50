"""Analytic model FLOPs of a training step for every model kind, and the peaks MFU is measured against.

Counted from the matmuls (2 FLOPs per multiply-add), forward x3 for forward + backward. XLA's
``cost_analysis`` is not used: it counts a scanned layer once and reports per-device numbers.
"""

from __future__ import annotations

import jax

from t5x_tl.models.config import T5Config
from t5x_tl.models.segments import MemoryConfig

# Dense bfloat16 matmul peaks per device, from the vendors' data sheets (FLOP/s).
BFLOAT16_PEAK_FLOPS = {
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def peak_flops_per_device(device: jax.Device, dtype: str, configured: float = 0.0) -> float | None:
    """``configured`` if set, else the data-sheet bfloat16 peak of ``device`` for bfloat16 runs; None where
    no peak is known (CPUs, float32), so MFU is not reported rather than made up."""
    if configured > 0:
        return configured
    if dtype != "bfloat16":
        return None
    return next((peak for name, peak in BFLOAT16_PEAK_FLOPS.items() if device.device_kind.startswith(name)), None)


def _mlp(cfg: T5Config, n: int) -> float:
    matrices = 2 if cfg.feed_forward_proj == "relu" else 3  # gated: wi_0, wi_1, wo
    return matrices * 2 * n * cfg.d_model * cfg.d_ff


def _self_attention(cfg: T5Config, n: int) -> float:
    hk = cfg.num_heads * cfg.d_kv
    return 4 * 2 * n * cfg.d_model * hk + 2 * 2 * n * n * hk  # q, k, v, o projections; scores and mixing


def _stack(cfg: T5Config, layers: int, n: int) -> float:
    return layers * (_self_attention(cfg, n) + _mlp(cfg, n))


def forward_flops(cfg: T5Config, kind: str, inputs_length: int, targets_length: int) -> float:
    """Forward FLOPs of one example of the kind's model features (see ``t5x_tl.data.pipeline``)."""
    d, v = cfg.d_model, cfg.vocab_size
    s, t = inputs_length, targets_length
    if kind in ("decoder_only", "prefix_lm"):
        n = t if kind == "decoder_only" else s + t
        return float(_stack(cfg, cfg.num_decoder_layers, n) + 2 * n * d * v)
    encoder = _stack(cfg, cfg.num_encoder_layers, s)
    if kind == "encoder_only":
        return float(encoder + 2 * s * d * v)
    return float(encoder + _decoder(cfg, s, t))


def _decoder(cfg: T5Config, s: int, t: int) -> float:
    d, hk = cfg.d_model, cfg.num_heads * cfg.d_kv
    cross_attention = 2 * 2 * t * d * hk + 2 * 2 * s * d * hk + 2 * 2 * t * s * hk
    decoder = cfg.num_decoder_layers * (_self_attention(cfg, t) + cross_attention + _mlp(cfg, t))
    return decoder + 2 * t * d * cfg.vocab_size


def memory_forward_flops(
    cfg: T5Config, kind: str, memory: MemoryConfig, inputs_length: int, targets_length: int
) -> float:
    """Forward FLOPs of one example through a Recurrent Memory Transformer: every segment at its full
    length (memory, tokens, special and write positions), the decoder on the last segment's encoding."""
    segmented = {"decoder_only": targets_length, "prefix_lm": inputs_length + targets_length}.get(kind, inputs_length)
    count, n = memory.num_segments(segmented), memory.sequence_length(kind)
    logits = 2 * memory.segment_size * cfg.d_model * cfg.vocab_size
    if kind in ("decoder_only", "prefix_lm"):
        return float(count * (_stack(cfg, cfg.num_decoder_layers, n) + logits))
    encoder = count * _stack(cfg, cfg.num_encoder_layers, n)
    if kind == "encoder_only":
        return float(encoder + count * logits)
    return float(encoder + _decoder(cfg, n, targets_length))


def train_step_flops(
    cfg: T5Config,
    batch_size: int,
    inputs_length: int,
    targets_length: int,
    kind: str = "encoder_decoder",
    memory: MemoryConfig | None = None,
) -> float:
    """Model FLOPs of one training step: three times the forward pass (backward costs twice the forward)."""
    if memory is not None:
        return 3.0 * batch_size * memory_forward_flops(cfg, kind, memory, inputs_length, targets_length)
    return 3.0 * batch_size * forward_flops(cfg, kind, inputs_length, targets_length)
