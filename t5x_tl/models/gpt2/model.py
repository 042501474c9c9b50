"""GPT-2 as Flax NNX modules: the language model (teacher forcing and cached decoding) and the sequence classifier.

Both read our decoder-only batch layout: ``decoder_input_tokens`` with optional ``decoder_segment_ids`` (0 marks
padding; distinct ids keep packed examples apart, and each example's learned positions restart at 0). Decoding
follows :mod:`t5x_tl.models.decoding`'s protocol (``start_decoding`` / ``decode_step``): right-padded prompts are
left-padded, as transformers' ``generate`` wants them, and each row's positions count from its first real token,
so the first generated token of every prompt lands at the same cache index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import causal_mask, segment_mask
from t5x_tl.models.decoder_only import left_aligned_with_start
from t5x_tl.models.gpt2.config import GPT2Config
from t5x_tl.models.gpt2.layers import Block, Cache, dense_init, layer_norm
from t5x_tl.models.layers import logical_param
from t5x_tl.models.sharding import BLD, BLV, constrain
from t5x_tl.models.stack import LayerStack
from t5x_tl.models.t5 import dropout_key


def positions_of(segments_BxL: jax.Array) -> jax.Array:
    """Each token's index within its run of equal segment ids: packed examples restart at position 0."""
    index_1xL = jnp.arange(segments_BxL.shape[1])[None]
    starts_BxL = jnp.pad(segments_BxL[:, 1:] != segments_BxL[:, :-1], ((0, 0), (1, 0)), constant_values=True)
    return index_1xL - jax.lax.cummax(jnp.where(starts_BxL, index_1xL, 0), axis=1)


class GPT2Model(nnx.Module):
    """Token and position embeddings, the blocks and the final LayerNorm: what every GPT-2 head reads."""

    def __init__(self, cfg: GPT2Config, *, rngs: nnx.Rngs) -> None:
        self.config = cfg
        init = nnx.initializers.normal(cfg.initializer_range)
        self.token_embedding = logical_param(
            init, rngs.params(), (cfg.vocab_size, cfg.n_embd), ("vocab", "embed"), cfg.weight_dtype
        )
        self.position_embedding = logical_param(
            init, rngs.params(), (cfg.n_positions, cfg.n_embd), (None, "embed"), cfg.weight_dtype
        )
        self.layers = LayerStack(
            lambda r: Block(cfg, r), cfg.n_layer, scan=cfg.scan_layers, remat_policy=cfg.remat_policy, rngs=rngs
        )
        self.final_norm = layer_norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.embd_pdrop)

    def embed(self, tokens_BxL: jax.Array, positions_BxL: jax.Array) -> jax.Array:
        x = jnp.take(self.token_embedding[...], tokens_BxL, axis=0)
        x = x + jnp.take(self.position_embedding[...], positions_BxL, axis=0)
        return constrain(x.astype(self.config.compute_dtype), BLD)

    def _scales(self) -> jax.Array:
        return jnp.asarray(self.config.attention_scales(), jnp.float32)

    def hidden_states(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """Final-LayerNorm states ``B x L x D``; unpacked rows without segment ids are one example."""
        if decoder_causal_attention is not None:
            raise ValueError("GPT-2 is a causal LM, not a prefix LM: it takes no decoder_causal_attention")
        length = decoder_input_tokens.shape[1]
        if length > self.config.n_positions:
            raise ValueError(f"{length} tokens per row; this GPT-2 has {self.config.n_positions} positions")
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        mask = segment_mask(decoder_segment_ids, decoder_segment_ids) & causal_mask(length)
        drop = dict(deterministic=deterministic, rngs=rngs)
        x = self.dropout(self.embed(decoder_input_tokens, positions_of(decoder_segment_ids)), **drop)

        def apply(layer: Block, x: jax.Array, scale: jax.Array, layer_rngs: nnx.Rngs | None) -> tuple[jax.Array, None]:
            return layer(x, mask=mask, scale=scale, deterministic=deterministic, rngs=layer_rngs), None

        x, _ = self.layers(apply, x, self._scales(), dropout_key=dropout_key(rngs))
        return constrain(self.final_norm(x), BLD)


class GPT2LMHeadModel(GPT2Model):
    """Next-token logits from the token embedding (tied, GPT-2's default) or an ``lm_head`` of its own."""

    def __init__(self, cfg: GPT2Config, *, rngs: nnx.Rngs) -> None:
        super().__init__(cfg, rngs=rngs)
        if not cfg.tie_word_embeddings:
            self.lm_head = logical_param(
                dense_init(cfg), rngs.params(), (cfg.n_embd, cfg.vocab_size), ("embed", "vocab"), cfg.weight_dtype
            )

    def logits(self, hidden_BxLxD: jax.Array) -> jax.Array:
        """``B x L x vocab`` float32 logits."""
        tied = self.config.tie_word_embeddings
        kernel_DxV = (self.token_embedding[...].T if tied else self.lm_head[...]).astype(hidden_BxLxD.dtype)
        return constrain((hidden_BxLxD @ kernel_DxV).astype(jnp.float32), BLV)

    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x L x vocab`` float32 next-token logits (teacher forcing)."""
        hidden = self.hidden_states(
            decoder_input_tokens,
            decoder_segment_ids,
            decoder_causal_attention,
            deterministic=deterministic,
            rngs=rngs,
        )
        return self.logits(hidden)

    def prompt_attention(self, prompts_BxS: jax.Array) -> tuple[jax.Array, jax.Array, None]:
        """As :meth:`DecoderOnly.prompt_attention` (what :func:`~t5x_tl.models.decoding.score` reads): the prompts
        after the start token 0, left-aligned, and their segment ids; no prefix, GPT-2 is causal throughout."""
        tokens, real = left_aligned_with_start(prompts_BxS)
        return tokens, real.astype(jnp.int32), None

    def start_decoding(self, prompts_BxS: jax.Array, max_length: int) -> tuple[jax.Array, Cache, dict, int]:
        """Runs the left-padded prompts through an empty cache; returns the first new token's logits and index.

        ``context`` holds which cache slots are real and each row's count of left padding (its position offset).
        """
        batch, length = prompts_BxS.shape
        if length + max_length > self.config.n_positions:
            raise ValueError(
                f"prompts of {length} tokens and {max_length} new ones need {length + max_length} positions; this "
                f"GPT-2 has {self.config.n_positions}: shorten the prompts or max_length"
            )
        tokens = left_aligned_with_start(prompts_BxS)[0][:, 1:]  # GPT-2 has no start token: drop it
        real = tokens > 0  # prompt tokens are > 0 (0 is the protocol's padding)
        context = {
            "real": jnp.concatenate([real, jnp.ones((batch, max_length), bool)], axis=1),
            "offset": length - real.sum(axis=1),
        }
        shape = (self.config.n_layer, batch, length + max_length, self.config.n_head, self.config.head_dim)
        cache = {"k": jnp.zeros(shape, self.config.compute_dtype), "v": jnp.zeros(shape, self.config.compute_dtype)}
        logits, cache = self.decode_step(tokens, jnp.int32(0), cache, context)
        return logits[:, -1], cache, context, length

    def decode_step(
        self, tokens_BxQ: jax.Array, position: jax.Array, cache: Cache, context: dict
    ) -> tuple[jax.Array, Cache]:
        """Logits ``B x Q x vocab`` for tokens written at cache index ``position..``, attending to what precedes."""
        index_Q = position + jnp.arange(tokens_BxQ.shape[1])
        positions_BxQ = jnp.maximum(index_Q[None] - context["offset"][:, None], 0)
        before_QxT = jnp.arange(cache["k"].shape[2])[None, :] <= index_Q[:, None]
        mask = (before_QxT[None] & context["real"][:, None, :])[:, None]

        def apply(layer: Block, x: jax.Array, inputs: tuple[jax.Array, Cache], _: None) -> tuple[jax.Array, Cache]:
            scale, layer_cache = inputs
            return layer.decode(x, layer_cache, position, mask=mask, scale=scale)

        x, cache = self.layers(apply, self.embed(tokens_BxQ, positions_BxQ), (self._scales(), cache))
        return self.logits(self.final_norm(x)), cache


def last_real_index(segments_BxL: jax.Array) -> jax.Array:
    """Each row's rightmost non-padding position (transformers' rule: left or right padding alike)."""
    return jnp.argmax(jnp.arange(segments_BxL.shape[1]) * (segments_BxL > 0), axis=1)


class GPT2ForSequenceClassification(GPT2Model):
    """A ``score`` layer (no bias) on the state of each row's last real token: one example per row."""

    def __init__(self, cfg: GPT2Config, *, num_labels: int, rngs: nnx.Rngs) -> None:
        if num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {num_labels}")
        super().__init__(cfg, rngs=rngs)
        self.score = logical_param(
            dense_init(cfg), rngs.params(), (cfg.n_embd, num_labels), ("embed", None), cfg.weight_dtype
        )

    def classify(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x num_labels`` float32 scores; without segment ids the last position is the last token."""
        hidden = self.hidden_states(decoder_input_tokens, decoder_segment_ids, deterministic=deterministic, rngs=rngs)
        segments = jnp.ones_like(decoder_input_tokens) if decoder_segment_ids is None else decoder_segment_ids
        last = hidden[jnp.arange(hidden.shape[0]), last_real_index(segments)]
        return (last @ self.score[...].astype(last.dtype)).astype(jnp.float32)
