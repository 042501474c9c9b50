"""How a Recurrent Memory Transformer cuts long inputs into segments, and puts per-segment outputs back.

Inputs are right-padded rows of ``N`` positions; ``ceil(N / segment_size)`` segments cover them. Left alignment
starts every row's first segment at its first token, so a row's short segment is its last and rows with fewer
segments than the batch end in empty segments. Right alignment ends every row at the end of the last segment,
so the short segment is the first and the empty ones come first: every row's last segment is the batch's last.
An empty segment changes nothing (see :mod:`t5x_tl.models.rmt`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

ALIGNMENTS = ("left", "right")
EOS_ID = 1


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """The Recurrent Memory Transformer's segmentation, memory and backpropagation settings.

    ``bptt_depth=k > 0`` stops gradients through the carried memory every ``k`` segments (truncated
    backpropagation through time; 0 backpropagates through all). ``write=False`` never updates the memory (an
    ablation: every segment reads the initial memory). ``segment_eos`` ends every segment of an encoder with
    the EOS token, as T5 ends its inputs. ``max_length`` is the longest sequence the backbone is meant to see:
    T5 trains at 512, and its relative position buckets stop at 128 tokens apart.
    """

    segment_size: int
    memory_size: int
    max_segments: int
    align: str = "left"
    segment_eos: bool = False
    bptt_depth: int = 0
    remat: bool = False  # recompute each segment's activations in the backward pass
    write: bool = True
    scan: bool = True  # one compiled segment body (lax.scan) or an unrolled Python loop
    max_length: int = 512

    def __post_init__(self) -> None:
        for name in ("segment_size", "max_segments", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("memory_size", "bptt_depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.align not in ALIGNMENTS:
            raise ValueError(f"align={self.align!r} is unknown; choose one of {ALIGNMENTS}")

    def num_segments(self, input_length: int) -> int:
        """Segments covering ``input_length`` positions; more than ``max_segments`` is an error."""
        if input_length < 1:
            raise ValueError("the inputs have no positions: give at least one token")
        count = math.ceil(input_length / self.segment_size)
        if count > self.max_segments:
            raise ValueError(
                f"{input_length} input positions need {count} segments of {self.segment_size}, more than "
                f"max_segments={self.max_segments}: raise max_segments or truncate the inputs "
                f"(to {self.max_segments * self.segment_size} positions)"
            )
        return count


class Segments(NamedTuple):
    """Per-segment arrays on a leading segment axis ``S``, and how to put positions back."""

    values: tuple[jax.Array, ...]  # each S x B x T (the inputs given to :func:`split`, cut)
    real_SxBxT: jax.Array  # True where a position holds a token
    shift_B: jax.Array  # where each row starts in the S*T concatenated positions

    @property
    def present_SxB(self) -> jax.Array:
        """Whether a segment holds any token (an empty one leaves the memory unchanged)."""
        return self.real_SxBxT.any(axis=-1)


def split(arrays: tuple[jax.Array, ...], real_BxN: jax.Array, cfg: MemoryConfig) -> Segments:
    """Cuts ``B x N`` arrays into ``S x B x T`` segments by ``cfg``'s alignment; ``real`` (a prefix of each
    row) says which positions hold tokens."""
    batch, length = real_BxN.shape
    count, size = cfg.num_segments(length), cfg.segment_size
    total = count * size
    lengths_B = real_BxN.sum(axis=1)
    shift_B = total - lengths_B if cfg.align == "right" else jnp.zeros_like(lengths_B)
    source_BxP = jnp.arange(total)[None, :] - shift_B[:, None]
    inside_BxP = (source_BxP >= 0) & (source_BxP < length)
    clipped = jnp.clip(source_BxP, 0, length - 1)

    def cut(array_BxN: jax.Array) -> jax.Array:
        placed = jnp.where(inside_BxP, jnp.take_along_axis(array_BxN, clipped, axis=1), 0).astype(array_BxN.dtype)
        return placed.reshape(batch, count, size).swapaxes(0, 1)

    real = cut(real_BxN.astype(jnp.int32)) > 0
    return Segments(tuple(cut(a) for a in arrays), real, shift_B)


def merge(values_SxBxTx: jax.Array, segments: Segments, length: int) -> jax.Array:
    """Per-segment outputs ``S x B x T x ...`` back to the input's ``B x N x ...`` positions."""
    count, batch, size = values_SxBxTx.shape[:3]
    flat = values_SxBxTx.swapaxes(0, 1).reshape(batch, count * size, *values_SxBxTx.shape[3:])
    index_BxN = jnp.arange(length)[None, :] + segments.shift_B[:, None]
    index_BxN = jnp.clip(index_BxN, 0, count * size - 1)
    index = index_BxN.reshape(batch, length, *(1,) * (flat.ndim - 2))
    return jnp.take_along_axis(flat, index, axis=1)
