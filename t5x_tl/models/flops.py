"""Analytic forward FLOPs of the family's parts, counted from the matmuls (2 FLOPs per multiply-add).

XLA's ``cost_analysis`` is not used: it counts a scanned layer once and reports per-device numbers. Each model
kind (:mod:`t5x_tl.models.kinds`) adds up the parts it runs.
"""

from __future__ import annotations

from t5x_tl.models.config import T5Config


def _mlp(cfg: T5Config, n: int) -> float:
    matrices = 2 if cfg.feed_forward_proj == "relu" else 3  # gated: wi_0, wi_1, wo
    return matrices * 2 * n * cfg.d_model * cfg.d_ff


def _self_attention(cfg: T5Config, n: int) -> float:
    hk = cfg.num_heads * cfg.d_kv
    return 4 * 2 * n * cfg.d_model * hk + 2 * 2 * n * n * hk  # q, k, v, o projections; scores and mixing


def stack_flops(cfg: T5Config, layers: int, n: int) -> float:
    """``layers`` self-attention layers over ``n`` positions (an encoder, or a decoder-only model's stack)."""
    return layers * (_self_attention(cfg, n) + _mlp(cfg, n))


def logits_flops(cfg: T5Config, n: int) -> float:
    """The output projection of ``n`` positions onto the vocabulary."""
    return 2 * n * cfg.d_model * cfg.vocab_size


def decoder_flops(cfg: T5Config, s: int, t: int) -> float:
    """An encoder-decoder's decoder over ``t`` targets, cross-attending to ``s`` encoded positions, with logits."""
    d, hk = cfg.d_model, cfg.num_heads * cfg.d_kv
    cross_attention = 2 * 2 * t * d * hk + 2 * 2 * s * d * hk + 2 * 2 * t * s * hk
    decoder = cfg.num_decoder_layers * (_self_attention(cfg, t) + cross_attention + _mlp(cfg, t))
    return decoder + logits_flops(cfg, t)
