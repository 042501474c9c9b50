"""The Recurrent Memory Transformer (Bulatov, Kuratov and Burtsev, NeurIPS 2022) over any backbone of the family.

Long inputs are cut into segments (:mod:`t5x_tl.models.segments`); each segment is processed with ``M`` memory
vectors beside its tokens, and what the backbone writes at the memory positions becomes the next segment's
memory. The backbone is unchanged: memory enters as input embeddings, so a pretrained (or Hugging Face
imported) T5 gets memory without any new layer. Only the initial memory (``M x D``) is new.

- encoder-only: ``[memory, segment]``; the next memory is the output at the memory positions; token logits for
  every segment, the pooled head on the last.
- decoder-only: ``[read memory, segment, write memory]`` under the causal mask; the write positions' outputs
  become the next memory; next-token logits for every segment (language modelling over the whole input).
- encoder-decoder: the encoder as encoder-only; the decoder cross-attends to the last segment's encoder output,
  memory included (the loss is on the targets, i.e. on the last segment).

All segments run in one ``jax.lax.scan`` inside the caller's jit (compile time flat in the segment count),
optionally rematerialised per segment, with truncated backpropagation through time. An empty segment (a row
with fewer segments than the batch) leaves that row's memory and its last-segment output as they were.
Packed inputs are not supported: a row is one long example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import causal_mask, prefix_mask, segment_mask
from t5x_tl.models.blocks import Cache
from t5x_tl.models.decoder_only import DecoderOnly
from t5x_tl.models.encoder_only import pool
from t5x_tl.models.layers import logical_param
from t5x_tl.models.segments import EOS_ID, MemoryConfig, Segments, merge, split
from t5x_tl.models.sharding import BLD, constrain
from t5x_tl.models.t5 import EncodingModel, dropout_key

# fn(backbone, memory_BxMxD, per-segment inputs, dropout rngs) -> (written memory, hidden_BxKxD, keys_BxK)
SegmentFn = Callable[[nnx.Module, jax.Array, tuple, nnx.Rngs | None], tuple[jax.Array, jax.Array, jax.Array]]


def _real_decoder_positions(tokens_BxN: jax.Array, segment_ids_BxN: jax.Array | None) -> jax.Array:
    """Decoder inputs start with the start token 0, so padding is whatever follows the last non-zero token."""
    if segment_ids_BxN is not None:
        return segment_ids_BxN > 0
    position = jnp.arange(tokens_BxN.shape[1])[None, :]
    last = jnp.max(jnp.where(tokens_BxN > 0, position, 0), axis=1, keepdims=True)
    return position <= last


class RecurrentMemory(nnx.Module):
    """A backbone with recurrent memory: what every layout shares (the initial memory and the scan over segments).

    A subclass per backbone layout (:class:`RecurrentEncoder`, :class:`RecurrentEncoderDecoder`,
    :class:`RecurrentDecoder`) lays out a segment and keeps the backbone's call signature, so the training step,
    the evaluator and decoding use it as they use the backbone. The eval-time controls ``reset_memory`` (every
    segment reads the initial memory) and ``memory_permutation`` (the batch's last segment of row ``i`` reads the
    memory of row ``permutation[i]``: every row's last segment when rows are right-aligned or equally long) take
    memory out of the loop or swap it between examples.
    """

    WRITES_AT_END: ClassVar[bool]  # decoders append write positions; encoders write at the memory positions

    @classmethod
    def segment_length(cls, memory: MemoryConfig) -> int:
        """What the backbone sees per segment: memory, tokens, EOS (encoders) or the write memory (decoders)."""
        if cls.WRITES_AT_END:
            return 2 * memory.memory_size + memory.segment_size
        return memory.memory_size + memory.segment_size + int(memory.segment_eos)

    @classmethod
    def check(cls, memory: MemoryConfig, kind: str) -> None:
        """Raises ValueError when a segment of a ``kind`` model is longer than the backbone's ``max_length``."""
        length = cls.segment_length(memory)
        if length > memory.max_length:
            raise ValueError(
                f"a {kind} segment holds {length} positions (memory_size={memory.memory_size}, "
                f"segment_size={memory.segment_size}, special and write tokens), "
                f"beyond max_length={memory.max_length}: "
                "shorten segment_size or memory_size, or raise max_length if the backbone was trained longer"
            )

    def __init__(self, backbone: nnx.Module, memory: MemoryConfig, *, rngs: nnx.Rngs) -> None:
        self.check(memory, type(backbone).__name__)
        self.backbone = backbone
        self.memory_config = memory
        cfg = backbone.config
        self.config = cfg
        if memory.memory_size:
            self.memory = logical_param(
                nnx.initializers.normal(1.0),  # the scale of T5's token embeddings, which it sits beside
                rngs.params(),
                (memory.memory_size, cfg.d_model),
                (None, "embed"),
                cfg.weight_dtype,
            )

    def initial_memory(self, batch: int) -> jax.Array:
        """The learned initial memory for ``batch`` rows, ``B x M x D`` (``M`` may be 0)."""
        size, cfg = self.memory_config.memory_size, self.config
        if not size:
            return jnp.zeros((batch, 0, cfg.d_model), cfg.compute_dtype)
        return constrain(jnp.broadcast_to(self.memory[...].astype(cfg.compute_dtype), (batch, size, cfg.d_model)), BLD)

    def recur(
        self,
        segment_fn: SegmentFn,
        segments: Segments,
        *,
        keep_hidden: bool,
        rngs: nnx.Rngs | None = None,
        reset_memory: bool = False,
        memory_permutation: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array], jax.Array | None]:
        """Runs ``segment_fn`` over the segments, carrying memory.

        Returns the final memory, the last non-empty segment's (hidden ``B x K x D``, keys ``B x K``) and, with
        ``keep_hidden``, every segment's hidden states stacked ``S x B x K x D``.
        """
        cfg = self.memory_config
        count, batch = segments.real_SxBxT.shape[:2]
        graphdef, state = nnx.split(self.backbone)
        state = nnx.to_pure_dict(state)  # plain arrays: merged afresh inside the body's own trace
        initial = self.initial_memory(batch)
        key = dropout_key(rngs)
        shapes = jax.eval_shape(lambda: segment_fn(self.backbone, initial, tuple(v[0] for v in segments.values), None))
        last = tuple(jnp.zeros(s.shape, s.dtype) for s in shapes[1:])

        def body(
            carry: tuple[jax.Array, tuple[jax.Array, jax.Array]],
            inputs: tuple[jax.Array, tuple[jax.Array, ...], jax.Array],
        ) -> tuple[tuple[jax.Array, tuple[jax.Array, jax.Array]], jax.Array | None]:
            memory, last = carry
            index, values, present_B = inputs
            backbone = nnx.merge(graphdef, state)
            if memory_permutation is not None:
                memory = jnp.where(index == count - 1, memory[memory_permutation], memory)
            read = initial if reset_memory else memory
            segment_rngs = None if key is None else nnx.Rngs(dropout=jax.random.fold_in(key, index))
            written, hidden, keys = segment_fn(backbone, read, values, segment_rngs)
            keep = present_B[:, None, None]
            if cfg.write:
                memory = jnp.where(keep, written, memory)
            if cfg.bptt_depth:
                memory = jnp.where((index + 1) % cfg.bptt_depth == 0, jax.lax.stop_gradient(memory), memory)
            last = (jnp.where(keep, hidden, last[0]), jnp.where(present_B[:, None], keys, last[1]))
            return (memory, last), hidden if keep_hidden else None

        if cfg.remat:
            body = jax.checkpoint(body, prevent_cse=not cfg.scan)
        xs = (jnp.arange(count), segments.values, segments.present_SxB)
        if cfg.scan:
            (memory, last), stacked = jax.lax.scan(body, (initial, last), xs)
            return memory, last, stacked
        outputs = []
        carry = (initial, last)
        for index in range(count):
            carry, hidden = body(carry, jax.tree.map(lambda x, i=index: x[i], xs))
            outputs.append(hidden)
        memory, last = carry
        return memory, last, jnp.stack(outputs) if keep_hidden else None

    def _token_logits(self, stacked_SxBxKxD: jax.Array, segments: Segments, offset: int, length: int) -> jax.Array:
        size = self.memory_config.segment_size
        hidden = merge(stacked_SxBxKxD[:, :, offset : offset + size], segments, length)
        return self.backbone.logits(hidden)

    def start_decoding(self, prompts_BxS: jax.Array, max_length: int) -> tuple[jax.Array, Cache, dict, int]:
        raise ValueError(f"decoding with recurrent memory needs an encoder-decoder backbone, not {type(self).__name__}")


class RecurrentEncoder(RecurrentMemory):
    """Encoders: ``[memory, segment(, EOS)]``; token logits for every segment, the pooled head on the last."""

    WRITES_AT_END = False

    def _encoder_segment(
        self,
        backbone: EncodingModel,
        memory_BxMxD: jax.Array,
        values: tuple[jax.Array, jax.Array],
        rngs: nnx.Rngs | None,
        *,
        deterministic: bool,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        tokens_BxT, real_BxT = values
        size = memory_BxMxD.shape[1]
        batch = tokens_BxT.shape[0]
        keys = [jnp.ones((batch, size), bool), real_BxT]
        if self.memory_config.segment_eos:
            tokens_BxT = jnp.concatenate([tokens_BxT, jnp.full((batch, 1), EOS_ID, tokens_BxT.dtype)], axis=1)
            keys.append(real_BxT.any(axis=1, keepdims=True))
        keys_BxK = jnp.concatenate(keys, axis=1)
        x = constrain(jnp.concatenate([memory_BxMxD, backbone.token_embed(tokens_BxT)], axis=1), BLD)
        hidden = backbone.encoder(x, keys_BxK.astype(jnp.int32), deterministic=deterministic, rngs=rngs)
        return hidden[:, :size], hidden, keys_BxK

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
        keep_hidden: bool = False,
        reset_memory: bool = False,
        memory_permutation: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array], Segments, jax.Array | None]:
        """Encodes every segment: (final memory, last segment's (hidden, keys), the segments, stacked hidden)."""
        real = encoder_input_tokens > 0 if encoder_segment_ids is None else encoder_segment_ids > 0
        segments = split((encoder_input_tokens, real), real, self.memory_config)
        fn = lambda b, m, v, r: self._encoder_segment(b, m, v, r, deterministic=deterministic)
        memory, last, stacked = self.recur(
            fn,
            segments,
            keep_hidden=keep_hidden,
            rngs=rngs,
            reset_memory=reset_memory,
            memory_permutation=memory_permutation,
        )
        return memory, last, segments, stacked

    def __call__(
        self, encoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None, **options: Any
    ) -> jax.Array:
        """Float32 token logits, as the encoder-only backbone returns them."""
        _, _, segments, stacked = self.encode(encoder_input_tokens, encoder_segment_ids, keep_hidden=True, **options)
        return self._token_logits(stacked, segments, self.memory_config.memory_size, encoder_input_tokens.shape[1])

    def classify(
        self, encoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None, **options: Any
    ) -> jax.Array:
        """Encoder-only: ``B x num_outputs`` of the backbone's pooled head over the last segment (memory
        included)."""
        if not hasattr(self.backbone, "head"):
            raise ValueError("classify needs an encoder_only backbone built with num_outputs > 0")
        _, (hidden, keys), _, _ = self.encode(encoder_input_tokens, encoder_segment_ids, **options)
        pooled = pool(hidden, keys.astype(jnp.int32), self.backbone.pooling)
        return (pooled @ self.backbone.head[...].astype(pooled.dtype)).astype(jnp.float32)


class RecurrentEncoderDecoder(RecurrentEncoder):
    """The encoder as :class:`RecurrentEncoder`; the decoder cross-attends to the last segment's encoder output."""

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
        **controls: Any,
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        _, (hidden, keys), _, _ = self.encode(encoder_input_tokens, encoder_segment_ids, **drop, **controls)
        if decoder_segment_ids is None:
            decoder_segment_ids = jnp.ones_like(decoder_input_tokens, dtype=jnp.int32)
        backbone = self.backbone
        y = backbone.token_embed(decoder_input_tokens)
        y = backbone.decoder(y, hidden, decoder_segment_ids, keys.astype(jnp.int32), **drop)
        return backbone.logits(y)

    def start_decoding(self, prompts_BxS: jax.Array, max_length: int) -> tuple[jax.Array, Cache, dict, int]:
        """As :meth:`EncoderDecoder.start_decoding`, reading the last segment's encoder output and memory."""
        _, (hidden, keys), _, _ = self.encode(prompts_BxS)
        return self.backbone.first_step(*self.backbone.cache_for(hidden, keys.astype(jnp.int32), max_length))

    def decode_step(
        self, tokens_BxQ: jax.Array, position: jax.Array, cache: Cache, context: dict
    ) -> tuple[jax.Array, Cache]:
        return self.backbone.decode_step(tokens_BxQ, position, cache, context)


class RecurrentDecoder(RecurrentMemory):
    """Decoders: ``[read memory, segment, write memory]`` under the causal (or prefix) mask."""

    WRITES_AT_END = True

    def _decoder_segment(
        self,
        backbone: DecoderOnly,
        memory_BxMxD: jax.Array,
        values: tuple[jax.Array, jax.Array, jax.Array],
        rngs: nnx.Rngs | None,
        *,
        deterministic: bool,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        tokens_BxT, real_BxT, prefix_BxT = values
        size, (batch, length) = memory_BxMxD.shape[1], tokens_BxT.shape
        memory_keys = jnp.ones((batch, size), bool)
        keys_BxK = jnp.concatenate([memory_keys, real_BxT, memory_keys], axis=1)
        allowed = causal_mask(2 * size + length)
        if backbone.prefix_lm:  # the read memory and the prefix see each other; writing stays causal
            allowed = allowed | prefix_mask(jnp.concatenate([memory_keys, prefix_BxT, ~memory_keys], axis=1))
        mask = segment_mask(keys_BxK.astype(jnp.int32), keys_BxK.astype(jnp.int32)) & allowed
        x = constrain(jnp.concatenate([memory_BxMxD, backbone.token_embed(tokens_BxT), memory_BxMxD], axis=1), BLD)
        hidden = backbone.transform(x, mask, deterministic=deterministic, rngs=rngs)
        return hidden[:, size + length :], hidden, keys_BxK

    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
        **controls: Any,
    ) -> jax.Array:
        if decoder_causal_attention is not None and not self.backbone.prefix_lm:
            raise ValueError("decoder_causal_attention marks prefix-LM data; use the prefix_lm kind")
        real = _real_decoder_positions(decoder_input_tokens, decoder_segment_ids)
        prefix = jnp.zeros_like(real) if decoder_causal_attention is None else decoder_causal_attention > 0
        segments = split((decoder_input_tokens, real, prefix), real, self.memory_config)
        fn = lambda b, m, v, r: self._decoder_segment(b, m, v, r, deterministic=deterministic)
        _, _, stacked = self.recur(fn, segments, keep_hidden=True, rngs=rngs, **controls)
        return self._token_logits(stacked, segments, self.memory_config.memory_size, decoder_input_tokens.shape[1])
