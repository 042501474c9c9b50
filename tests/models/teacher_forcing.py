"""The reference the decoders are tested against: greedy decoding by teacher forcing, the whole output so far
read again for every new token, with no cache."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@nnx.jit
def _forward(model: nnx.Module, prompts: jax.Array, decoder_inputs: jax.Array) -> jax.Array:
    return model(prompts, decoder_inputs)


def greedy_by_teacher_forcing(model: nnx.Module, prompts: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` greedy tokens of an encoder-decoder for each prompt (B x steps). The decoder inputs are a
    buffer of ``steps`` tokens, so one compiled forward serves every step; causal attention keeps the zeros after
    position ``i`` out of its logits."""
    prompts = jnp.asarray(prompts)
    decoder_inputs = np.zeros((prompts.shape[0], steps), np.int32)
    generated = []
    for i in range(steps):
        generated.append(np.asarray(_forward(model, prompts, jnp.asarray(decoder_inputs)))[:, i].argmax(-1))
        if i + 1 < steps:
            decoder_inputs[:, i + 1] = generated[-1]
    return np.stack(generated, axis=1).astype(np.int32)
