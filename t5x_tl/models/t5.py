"""The T5 v1.1 encoder-decoder in Flax NNX.

Pre-norm residual blocks, RMSNorm, bucketed relative position bias (one table per stack), gated-GELU MLP,
no biases, dropout, a shared input embedding and an untied output layer. Parameter names follow
Hugging Face's T5 closely enough that conversion is a renaming.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import MultiHeadAttention, RelativePositionBias, causal_mask, segment_mask
from t5x_tl.models.layers import Embed, GatedMlp, RMSNorm, logical_param

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
    dtype: str = "float32"
    param_dtype: str = "float32"

    def shape_signature(self) -> dict[str, int]:
        """The fields that fix parameter shapes: a checkpoint restores only onto an equal signature."""
        names = ("vocab_size", "d_model", "d_ff", "num_heads", "d_kv", "num_encoder_layers", "num_decoder_layers")
        names += ("relative_attention_num_buckets",)
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


def _relative_bias(cfg: T5Config, rngs: nnx.Rngs, *, bidirectional: bool) -> RelativePositionBias:
    return RelativePositionBias(
        cfg.relative_attention_num_buckets,
        cfg.relative_attention_max_distance,
        cfg.num_heads,
        bidirectional=bidirectional,
        **_common(cfg, rngs),
    )


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.attention_norm = _norm(cfg, rngs)
        self.attention = _attention(cfg, rngs)
        self.mlp_norm = _norm(cfg, rngs)
        self.mlp = GatedMlp(cfg.d_model, cfg.d_ff, dropout_rate=cfg.dropout_rate, **_common(cfg, rngs))
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
        self.mlp = GatedMlp(cfg.d_model, cfg.d_ff, dropout_rate=cfg.dropout_rate, **_common(cfg, rngs))
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
        self.relative_bias = _relative_bias(cfg, rngs, bidirectional=True)
        self.layers = nnx.List([EncoderLayer(cfg, rngs) for _ in range(cfg.num_encoder_layers)])
        self.final_norm = _norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(self, x_BxSxD, segments_BxS, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        length = x_BxSxD.shape[1]
        mask = segment_mask(segments_BxS, segments_BxS)
        bias = self.relative_bias(length, length)
        x_BxSxD = self.dropout(x_BxSxD, **drop)
        for layer in self.layers:
            x_BxSxD = layer(x_BxSxD, mask=mask, bias=bias, **drop)
        return self.dropout(self.final_norm(x_BxSxD), **drop)


class Decoder(nnx.Module):
    def __init__(self, cfg: T5Config, rngs: nnx.Rngs):
        self.relative_bias = _relative_bias(cfg, rngs, bidirectional=False)
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
        self_bias = self.relative_bias(length, length)
        y_BxLxD = self.dropout(y_BxLxD, **drop)
        for layer in self.layers:
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
        return (y @ self.lm_head[...].astype(y.dtype)).astype(jnp.float32)
