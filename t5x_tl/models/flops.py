"""Analytic forward FLOPs of a Transformer's parts, counted from the matmuls (2 FLOPs per multiply-add).

XLA's ``cost_analysis`` is not used: it counts a scanned layer once and reports per-device numbers. Each model
kind adds up the parts its family runs; the T5 helpers below read a ``T5Config``.
"""

from __future__ import annotations

from t5x_tl.models.config import T5Config


def attention_flops(queries: int, keys: int, d_model: int, inner: int) -> float:
    """Q and O projections of ``queries``, K and V of ``keys``, scores and mixing (``inner`` = heads x head size)."""
    return 2 * 2 * queries * d_model * inner + 2 * 2 * keys * d_model * inner + 2 * 2 * queries * keys * inner


def mlp_flops(n: int, d_model: int, d_ff: int, matrices: int = 2) -> float:
    """A feed-forward block over ``n`` positions (``matrices`` = 3 when gated)."""
    return matrices * 2 * n * d_model * d_ff


def logits_flops(n: int, d_model: int, vocab_size: int) -> float:
    """The output projection of ``n`` positions onto the vocabulary."""
    return 2 * n * d_model * vocab_size


def _t5_mlp(cfg: T5Config, n: int) -> float:
    return mlp_flops(n, cfg.d_model, cfg.d_ff, 2 if cfg.feed_forward_proj == "relu" else 3)


def stack_flops(cfg: T5Config, layers: int, n: int) -> float:
    """``layers`` T5 self-attention layers over ``n`` positions (an encoder, or a decoder-only model's stack)."""
    inner = cfg.num_heads * cfg.d_kv
    return layers * (attention_flops(n, n, cfg.d_model, inner) + _t5_mlp(cfg, n))


def decoder_flops(cfg: T5Config, s: int, t: int) -> float:
    """A T5 decoder over ``t`` targets, cross-attending to ``s`` encoded positions, with logits."""
    inner = cfg.num_heads * cfg.d_kv
    layer = attention_flops(t, t, cfg.d_model, inner) + attention_flops(t, s, cfg.d_model, inner) + _t5_mlp(cfg, t)
    return cfg.num_decoder_layers * layer + logits_flops(t, cfg.d_model, cfg.vocab_size)
