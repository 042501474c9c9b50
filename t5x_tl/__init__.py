"""t5x_tl: T5-style transfer learning in JAX/Flax."""
