"""Per-platform compiler options: on this CPU they restrict YNNPACK to matmuls and change no result."""

from __future__ import annotations

import jax
import numpy as np

from t5x_tl.platform import compiler_options


def test_cpu_options_are_accepted_and_keep_results():
    assert jax.default_backend() == "cpu"
    options = compiler_options()
    assert options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
    x = jax.random.normal(jax.random.key(0), (64, 32))
    f = lambda x: jax.nn.softmax(0.1 * x @ x.T, axis=-1).sum(axis=0)
    np.testing.assert_allclose(jax.jit(f, compiler_options=options)(x), jax.jit(f)(x), rtol=1e-5)
    grad = jax.grad(lambda x: (f(x) ** 2).sum())
    np.testing.assert_allclose(jax.jit(grad, compiler_options=options)(x), jax.jit(grad)(x), rtol=1e-4, atol=1e-6)
