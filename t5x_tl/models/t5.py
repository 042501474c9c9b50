"""The T5 encoder-decoder family in Flax NNX: T5 1.0, T5 1.1 / mT5 and UMT5 differ only in configuration.

T5 1.1 (the default) has a gated-GELU MLP and an untied output layer; T5 1.0 a ReLU MLP and tied embeddings
with the output scaled by d_model^-0.5; UMT5 a relative-bias table in every layer instead of one per stack.
Layer parameters are stacked on a leading ``layers`` axis (see :mod:`t5x_tl.models.stack`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import causal_mask, segment_mask
from t5x_tl.models.blocks import (
    Cache,
    DecoderLayer,
    SelfAttentionLayer,
    StackBias,
    common,
    layer_stack,
    norm,
    pick_bias,
)
from t5x_tl.models.config import T5Config
from t5x_tl.models.layers import Embed, logical_param
from t5x_tl.models.sharding import BLD, BLV, constrain


def segments_of(tokens_BxL: jax.Array, segment_ids_BxL: jax.Array | None) -> jax.Array:
    """Segment ids for attention masks; unpacked inputs are one segment, with padding (token 0) as segment 0."""
    if segment_ids_BxL is None:
        return (tokens_BxL > 0).astype(jnp.int32)
    return segment_ids_BxL


def dropout_key(rngs: nnx.Rngs | None) -> jax.Array | None:
    return None if rngs is None else rngs.dropout()


class Encoder(nnx.Module):
    """Bidirectional self-attention layers over (possibly packed) inputs, then a final norm."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs) -> None:
        self.relative_bias = StackBias(cfg, bidirectional=True, num_layers=cfg.num_encoder_layers, rngs=rngs)
        self.layers = layer_stack(cfg, lambda r: SelfAttentionLayer(cfg, r), cfg.num_encoder_layers, rngs)
        self.final_norm = norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self, x_BxSxD: jax.Array, segments_BxS: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        length = x_BxSxD.shape[1]
        # A padding query attends to every real key, as under transformers' key-only padding mask, so the outputs at
        # padding equal T5EncoderModel's; real positions never attend to padding, so theirs do not change.
        padding_query = (segments_BxS == 0)[:, None, :, None] & (segments_BxS > 0)[:, None, None, :]
        mask = segment_mask(segments_BxS, segments_BxS) | padding_query
        shared, per_layer = self.relative_bias(length, length)

        def apply(
            layer: SelfAttentionLayer, x: jax.Array, bias: jax.Array | None, layer_rngs: nnx.Rngs | None
        ) -> tuple[jax.Array, None]:
            bias = pick_bias(shared, bias)
            return layer(x, mask=mask, bias=bias, deterministic=deterministic, rngs=layer_rngs), None

        x_BxSxD = self.dropout(x_BxSxD, **drop)
        x_BxSxD, _ = self.layers(apply, x_BxSxD, per_layer, dropout_key=dropout_key(rngs))
        return constrain(self.dropout(self.final_norm(x_BxSxD), **drop), BLD)


class Decoder(nnx.Module):
    """Causal self-attention plus cross-attention layers; teacher-forced, or one step at a time from a cache."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs) -> None:
        self.config = cfg
        self.relative_bias = StackBias(cfg, bidirectional=False, num_layers=cfg.num_decoder_layers, rngs=rngs)
        self.layers = layer_stack(cfg, lambda r: DecoderLayer(cfg, r), cfg.num_decoder_layers, rngs)
        self.final_norm = norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self,
        y_BxLxD: jax.Array,
        encoded_BxSxD: jax.Array,
        segments_BxL: jax.Array,
        encoder_segments_BxS: jax.Array,
        *,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        length = y_BxLxD.shape[1]
        self_mask = segment_mask(segments_BxL, segments_BxL) & causal_mask(length)
        cross_mask = segment_mask(segments_BxL, encoder_segments_BxS)
        shared, per_layer = self.relative_bias(length, length)

        def apply(
            layer: DecoderLayer, y: jax.Array, bias: jax.Array | None, layer_rngs: nnx.Rngs | None
        ) -> tuple[jax.Array, None]:
            bias = pick_bias(shared, bias)
            y = layer(
                y,
                encoded_BxSxD,
                self_mask=self_mask,
                self_bias=bias,
                cross_mask=cross_mask,
                deterministic=deterministic,
                rngs=layer_rngs,
            )
            return y, None

        y_BxLxD = self.dropout(y_BxLxD, **drop)
        y_BxLxD, _ = self.layers(apply, y_BxLxD, per_layer, dropout_key=dropout_key(rngs))
        return constrain(self.dropout(self.final_norm(y_BxLxD), **drop), BLD)

    def init_cache(self, encoded_BxSxD: jax.Array, max_length: int) -> Cache:
        """Every layer's cache, stacked on a leading layers axis."""
        return self.layers.map(lambda layer: layer.init_cache(encoded_BxSxD, max_length, self.config))

    def decode(
        self, y_BxQxD: jax.Array, cache: Cache, position: jax.Array, encoder_segments_BxS: jax.Array
    ) -> tuple[jax.Array, Cache]:
        """Decoder outputs for ``Q`` new tokens starting at ``position``, with the updated cache."""
        query_len, max_length = y_BxQxD.shape[1], cache["self_k"].shape[2]
        key_positions = jnp.arange(max_length)[None, :]
        query_positions = position + jnp.arange(query_len)[:, None]
        self_mask = (key_positions <= query_positions)[None, None]
        cross_mask = segment_mask(jnp.ones(y_BxQxD.shape[:2], jnp.int32), encoder_segments_BxS)
        shared, per_layer = self.relative_bias(query_len, max_length, position)

        def apply(
            layer: DecoderLayer, y: jax.Array, inputs: tuple[jax.Array | None, Cache], _: None
        ) -> tuple[jax.Array, Cache]:
            bias, layer_cache = inputs
            return layer.decode(
                y, layer_cache, position, self_mask=self_mask, self_bias=pick_bias(shared, bias), cross_mask=cross_mask
            )

        y_BxQxD, cache = self.layers(apply, y_BxQxD, (per_layer, cache))
        return self.final_norm(y_BxQxD), cache


class TokenModel(nnx.Module):
    """The token embedding and the output layer every token-predicting model of the family shares.

    Logits come from the untied ``lm_head``, or from the input embedding scaled by d_model^-0.5 when tied (T5 1.0).
    """

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs, *, token_head: bool = True) -> None:
        self.config = cfg
        self.token_embed = Embed(cfg.vocab_size, cfg.d_model, **common(cfg, rngs))
        self.token_head = token_head  # False: no untied lm_head (a representation-only model)
        if token_head and not cfg.tie_word_embeddings:
            self.lm_head = logical_param(
                nnx.initializers.normal(cfg.d_model**-0.5),
                rngs.params(),
                (cfg.d_model, cfg.vocab_size),
                ("embed", "vocab"),
                cfg.weight_dtype,
            )

    def logits(self, y_BxLxD: jax.Array) -> jax.Array:
        """``B x L x vocab`` float32 logits."""
        if not self.token_head:
            raise ValueError("this model was built with token_head=False and has no output layer")
        if self.config.tie_word_embeddings:
            y_BxLxD = y_BxLxD * self.config.d_model**-0.5
            kernel_DxV = self.token_embed.embedding[...].astype(y_BxLxD.dtype).T
        else:
            kernel_DxV = self.lm_head[...].astype(y_BxLxD.dtype)
        return constrain((y_BxLxD @ kernel_DxV).astype(jnp.float32), BLV)


class EncodingModel(TokenModel):
    """A token model with T5's encoder: what the encoder-decoder and the encoder-only model share."""

    def __init__(self, cfg: T5Config, rngs: nnx.Rngs, *, token_head: bool = True) -> None:
        super().__init__(cfg, rngs, token_head=token_head)
        self.encoder = Encoder(cfg, rngs)

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Final encoder states ``B x S x D`` of (possibly packed) inputs."""
        segments = segments_of(encoder_input_tokens, encoder_segment_ids)
        x = self.token_embed(encoder_input_tokens)
        return self.encoder(x, segments, deterministic=deterministic, rngs=rngs)


class EncoderDecoder(EncodingModel):
    """T5: tokens in, next-token logits out (teacher forcing), or decoded a token at a time from a cache."""

    def __init__(self, cfg: T5Config, *, rngs: nnx.Rngs) -> None:
        super().__init__(cfg, rngs)
        self.decoder = Decoder(cfg, rngs)

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
        encoder_segments = segments_of(encoder_input_tokens, encoder_segment_ids)
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, deterministic=deterministic, rngs=rngs)
        y = self.token_embed(decoder_input_tokens)
        y = self.decoder(y, encoded, decoder_segment_ids, encoder_segments, deterministic=deterministic, rngs=rngs)
        return self.logits(y)

    def init_decode_cache(self, encoder_input_tokens: jax.Array, max_length: int) -> tuple[Cache, dict]:
        """Encodes the prompts once; returns the decoder cache and the encoder segments for cross-attention."""
        encoded = self.encode(encoder_input_tokens)
        return self.cache_for(encoded, segments_of(encoder_input_tokens, None), max_length)

    def cache_for(self, encoded_BxSxD: jax.Array, segments_BxS: jax.Array, max_length: int) -> tuple[Cache, dict]:
        """The decoder cache and context for encoder states computed elsewhere (e.g. with memory tokens)."""
        return self.decoder.init_cache(encoded_BxSxD, max_length), {"encoder_segments": segments_BxS}

    def decode_step(
        self, tokens_BxQ: jax.Array, position: jax.Array, cache: Cache, context: dict
    ) -> tuple[jax.Array, Cache]:
        """Logits ``B x Q x vocab`` for decoder tokens at ``position..``, given everything before from the cache."""
        y, cache = self.decoder.decode(self.token_embed(tokens_BxQ), cache, position, context["encoder_segments"])
        return self.logits(y), cache

    def start_decoding(self, prompts_BxS: jax.Array, max_length: int) -> tuple[jax.Array, Cache, dict, int]:
        """Logits of the first generated token, the cache and context, and the decoder position of that token."""
        return self.first_step(*self.init_decode_cache(prompts_BxS, max_length))

    def first_step(self, cache: Cache, context: dict) -> tuple[jax.Array, Cache, dict, int]:
        """Decodes T5's start token (the pad token 0) from a fresh cache: what :meth:`start_decoding` returns."""
        start = jnp.zeros((context["encoder_segments"].shape[0], 1), jnp.int32)
        logits, cache = self.decode_step(start, jnp.int32(0), cache, context)
        return logits[:, 0], cache, context, 1
