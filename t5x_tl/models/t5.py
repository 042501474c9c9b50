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


def _layer_biases(
    relative_bias: RelativePositionBias | nnx.List, num_layers: int, query_len: int, key_len: int, offset=0
) -> list[jax.Array]:
    if isinstance(relative_bias, RelativePositionBias):
        return [relative_bias(query_len, key_len, offset)] * num_layers
    return [table(query_len, key_len, offset) for table in relative_bias]


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

    def _blocks(self, y_BxLxD, self_attend, cross_attend, drop: dict) -> jax.Array:
        y_BxLxD = y_BxLxD + self.dropout(self_attend(self.self_attention_norm(y_BxLxD)), **drop)
        y_BxLxD = y_BxLxD + self.dropout(cross_attend(self.cross_attention_norm(y_BxLxD)), **drop)
        return y_BxLxD + self.dropout(self.mlp(self.mlp_norm(y_BxLxD), **drop), **drop)

    def __call__(
        self, y_BxLxD, encoded_BxSxD, *, self_mask, self_bias, cross_mask, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)

        def self_attend(h):
            return self.self_attention(h, h, mask_Bx1xQxK=self_mask, bias_1xHxQxK=self_bias, **drop)

        def cross_attend(h):
            return self.cross_attention(h, encoded_BxSxD, mask_Bx1xQxK=cross_mask, bias_1xHxQxK=None, **drop)

        return self._blocks(y_BxLxD, self_attend, cross_attend, drop)

    def init_cache(self, encoded_BxSxD: jax.Array, max_length: int) -> dict[str, jax.Array]:
        """Cross-attention keys/values (fixed) and empty self-attention keys/values for ``max_length`` steps."""
        cross_k, cross_v = self.cross_attention.key_value(encoded_BxSxD)
        empty = jnp.zeros((encoded_BxSxD.shape[0], max_length, *cross_k.shape[2:]), cross_k.dtype)
        return {"cross_k": cross_k, "cross_v": cross_v, "self_k": empty, "self_v": empty}

    def decode(
        self, y_BxQxD, cache: dict[str, jax.Array], position: jax.Array, *, self_mask, self_bias, cross_mask
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The same block for tokens at ``position..``, attending to cached keys/values; O(1) in the prefix."""
        drop = dict(deterministic=True, rngs=None)
        updated = dict(cache)

        def self_attend(h):
            k, v = self.self_attention.key_value(h)
            start = (0, position, 0, 0)
            updated["self_k"] = jax.lax.dynamic_update_slice(cache["self_k"], k.astype(cache["self_k"].dtype), start)
            updated["self_v"] = jax.lax.dynamic_update_slice(cache["self_v"], v.astype(cache["self_v"].dtype), start)
            kv = (updated["self_k"], updated["self_v"])
            return self.self_attention(h, None, mask_Bx1xQxK=self_mask, bias_1xHxQxK=self_bias, key_value=kv, **drop)

        def cross_attend(h):
            kv = (cache["cross_k"], cache["cross_v"])
            return self.cross_attention(h, None, mask_Bx1xQxK=cross_mask, bias_1xHxQxK=None, key_value=kv, **drop)

        return self._blocks(y_BxQxD, self_attend, cross_attend, drop), updated


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
        biases = _layer_biases(self.relative_bias, len(self.layers), length, length)
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
        biases = _layer_biases(self.relative_bias, len(self.layers), length, length)
        y_BxLxD = self.dropout(y_BxLxD, **drop)
        for layer, self_bias in zip(self.layers, biases, strict=True):
            y_BxLxD = layer(
                y_BxLxD, encoded_BxSxD, self_mask=self_mask, self_bias=self_bias, cross_mask=cross_mask, **drop
            )
        return self.dropout(self.final_norm(y_BxLxD), **drop)

    def init_cache(self, encoded_BxSxD: jax.Array, max_length: int) -> list[dict[str, jax.Array]]:
        return [layer.init_cache(encoded_BxSxD, max_length) for layer in self.layers]

    def decode(
        self, y_BxQxD, cache: list[dict[str, jax.Array]], position: jax.Array, encoder_segments_BxS: jax.Array
    ) -> tuple[jax.Array, list[dict[str, jax.Array]]]:
        """Decoder outputs for ``Q`` new tokens starting at ``position``, with the updated cache."""
        query_len, max_length = y_BxQxD.shape[1], cache[0]["self_k"].shape[1]
        key_positions = jnp.arange(max_length)[None, :]
        query_positions = position + jnp.arange(query_len)[:, None]
        self_mask = (key_positions <= query_positions)[None, None]
        cross_mask = segment_mask(jnp.ones(y_BxQxD.shape[:2], jnp.int32), encoder_segments_BxS)
        biases = _layer_biases(self.relative_bias, len(self.layers), query_len, max_length, position)
        new_cache = []
        for layer, self_bias, layer_cache in zip(self.layers, biases, cache, strict=True):
            y_BxQxD, layer_cache = layer.decode(
                y_BxQxD, layer_cache, position, self_mask=self_mask, self_bias=self_bias, cross_mask=cross_mask
            )
            new_cache.append(layer_cache)
        return self.final_norm(y_BxQxD), new_cache


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

    def init_decode_cache(
        self, encoder_input_tokens: jax.Array, max_length: int
    ) -> tuple[list[dict[str, jax.Array]], jax.Array]:
        """Encodes the prompts once; returns the decoder cache and the encoder segments for cross-attention."""
        segments = _segments(encoder_input_tokens, None)
        encoded = self.encode(encoder_input_tokens)
        return self.decoder.init_cache(encoded, max_length), segments

    def decode_step(
        self, tokens_BxQ: jax.Array, position: jax.Array, cache: list[dict[str, jax.Array]], encoder_segments_BxS
    ) -> tuple[jax.Array, list[dict[str, jax.Array]]]:
        """Logits ``B x Q x vocab`` for decoder tokens at ``position..``, given everything before from the cache."""
        y, cache = self.decoder.decode(self.token_embed(tokens_BxQ), cache, position, encoder_segments_BxS)
        return self.logits(y), cache

    def logits(self, y_BxLxD: jax.Array) -> jax.Array:
        """Output layer: the untied ``lm_head``, or the input embedding scaled by d_model^-0.5 when tied."""
        if self.config.tie_word_embeddings:
            y_BxLxD = y_BxLxD * self.config.d_model**-0.5
            kernel_DxV = self.token_embed.embedding[...].astype(y_BxLxD.dtype).T
        else:
            kernel_DxV = self.lm_head[...].astype(y_BxLxD.dtype)
        return (y_BxLxD @ kernel_DxV).astype(jnp.float32)
