"""Decoder-only Transformers: a causal language model, or a prefix LM whose prefix attends bidirectionally.

These are the "language model" and "prefix LM" architectures of the T5 paper: one stack of self-attention
layers; the prefix LM lets the inputs part of each sequence (SeqIO's ``decoder_causal_attention``) see
itself in both directions while the targets stay causal. The relative position bias is the unidirectional
one of T5's decoder.

Decoding left-aligns prompts of mixed lengths behind the start token 0 (relative positions make left padding
invisible), fills the key/value cache with the whole prompt in one pass, then adds a token per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import causal_mask, prefix_mask, segment_mask
from t5x_tl.models.blocks import Cache, SelfAttentionLayer, StackBias, empty_cache, layer_stack, norm, pick_bias
from t5x_tl.models.config import T5Config
from t5x_tl.models.sharding import BLD, constrain
from t5x_tl.models.t5 import TokenModel, dropout_key


def left_aligned_with_start(prompts_BxS: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Right-padded prompts -> ``B x (S+1)`` sequences ``[pad.., 0 (start), prompt]`` and where they are real."""
    batch, length = prompts_BxS.shape
    lengths_Bx1 = (prompts_BxS > 0).sum(axis=1, keepdims=True)
    position = jnp.arange(length + 1)[None, :]
    first = length + 1 - lengths_Bx1  # where each prompt's first token lands
    source = jnp.clip(position - first, 0, length - 1)
    tokens = jnp.where(position >= first, jnp.take_along_axis(prompts_BxS, source, axis=1), 0)
    return tokens.astype(jnp.int32), jnp.broadcast_to(position >= first - 1, (batch, length + 1))


class DecoderOnly(TokenModel):
    """``prefix_lm=False``: causal LM. ``prefix_lm=True``: prompts and ``decoder_causal_attention`` prefixes
    attend bidirectionally. Both have the same parameters."""

    def __init__(self, cfg: T5Config, *, prefix_lm: bool = False, rngs: nnx.Rngs) -> None:
        super().__init__(cfg, rngs)
        self.prefix_lm = prefix_lm
        self.relative_bias = StackBias(cfg, bidirectional=False, num_layers=cfg.num_decoder_layers, rngs=rngs)
        self.layers = layer_stack(cfg, lambda r: SelfAttentionLayer(cfg, r), cfg.num_decoder_layers, rngs)
        self.final_norm = norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.dropout_rate)

    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x L x vocab`` float32 next-token logits (teacher forcing); unpacked rows are one segment."""
        if decoder_causal_attention is not None and not self.prefix_lm:
            raise ValueError("decoder_causal_attention marks prefix-LM data; build DecoderOnly(prefix_lm=True)")
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        length = decoder_input_tokens.shape[1]
        allowed = causal_mask(length)
        if decoder_causal_attention is not None:
            allowed = allowed | prefix_mask(decoder_causal_attention)
        mask = segment_mask(decoder_segment_ids, decoder_segment_ids) & allowed
        x = self.token_embed(decoder_input_tokens)
        return self.logits(self.transform(x, mask, deterministic=deterministic, rngs=rngs))

    def transform(
        self, x_BxLxD: jax.Array, mask: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
    ) -> jax.Array:
        """Final hidden states ``B x L x D`` of input embeddings under a ``B x 1 x L x L`` attention mask: the
        stack without the embedding and the output layer (what a memory wrapper feeds its own inputs to)."""
        length = x_BxLxD.shape[1]
        shared, per_layer = self.relative_bias(length, length)
        drop = dict(deterministic=deterministic, rngs=rngs)

        def apply(
            layer: SelfAttentionLayer, x: jax.Array, bias: jax.Array | None, layer_rngs: nnx.Rngs | None
        ) -> tuple[jax.Array, None]:
            bias = pick_bias(shared, bias)
            return layer(x, mask=mask, bias=bias, deterministic=deterministic, rngs=layer_rngs), None

        x = self.dropout(x_BxLxD, **drop)
        x, _ = self.layers(apply, x, per_layer, dropout_key=dropout_key(rngs))
        return constrain(self.dropout(self.final_norm(x), **drop), BLD)

    def prompt_attention(self, prompts_BxS: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """Left-aligned prompt sequences, their segment ids and (prefix LM) causal-attention prefix."""
        tokens, real = left_aligned_with_start(prompts_BxS)
        return tokens, real.astype(jnp.int32), real if self.prefix_lm else None

    def decode_step(
        self, tokens_BxQ: jax.Array, position: jax.Array, cache: Cache, context: dict
    ) -> tuple[jax.Array, Cache]:
        """Logits ``B x Q x vocab`` for tokens at ``position..``, attending to everything cached before them."""
        query_len, max_length = tokens_BxQ.shape[1], cache["self_k"].shape[2]
        keys = jnp.arange(max_length)[None, :]
        allowed = (keys <= position + jnp.arange(query_len)[:, None])[None]
        if self.prefix_lm:
            prefix_q = jax.lax.dynamic_slice_in_dim(context["prefix"], position, query_len, axis=1)
            allowed = allowed | (prefix_q[:, :, None] & context["prefix"][:, None, :])
        mask = (allowed & context["real"][:, None, :])[:, None]
        shared, per_layer = self.relative_bias(query_len, max_length, position)

        def apply(
            layer: SelfAttentionLayer, x: jax.Array, inputs: tuple[jax.Array | None, Cache], _: None
        ) -> tuple[jax.Array, Cache]:
            bias, layer_cache = inputs
            return layer.decode(x, layer_cache, position, mask=mask, bias=pick_bias(shared, bias))

        x, cache = self.layers(apply, self.token_embed(tokens_BxQ), (per_layer, cache))
        return self.logits(self.final_norm(x)), cache

    def start_decoding(self, prompts_BxS: jax.Array, max_length: int) -> tuple[jax.Array, Cache, dict, int]:
        """Runs the whole prompt through the cache; returns the first generated token's logits and position."""
        tokens, real = left_aligned_with_start(prompts_BxS)
        batch, prompt_length = tokens.shape
        generated = jnp.ones((batch, max_length), bool)
        context = {"real": jnp.concatenate([real, generated], axis=1)}
        if self.prefix_lm:
            context["prefix"] = jnp.concatenate([real, ~generated], axis=1)
        one_layer = empty_cache(batch, prompt_length + max_length, self.config)
        cache = jax.tree.map(lambda a: jnp.broadcast_to(a, (self.config.num_decoder_layers, *a.shape)), one_layer)
        logits, cache = self.decode_step(tokens, jnp.int32(0), cache, context)
        return logits[:, -1], cache, context, prompt_length
