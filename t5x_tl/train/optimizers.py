"""Optimizers and learning-rate schedules from the config: T5's Adafactor + inverse square root, or AdamW."""

from __future__ import annotations

import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from t5x_tl.config import OPTIMIZERS, SCHEDULES


def learning_rate_schedule(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    """``rsqrt`` is T5's ``base / sqrt(max(step, warmup))``: flat for ``warmup`` steps, then decaying."""
    base, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "rsqrt":
        return lambda step: base * jnp.reciprocal(jnp.sqrt(jnp.maximum(step, warmup).astype(jnp.float32)))
    if cfg.schedule == "constant":
        return optax.constant_schedule(base)
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, base, max(warmup, 1), max(total_steps, warmup + 1))
    raise ValueError(f"unknown optimizer.schedule {cfg.schedule!r}; choose one of {SCHEDULES}")


def make_optimizer(cfg: ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """The optimizer named by ``cfg.name``, with the schedule and optional global-norm clipping."""
    schedule = learning_rate_schedule(cfg, total_steps)
    if cfg.name == "adafactor":
        optimizer = optax.adafactor(
            learning_rate=schedule,
            decay_rate=0.8,
            multiply_by_parameter_scale=True,
            clipping_threshold=1.0,
            weight_decay_rate=cfg.weight_decay or None,
        )
    elif cfg.name == "adamw":
        optimizer = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer.name {cfg.name!r}; choose one of {OPTIMIZERS}")
    if cfg.grad_clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), optimizer)
    return optimizer
