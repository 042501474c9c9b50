"""Per-platform settings: on this CPU the compiler options restrict YNNPACK to matmuls and change no result,
and the host allocator reuses freed memory instead of faulting it in again."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

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


def _page_faults_of_reused_buffers(keep: bool, block: int, rounds: int) -> int:
    """Minor page faults of rounds of malloc, fill and free of a block (as XLA:CPU's step buffers are), in a
    fresh process; through libc directly, as numpy asks for huge pages of its own."""
    code = f"""
import ctypes, ctypes.util, resource
from t5x_tl.host_allocator import keep_freed_host_memory
if {keep}:
    assert keep_freed_host_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def round_trip():
    block = libc.malloc({block})
    ctypes.memset(block, 1, {block})
    libc.free(block)
round_trip()  # the first round faults its pages in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({rounds}):
    round_trip()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize(
    "block, rounds",
    [(64 << 20, 20), (1280 << 20, 3)],  # a buffer of the tiny T5's step; a temporary block of T5-small's (> 1 GiB)
)
def test_kept_host_memory_is_reused_instead_of_faulted_in_again(block: int, rounds: int):
    pages = rounds * block // 4096  # what refaulting every round's pages would cost
    assert _page_faults_of_reused_buffers(False, block, rounds) > pages // 2  # glibc maps and unmaps each block
    assert _page_faults_of_reused_buffers(True, block, rounds) < pages // 20
