"""Token-level cross-entropy with T5X's optional z-loss, and accuracy, as weighted sums.

Sums (not means) are returned so that callers can normalise per target token across microbatches, hosts or
evaluation batches exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_losses(
    logits_BxLxV: jax.Array, targets_BxL: jax.Array, weights_BxL: jax.Array, z_loss: float
) -> dict[str, jax.Array]:
    """Weighted sums of cross-entropy, z-loss (``z_loss * log(Z)^2``), correct predictions and weights."""
    logits = logits_BxLxV.astype(jnp.float32)
    log_z_BxL = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxL = jnp.take_along_axis(logits, targets_BxL[..., None], axis=-1)[..., 0]
    weights = weights_BxL.astype(jnp.float32)
    cross_entropy = (log_z_BxL - target_logit_BxL) * weights
    z_term = z_loss * jnp.square(log_z_BxL) * weights
    correct = (jnp.argmax(logits, axis=-1) == targets_BxL) * weights
    return {
        "cross_entropy_sum": cross_entropy.sum(),
        "z_loss_sum": z_term.sum(),
        "correct_sum": correct.sum(),
        "weight_sum": weights.sum(),
    }
