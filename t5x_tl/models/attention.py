"""Multi-head attention with T5's bucketed relative position bias, and the masks that feed it.

Masks are boolean ``B x 1 x Q x K`` arrays (True = may attend). Packed examples are kept apart by segment ids;
padding is segment id 0, so one rule covers both.

The attention itself runs as explicit einsums + softmax (``"xla"``) or through ``jax.nn.dot_product_attention``
(``"dot_product"``: its XLA implementation, any platform; ``"cudnn"``: cuDNN's fused kernel, NVIDIA GPUs);
``"auto"`` picks cuDNN where it applies and the einsums elsewhere (see :func:`resolve_attention_impl`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.layers import logical_param
from t5x_tl.models.sharding import BLD, BLHK, constrain

_NEG_INF = -1e10  # large but finite, so fully masked rows give a uniform (not NaN) softmax

ATTENTION_IMPLS = ("auto", "xla", "dot_product", "cudnn")
_CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _on_nvidia_gpu() -> bool:
    device = jax.devices()[0]
    return device.platform == "gpu" and "nvidia" in device.device_kind.lower()


def resolve_attention_impl(impl: str, *, dtype: jnp.dtype, d_kv: int, dropout_active: bool, cached: bool) -> str:
    """The implementation one attention call runs: ``"xla"``, ``"dot_product"`` or ``"cudnn"``.

    Dropout on the attention weights has no place in ``jax.nn.dot_product_attention``, so a call that drops
    (``dropout_rate > 0`` and not deterministic) always runs ``"xla"``. ``"auto"`` runs ``"cudnn"`` on an NVIDIA
    GPU for bfloat16/float16 with a head size cuDNN takes (a multiple of 8, at most 128), outside cached decoding
    (one-token steps over a cache are memory-bound); everywhere else, the CPU included, it runs ``"xla"``.
    ``"cudnn"`` asked for explicitly raises ``ValueError`` off an NVIDIA GPU or for another dtype.
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention_impl {impl!r}; choose one of {ATTENTION_IMPLS}")
    if impl == "cudnn":
        if not _on_nvidia_gpu():
            raise ValueError(
                f"attention_impl='cudnn' needs an NVIDIA GPU, not {jax.devices()[0].device_kind!r}: use 'auto' "
                "(cuDNN where it applies, else XLA), 'xla' or 'dot_product'"
            )
        if jnp.dtype(dtype) not in _CUDNN_DTYPES:
            raise ValueError(
                f"attention_impl='cudnn' needs dtype bfloat16 or float16, not {jnp.dtype(dtype).name}: use 'auto'"
            )
    if dropout_active:
        return "xla"
    if impl == "auto":
        supported = jnp.dtype(dtype) in _CUDNN_DTYPES and d_kv % 8 == 0 and d_kv <= 128 and not cached
        return "cudnn" if supported and _on_nvidia_gpu() else "xla"
    return impl


def relative_position_buckets(
    relative_position: jax.Array, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """Maps ``key_pos - query_pos`` to T5's log-spaced buckets.

    Half of the buckets hold exact small distances, the other half log-spaced distances up to
    ``max_distance``; bidirectional attention spends half the buckets on each direction.
    """
    bucket = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    safe = jnp.maximum(distance, 1).astype(jnp.float32)
    log_ratio = jnp.log(safe / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(relative_position.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(is_small, distance, large)


class RelativePositionBias(nnx.Module):
    """One learned scalar per (bucket, head), shared by all layers of a stack as in T5."""

    def __init__(
        self,
        num_buckets: int,
        max_distance: int,
        num_heads: int,
        *,
        bidirectional: bool,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.dtype = dtype
        self.embedding = logical_param(
            nnx.initializers.normal(1.0),
            rngs.params(),
            (num_buckets, num_heads),
            ("relpos_buckets", "heads"),
            param_dtype,
        )

    def __call__(self, query_len: int, key_len: int, query_offset: jax.Array | int = 0) -> jax.Array:
        """Returns the bias as ``1 x H x Q x K``; queries start at ``query_offset`` (cached decoding)."""
        relative_QxK = jnp.arange(key_len)[None, :] - (jnp.arange(query_len)[:, None] + query_offset)
        buckets_QxK = relative_position_buckets(
            relative_QxK, bidirectional=self.bidirectional, num_buckets=self.num_buckets, max_distance=self.max_distance
        )
        # A one-hot contraction instead of a gather (as T5X does): the gather's gradient, summed over the batch
        # and every layer, went through a scatter whose fused transpose took 6% of a T5-small step on CPU.
        one_hot_NxQxK = (buckets_QxK[None] == jnp.arange(self.num_buckets)[:, None, None]).astype(self.dtype)
        return jnp.einsum("nh,nqk->hqk", self.embedding[...].astype(self.dtype), one_hot_NxQxK)[None]


def segment_mask(query_segments_BxQ: jax.Array, key_segments_BxK: jax.Array) -> jax.Array:
    """Allows attention only within the same non-padding segment."""
    same = query_segments_BxQ[:, :, None] == key_segments_BxK[:, None, :]
    real = (query_segments_BxQ[:, :, None] > 0) & (key_segments_BxK[:, None, :] > 0)
    return (same & real)[:, None]


def causal_mask(length: int) -> jax.Array:
    """Lower-triangular ``1 x 1 x L x L`` mask: position i sees positions <= i."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def prefix_mask(causal_attention_BxL: jax.Array) -> jax.Array:
    """Bidirectional attention among prefix positions (``decoder_causal_attention`` of SeqIO's prefix-LM data)."""
    prefix = causal_attention_BxL > 0
    return (prefix[:, :, None] & prefix[:, None, :])[:, None]


class MultiHeadAttention(nnx.Module):
    """Dot-product attention without the 1/sqrt(d) factor, which T5 folds into the query initialiser.

    ``attention_impl`` (one of :data:`ATTENTION_IMPLS`) chooses how the logits, softmax and weighted sum run; it
    changes no parameter. Every choice but ``"xla"`` calls ``jax.nn.dot_product_attention`` with the relative
    bias as ``bias``, the boolean mask as ``mask`` and ``scale=1.0``. Its XLA implementation also gives a fully
    masked query row (a padding query) a uniform softmax, so ``"dot_product"`` equals ``"xla"`` at every position,
    forward and backward (``tests/models/test_fused_attention.py``). Attention-weight dropout (``dropout_rate > 0``,
    not deterministic) always runs the ``"xla"`` einsums, whatever the choice: the fused call cannot drop.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_kv: int,
        *,
        dropout_rate: float,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
        attention_impl: str = "auto",
    ) -> None:
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"unknown attention_impl {attention_impl!r}; choose one of {ATTENTION_IMPLS}")
        self.attention_impl = attention_impl
        self.dtype = dtype
        normal = nnx.initializers.normal
        qkv_axes = ("embed", "heads", "kv")
        shape = (d_model, num_heads, d_kv)
        self.query = logical_param(normal((d_model * d_kv) ** -0.5), rngs.params(), shape, qkv_axes, param_dtype)
        self.key = logical_param(normal(d_model**-0.5), rngs.params(), shape, qkv_axes, param_dtype)
        self.value = logical_param(normal(d_model**-0.5), rngs.params(), shape, qkv_axes, param_dtype)
        self.out = logical_param(
            normal((num_heads * d_kv) ** -0.5),
            rngs.params(),
            (num_heads, d_kv, d_model),
            ("heads", "kv", "embed"),
            param_dtype,
        )
        self.dropout = nnx.Dropout(dropout_rate)

    def key_value(self, context_BxTxD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values of a context: computed once and cached when decoding."""
        k_BxTxHxK = jnp.einsum("btd,dhk->bthk", context_BxTxD, self.key[...].astype(self.dtype))
        v_BxTxHxK = jnp.einsum("btd,dhk->bthk", context_BxTxD, self.value[...].astype(self.dtype))
        return constrain(k_BxTxHxK, BLHK), constrain(v_BxTxHxK, BLHK)

    def __call__(
        self,
        x_BxQxD: jax.Array,
        context_BxKxD: jax.Array | None,
        *,
        mask_Bx1xQxK: jax.Array | None,
        bias_1xHxQxK: jax.Array | None,
        deterministic: bool,
        rngs: nnx.Rngs | None,
        key_value: tuple[jax.Array, jax.Array] | None = None,
    ) -> jax.Array:
        """Attends from ``x`` to ``context``, or to precomputed ``key_value`` (a decoding cache) when given."""
        q_BxQxHxK = constrain(jnp.einsum("bqd,dhk->bqhk", x_BxQxD, self.query[...].astype(self.dtype)), BLHK)
        k_BxTxHxK, v_BxTxHxK = key_value if key_value is not None else self.key_value(context_BxKxD)
        impl = resolve_attention_impl(
            self.attention_impl,
            dtype=self.dtype,
            d_kv=q_BxQxHxK.shape[-1],
            dropout_active=self.dropout.rate > 0 and not deterministic,
            cached=key_value is not None,
        )
        if impl == "xla":
            logits_BxHxQxT = jnp.einsum("bqhk,bthk->bhqt", q_BxQxHxK, k_BxTxHxK).astype(jnp.float32)
            if bias_1xHxQxK is not None:
                logits_BxHxQxT = logits_BxHxQxT + bias_1xHxQxK.astype(jnp.float32)
            if mask_Bx1xQxK is not None:
                logits_BxHxQxT = jnp.where(mask_Bx1xQxK, logits_BxHxQxT, _NEG_INF)
            weights_BxHxQxT = jax.nn.softmax(logits_BxHxQxT, axis=-1).astype(self.dtype)
            weights_BxHxQxT = self.dropout(weights_BxHxQxT, deterministic=deterministic, rngs=rngs)
            attended_BxQxHxK = jnp.einsum("bhqt,bthk->bqhk", weights_BxHxQxT, v_BxTxHxK)
        else:
            # The bias keeps batch 1 and the mask stays boolean: for cuDNN, jax adds the mask to the bias itself and
            # sums that sum's gradient back over the batch.
            attended_BxQxHxK = jax.nn.dot_product_attention(
                q_BxQxHxK,
                k_BxTxHxK.astype(q_BxQxHxK.dtype),
                v_BxTxHxK.astype(q_BxQxHxK.dtype),
                bias=None if bias_1xHxQxK is None else bias_1xHxQxK.astype(q_BxQxHxK.dtype),
                mask=mask_Bx1xQxK,
                scale=1.0,
                implementation="cudnn" if impl == "cudnn" else "xla",
            )
        return constrain(jnp.einsum("bqhk,hkd->bqd", attended_BxQxHxK, self.out[...].astype(self.dtype)), BLD)
