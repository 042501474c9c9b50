"""The static hyperparameters shared by every Transformer of the T5 family (encoder-decoder, decoder-only,
encoder-only); equal shape signatures give interchangeable checkpoints."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from t5x_tl.errors import UserError
from t5x_tl.models.stack import REMAT_POLICIES

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def check_int(name: str, value: Any, *, minimum: int = 1, prefix: str = "") -> None:
    """Refuses a ``value`` of the config field ``name`` that is not an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"{prefix}{name}={value!r} is invalid: it must be {kind}")


class ExecutionFields:
    """What the configs of every family share besides their sizes: the ``dtype`` and ``param_dtype`` names (keys
    of :data:`DTYPES`) and the ``remat_policy`` (see :data:`t5x_tl.models.stack.REMAT_POLICIES`)."""

    dtype: str
    param_dtype: str
    remat_policy: str

    def check_execution(self, prefix: str = "") -> None:
        """Refuses an unknown dtype name or remat policy; ``prefix`` starts each message."""
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise UserError(f"{prefix}{name}={getattr(self, name)!r} is invalid; choose one of {tuple(DTYPES)}")
        if self.remat_policy not in REMAT_POLICIES:
            raise UserError(f"unknown remat_policy {self.remat_policy!r}; choose one of {tuple(REMAT_POLICIES)}")

    @property
    def compute_dtype(self) -> jnp.dtype:
        return DTYPES[self.dtype]

    @property
    def weight_dtype(self) -> jnp.dtype:
        return DTYPES[self.param_dtype]


@dataclasses.dataclass(frozen=True)
class T5Config(ExecutionFields):
    """T5 1.1 by default; T5 1.0 is ``feed_forward_proj="relu", tie_word_embeddings=True``; UMT5 adds
    ``per_layer_relative_bias=True``. Decoder-only models use the decoder layer count, encoder-only the encoder's.

    ``scan_layers``, ``remat_policy`` and ``attention_impl`` change how the layers execute, not the parameters: a
    checkpoint restores under any setting of them.
    """

    vocab_size: int
    d_model: int
    d_ff: int
    num_heads: int
    d_kv: int
    num_encoder_layers: int
    num_decoder_layers: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"  # Hugging Face's name: "relu" for T5 1.0
    tie_word_embeddings: bool = False  # True for T5 1.0: logits from the input embedding, scaled
    per_layer_relative_bias: bool = False  # True for UMT5
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True  # one compiled layer body (lax.scan) or an unrolled loop; same parameters
    remat_policy: str = "none"  # see t5x_tl.models.stack.REMAT_POLICIES
    attention_impl: str = "auto"  # see t5x_tl.models.attention.ATTENTION_IMPLS: auto, xla, dot_product, cudnn

    def shape_signature(self) -> dict[str, int | str | bool]:
        """The fields that fix the parameter tree: a checkpoint restores only onto an equal signature."""
        names = ("vocab_size", "d_model", "d_ff", "num_heads", "d_kv", "num_encoder_layers", "num_decoder_layers")
        names += ("relative_attention_num_buckets", "feed_forward_proj", "tie_word_embeddings")
        names += ("per_layer_relative_bias",)
        return {name: getattr(self, name) for name in names}
