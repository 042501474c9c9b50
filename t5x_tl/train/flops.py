"""Analytic model FLOPs of an encoder-decoder training step, for MFU.

Counted from the matmuls (2 FLOPs per multiply-add), forward x3 for forward + backward. XLA's
``cost_analysis`` is not used: it counts a scanned layer once and reports per-device numbers.
"""

from __future__ import annotations

from t5x_tl.models.config import T5Config


def encoder_decoder_forward_flops(cfg: T5Config, inputs_length: int, targets_length: int) -> float:
    """Forward FLOPs for one example of ``inputs_length`` encoder and ``targets_length`` decoder tokens."""
    d, f, hk, v = cfg.d_model, cfg.d_ff, cfg.num_heads * cfg.d_kv, cfg.vocab_size
    s, t = inputs_length, targets_length
    mlp = lambda n: 3 * 2 * n * d * f
    encoder_layer = 4 * 2 * s * d * hk + 2 * 2 * s * s * hk + mlp(s)
    self_attention = 4 * 2 * t * d * hk + 2 * 2 * t * t * hk
    cross_attention = 2 * 2 * t * d * hk + 2 * 2 * s * d * hk + 2 * 2 * t * s * hk
    decoder_layer = self_attention + cross_attention + mlp(t)
    logits = 2 * t * d * v
    return float(cfg.num_encoder_layers * encoder_layer + cfg.num_decoder_layers * decoder_layer + logits)


def train_step_flops(cfg: T5Config, batch_size: int, inputs_length: int, targets_length: int) -> float:
    """Model FLOPs of one training step: three times the forward pass (backward costs twice the forward)."""
    return 3.0 * batch_size * encoder_decoder_forward_flops(cfg, inputs_length, targets_length)
