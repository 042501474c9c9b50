"""Per-platform XLA compiler options, passed to each ``jax.jit`` so that nothing process-wide changes.

On the CPU, XLA hands whole fused regions to YNNPACK by default, including reductions and elementwise ops;
for T5's backward pass (e.g. the relative-bias gradient, a sum over batch and layers) those regions run
slower than XLA's own loops. Restricting YNNPACK to matrix multiplications cuts the T5-small training step
here by about a fifth (``scripts/bench_train_step.py``). Accelerators get no options.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def compiler_options() -> dict[str, str]:
    """Options for ``jax.jit(..., compiler_options=...)`` on the default backend; ``{}`` where XLA lacks them."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS)(jnp.zeros(())).block_until_ready()
    except jax.errors.JaxRuntimeError:  # an XLA build without YNNPACK fusions
        return {}
    return dict(_CPU_OPTIONS)
