"""Host memory reuse for XLA:CPU: glibc's malloc told to keep freed memory instead of handing it back.

XLA:CPU allocates a step's buffers afresh at every step. glibc serves large blocks with ``mmap`` (and worker
threads from arenas of their own, whose heaps it trims), so every step faults in and zeroes its pages again:
in a tiny-T5 fine-tuning job here the kernel took a fifth of the CPU time. With ``mmap`` off, one arena and
trimming off, freed blocks are reused (``scripts/bench_host_allocator.py``: tiny steps 1.21x faster, T5-small
steps 1.1x; compiling about 2.5 s slower as compiler threads share the arena; a second arena went unused or
not from run to run). Trimming must be off, not merely rare: a T5-small step frees a temporary block of more
than 1 GiB, and with a 1 GiB threshold that block went back to the kernel at every step, which made the step
a third slower than glibc's default. The process keeps its peak memory until it exits, as tcmalloc or
jemalloc would.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("t5x_tl")

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER = -1  # M_TRIM_THRESHOLD's value for "never trim"
_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER), (_M_ARENA_MAX, 1))


def keep_freed_host_memory() -> bool:
    """Applies the settings above; False where the C library has no ``mallopt`` (nothing changed) or refuses one.

    Call it before JAX creates its CPU client: threads that already hold arenas of their own keep them.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or one without mallopt (musl, macOS)
        log.debug("host allocator left as it is: %s has no mallopt", name)
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)
