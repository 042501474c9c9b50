"""Token-level cross-entropy with T5X's optional z-loss, and accuracy, as weighted sums.

Sums (not means) are returned so that callers can normalise per target token across microbatches, hosts or
evaluation batches exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_losses(
    logits_BxLxV: jax.Array,
    targets_BxL: jax.Array,
    weights_BxL: jax.Array,
    z_loss: float,
    segment_ids_BxL: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Weighted sums of cross-entropy, z-loss (``z_loss * log(Z)^2``), correct predictions and weights, and
    the count of sequences (packed segments, or rows) and of those whose every weighted token is correct.

    A sequence right token by token under teacher forcing is exactly what greedy decoding would produce, so
    ``sequence_correct_sum / sequence_sum`` is greedy exact match, with no decoding.
    """
    logits = logits_BxLxV.astype(jnp.float32)
    log_z_BxL = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxL = jnp.take_along_axis(logits, targets_BxL[..., None], axis=-1)[..., 0]
    weights = weights_BxL.astype(jnp.float32)
    cross_entropy = (log_z_BxL - target_logit_BxL) * weights
    z_term = z_loss * jnp.square(log_z_BxL) * weights
    correct = (jnp.argmax(logits, axis=-1) == targets_BxL) * weights
    sequences, sequences_correct = _sequence_sums(correct, weights, segment_ids_BxL)
    return {
        "cross_entropy_sum": cross_entropy.sum(),
        "z_loss_sum": z_term.sum(),
        "correct_sum": correct.sum(),
        "weight_sum": weights.sum(),
        "sequence_sum": sequences,
        "sequence_correct_sum": sequences_correct,
    }


def _sequence_sums(
    correct_BxL: jax.Array, weights_BxL: jax.Array, segment_ids_BxL: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    scored = weights_BxL > 0
    segments_BxL = jnp.ones_like(correct_BxL, jnp.int32) if segment_ids_BxL is None else segment_ids_BxL
    segments_BxL = jnp.where(scored, segments_BxL, 0)  # bin 0 collects everything unscored
    wrong_BxL = (scored & (correct_BxL == 0)).astype(jnp.float32)
    per_segment = jax.vmap(lambda x, s: jax.ops.segment_sum(x, s, num_segments=x.shape[0] + 1))
    scored_BxS = per_segment(scored.astype(jnp.float32), segments_BxL)[:, 1:] > 0
    wrong_BxS = per_segment(wrong_BxL, segments_BxL)[:, 1:]
    return scored_BxS.sum().astype(jnp.float32), (scored_BxS & (wrong_BxS == 0)).sum().astype(jnp.float32)
