"""The T5 encoder-decoder family in Flax NNX: T5 1.0, T5 1.1 / mT5 and UMT5 differ only in configuration.

Pre-norm residual blocks, RMSNorm, bucketed relative position bias, no biases, dropout and a shared input
embedding. T5 1.1 (the default) has a gated-GELU MLP and an untied output layer; T5 1.0 a ReLU MLP and
tied embeddings with the output scaled by d_model^-0.5; UMT5 a relative-bias table in every layer instead of
one per stack.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import MultiHeadAttention, RelativePositionBias, causal_mask, segment_mask
from t5x_tl.models.layers import Embed, Mlp, RMSNorm, logical_param

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Static hyperparameters of an encoder-decoder; equal configs give interchangeable checkpoints."""

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

    def shape_signature(self) -> dict[str, int | str | bool]:
        """The fields that fix the parameter tree: a checkpoint restores only onto an equal signature."""
        names = ("vocab_size", "d_model", "d_ff", "num_heads", "d_kv", "num_encoder_layers", "num_decoder_layers")
        names += ("relative_attention_num_buckets", "feed_forward_proj", "tie_word_embeddings")
        names += ("per_layer_relative_bias",)
        return {name: getattr(self, name) for name in names}

    @property
    def compute_dtype(self) -> jnp.dtype:
        return _DTYPES[self.dtype]

    @property
    def weight_dtype(self) -> jnp.dtype:
        return _DTYPES[self.param_dtype]


def _common(cfg: T5Config, rngs: nnx.Rngs) -> dict:
    return {"dtype": cfg.compute_dtype, "param_dtype": cfg.weight_dtype, "rngs": rngs}


def _attention(cfg: T5Config, rngs: nnx.Rngs) -> MultiHeadAttention:
    return MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.d_kv, dropout_rate=cfg.dropout_rate, **_common(cfg, rngs))


def _norm(cfg: T5Config, rngs: nnx.Rngs) -> RMSNorm:
    return RMSNorm(cfg.d_model, eps=cfg.layer_norm_epsilon, **_common(cfg, rngs))


def _mlp(cfg: T5Config, rngs: nnx.Rngs) -> Mlp:
    return Mlp(
        cfg.d_model,
        cfg.d_ff,
        feed_forward_proj=cfg.feed_forward_proj,
        dropout_rate=cfg.dropout_rate,
        **_common(cfg, rngs),
    )


def _relative_bias(
    cfg: T5Config, rngs: nnx.Rngs, *, bidirectional: bool, num_layers: int
) -> RelativePositionBias | nnx.List:
    """One table for the stack (T5), or one per layer (UMT5)."""

    def table() -> RelativePositionBias:
        return RelativePositionBias(
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
            cfg.num_heads,
            bidirectional=bidirectional,
            **_common(cfg, rngs),
        )

    return nnx.List([table() for _ in range(num_layers)]) if cfg.per_layer_relative_bias else table()


def _layer_biases(relative_bias: RelativePositionBias | nnx.List, num_layers: int, length: int) -> list[jax.Array]:
    if isinstance(relative_bias, RelativePositionBias):
        return [relative_bias(length, length)] * num_layers
    return [table(length, length) for table in relative_bias]


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.attention_norm = _norm(cfg, rngs)
        self.attention = _attention(cfg, rngs)
        self.mlp_norm = _norm(cfg, rngs)
        self.mlp = _mlp(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(self, x_BxLxD, *, mask, bias, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        h = self.attention_norm(x_BxLxD)
        h = self.attention(h, h, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, **drop)
        x_BxLxD = x_BxLxD + self.dropout(h, **drop)
        h = self.mlp(self.mlp_norm(x_BxLxD), **drop)
        return x_BxLxD + self.dropout(h, **drop)


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.self_attention_norm = _norm(cfg, rngs)
        self.self_attention = _attention(cfg, rngs)
        self.cross_attention_norm = _norm(cfg, rngs)
        self.cross_attention = _attention(cfg, rngs)
        self.mlp_norm = _norm(cfg, rngs)
        self.mlp = _mlp(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self, y_BxLxD, encoded_BxSxD, *, self_mask, self_bias, cross_mask, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        h = self.self_attention_norm(y_BxLxD)
        h = self.self_attention(h, h, mask_Bx1xQxK=self_mask, bias_1xHxQxK=self_bias, **drop)
        y_BxLxD = y_BxLxD + self.dropout(h, **drop)
        h = self.cross_attention_norm(y_BxLxD)
        h = self.cross_attention(h, encoded_BxSxD, mask_Bx1xQxK=cross_mask, bias_1xHxQxK=None, **drop)
        y_BxLxD = y_BxLxD + self.dropout(h, **drop)
        h = self.mlp(self.mlp_norm(y_BxLxD), **drop)
        return y_BxLxD + self.dropout(h, **drop)


def _segments(tokens_BxL: jax.Array, segment_ids_BxL: jax.Array | None) -> jax.Array:
    """Segment ids for attention masks; unpacked inputs are one segment, with padding (token 0) as segment 0."""
    if segment_ids_BxL is None:
        return (tokens_BxL > 0).astype(jnp.int32)
    return segment_ids_BxL


class Encoder(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.relative_bias = _relative_bias(cfg, rngs, bidirectional=True, num_layers=cfg.num_encoder_layers)
        self.layers = nnx.List([EncoderLayer(cfg, rngs) for _ in range(cfg.num_encoder_layers)])
        self.final_norm = _norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(self, x_BxSxD, segments_BxS, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        length = x_BxSxD.shape[1]
        mask = segment_mask(segments_BxS, segments_BxS)
        biases = _layer_biases(self.relative_bias, len(self.layers), length)
        x_BxSxD = self.dropout(x_BxSxD, **drop)
        for layer, bias in zip(self.layers, biases, strict=True):
            x_BxSxD = layer(x_BxSxD, mask=mask, bias=bias, **drop)
        return self.dropout(self.final_norm(x_BxSxD), **drop)


class Decoder(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.relative_bias = _relative_bias(cfg, rngs, bidirectional=False, num_layers=cfg.num_decoder_layers)
        self.layers = nnx.List([DecoderLayer(cfg, rngs) for _ in range(cfg.num_decoder_layers)])
        self.final_norm = _norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self, y_BxLxD, encoded_BxSxD, segments_BxL, encoder_segments_BxS, *, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        length = y_BxLxD.shape[1]
        self_mask = segment_mask(segments_BxL, segments_BxL) & causal_mask(length)
        cross_mask = segment_mask(segments_BxL, encoder_segments_BxS)
        biases = _layer_biases(self.relative_bias, len(self.layers), length)
        y_BxLxD = self.dropout(y_BxLxD, **drop)
        for layer, self_bias in zip(self.layers, biases, strict=True):
            y_BxLxD = layer(
                y_BxLxD, encoded_BxSxD, self_mask=self_mask, self_bias=self_bias, cross_mask=cross_mask, **drop
            )
        return self.dropout(self.final_norm(y_BxLxD), **drop)


class EncoderDecoder(nnx.Module):
    """T5 v1.1: tokens in, next-token logits out (teacher forcing)."""

    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs):
        self.config = cfg
        self.token_embed = Embed(cfg.vocab_size, cfg.d_model, **_common(cfg, rngs))
        self.encoder = Encoder(cfg, rngs)
        self.decoder = Decoder(cfg, rngs)
        if not cfg.tie_word_embeddings:
            self.lm_head = logical_param(
                nnx.initializers.normal(cfg.d_model**-0.5),
                rngs.params(),
                (cfg.d_model, cfg.vocab_size),
                ("embed", "vocab"),
                cfg.weight_dtype,
            )

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        segments = _segments(encoder_input_tokens, encoder_segment_ids)
        x = self.token_embed(encoder_input_tokens)
        return self.encoder(x, segments, deterministic=deterministic, rngs=rngs)

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Returns ``B x L x vocab`` float32 logits for each decoder position.

        Without packing, decoder positions are all kept as one segment (the decoder input starts with the
        pad token 0 as BOS, so it cannot signal padding; the loss weights do that).
        """
        encoder_segments = _segments(encoder_input_tokens, encoder_segment_ids)
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic, rngs=rngs)
        y = self.token_embed(decoder_input_tokens)
        y = self.decoder(y, encoded, decoder_segment_ids, encoder_segments, deterministic=deterministic, rngs=rngs)
        return self.logits(y)

    def logits(self, y_BxLxD: jax.Array) -> jax.Array:
        """Output layer: the untied ``lm_head``, or the input embedding scaled by d_model^-0.5 when tied."""
        if self.config.tie_word_embeddings:
            y_BxLxD = y_BxLxD * self.config.d_model**-0.5
            kernel_DxV = self.token_embed.embedding[...].astype(y_BxLxD.dtype).T
        else:
            kernel_DxV = self.lm_head[...].astype(y_BxLxD.dtype)
        return (y_BxLxD @ kernel_DxV).astype(jnp.float32)
