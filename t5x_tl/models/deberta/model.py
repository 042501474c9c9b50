"""DeBERTa-v2/v3 encoders in Flax NNX with a masked-LM or a sequence-classification head, as transformers'
``DebertaV2ForMaskedLM`` and ``DebertaV2ForSequenceClassification``.

Inputs use t5x_tl's encoder-only batch layout: segment ids > 0 mark real tokens, distinct ids mark packed examples
(attention stays within one) and 0 is padding; without segment ids, every token but the pad id is one example.
Relative positions are differences of two tokens' indices, the same within a packed example as in the example
alone; absolute positions (``position_biased_input``) restart at each example's first token (rows are padded on the
right, as DeBERTa's tokenizers pad). Padding embeddings are zeroed and a padding query attends to every position
uniformly, as in transformers, so every output position equals theirs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.attention import segment_mask
from t5x_tl.models.deberta.config import ACTIVATIONS, DebertaV2Config
from t5x_tl.models.deberta.layers import Layer, dense, norm, relative_rows
from t5x_tl.models.encoder_heads import HeadedEncoder
from t5x_tl.models.gpt2.model import positions_of
from t5x_tl.models.layers import logical_param
from t5x_tl.models.sharding import BLD, BLV, constrain
from t5x_tl.models.stack import LayerStack
from t5x_tl.models.t5 import dropout_key


class Embeddings(nnx.Module):
    """Word (+ absolute position) (+ token type) embeddings, projected to hidden_size when narrower, then LayerNorm,
    padding zeroed, and dropout."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.config = cfg
        normal = nnx.initializers.normal(cfg.initializer_range)

        def table(rows: int, axis: str | None) -> nnx.Param:
            return logical_param(normal, rngs.params(), (rows, cfg.embed_dim), (axis, "embed"), cfg.weight_dtype)

        self.word = table(cfg.vocab_size, "vocab")
        if cfg.position_biased_input:
            self.position = table(cfg.max_position_embeddings, None)
        if cfg.type_vocab_size:
            self.token_type = table(cfg.type_vocab_size, None)
        if cfg.embed_dim != cfg.hidden_size:
            shape = (cfg.embed_dim, cfg.hidden_size)
            self.projection = logical_param(normal, rngs.params(), shape, (None, "embed"), cfg.weight_dtype)
        self.norm = norm(cfg, cfg.hidden_size, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout)

    def __call__(
        self,
        tokens_BxL: jax.Array,
        segments_BxL: jax.Array,
        token_types_BxL: jax.Array,
        *,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> jax.Array:
        dtype = self.config.compute_dtype
        x_BxLxE = jnp.take(self.word[...], tokens_BxL, axis=0)
        if hasattr(self, "position"):
            x_BxLxE = x_BxLxE + jnp.take(self.position[...], positions_of(segments_BxL), axis=0)
        if hasattr(self, "token_type"):
            x_BxLxE = x_BxLxE + jnp.take(self.token_type[...], token_types_BxL, axis=0)
        x_BxLxE = x_BxLxE.astype(dtype)
        if hasattr(self, "projection"):
            x_BxLxE = x_BxLxE @ self.projection[...].astype(dtype)
        x_BxLxD = self.norm(x_BxLxE) * (segments_BxL > 0)[..., None].astype(dtype)
        return constrain(self.dropout(x_BxLxD, deterministic=deterministic, rngs=rngs), BLD)


class RelativeEmbeddings(nnx.Module):
    """The ``2 * span`` relative-position rows every layer's attention reads, LayerNorm-ed when ``norm_rel_ebd``
    says so."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        shape = (2 * cfg.attention_span, cfg.hidden_size)
        normal = nnx.initializers.normal(cfg.initializer_range)
        self.table = logical_param(normal, rngs.params(), shape, ("relpos_buckets", "embed"), cfg.weight_dtype)
        if cfg.norm_rel_ebd == "layer_norm":
            self.norm = norm(cfg, cfg.hidden_size, rngs)
        self.dtype = cfg.compute_dtype

    def __call__(self) -> jax.Array:
        table_RxD = self.table[...].astype(self.dtype)
        return self.norm(table_RxD) if hasattr(self, "norm") else table_RxD


class MaskedLMHead(nnx.Module):
    """Dense + activation + LayerNorm, then logits from the word embedding (tied) plus a bias of their own.

    transformers' legacy head (``cls.predictions``) projects to ``embedding_size``, the other (``lm_predictions``)
    to hidden_size, which then must equal it: either way the transform's width is the word embedding's.
    """

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.activation = cfg.hidden_act
        self.dense = dense(cfg, cfg.hidden_size, cfg.embed_dim, ("embed", None), rngs)
        self.norm = norm(cfg, cfg.embed_dim, rngs)
        zeros = nnx.initializers.zeros
        self.bias = logical_param(zeros, rngs.params(), (cfg.vocab_size,), ("vocab",), cfg.weight_dtype)

    def __call__(self, x_BxLxD: jax.Array, word_embedding_VxE: jax.Array) -> jax.Array:
        h_BxLxE = self.norm(ACTIVATIONS[self.activation](self.dense(x_BxLxD)))
        logits_BxLxV = h_BxLxE @ word_embedding_VxE.astype(h_BxLxE.dtype).T + self.bias[...].astype(h_BxLxE.dtype)
        return constrain(logits_BxLxV.astype(jnp.float32), BLV)


class ClassificationHead(nnx.Module):
    """transformers' ``ContextPooler`` (the first token, dropout, dense, ``pooler_hidden_act``), dropout, then a
    linear map to the labels."""

    def __init__(self, cfg: DebertaV2Config, rngs: nnx.Rngs) -> None:
        self.activation = cfg.pooler_hidden_act
        self.pooler = dense(cfg, cfg.hidden_size, cfg.hidden_size, ("embed", None), rngs)
        self.out = dense(cfg, cfg.hidden_size, cfg.num_labels, (None, None), rngs)
        self.pooler_dropout = nnx.Dropout(cfg.pooler_dropout)
        self.dropout = nnx.Dropout(cfg.classifier_dropout_rate)

    def __call__(self, x_BxLxD: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        first_BxD = self.pooler_dropout(x_BxLxD[:, 0], **drop)
        pooled_BxD = self.dropout(ACTIVATIONS[self.activation](self.pooler(first_BxD)), **drop)
        return self.out(pooled_BxD).astype(jnp.float32)


class DebertaV2(HeadedEncoder):
    """A DeBERTa-v2/v3 encoder with one ``head``: ``"masked_lm"`` or ``"sequence_classification"``
    (``cfg.num_labels`` outputs)."""

    def __init__(self, cfg: DebertaV2Config, *, head: str = "masked_lm", rngs: nnx.Rngs) -> None:
        self._choose_head(cfg, head)
        self.embeddings = Embeddings(cfg, rngs)
        if cfg.relative_attention:
            self.relative = RelativeEmbeddings(cfg, rngs)
        self.layers = LayerStack(
            lambda r: Layer(cfg, r), cfg.num_layers, scan=cfg.scan_layers, remat_policy=cfg.remat_policy, rngs=rngs
        )
        self._build_head(rngs, MaskedLMHead, ClassificationHead)

    def _encode(
        self,
        tokens_BxL: jax.Array,
        segments_BxL: jax.Array | None,
        token_types_BxL: jax.Array | None,
        *,
        keep_layers: bool,
        deterministic: bool,
        rngs: nnx.Rngs | None,
    ) -> tuple[jax.Array, jax.Array | None]:
        """The last layer's states, and with ``keep_layers`` the embeddings and every layer's output stacked."""
        cfg = self.config
        length = tokens_BxL.shape[1]
        if cfg.position_biased_input and length > cfg.max_position_embeddings:
            raise ValueError(f"{length} tokens exceed the {cfg.max_position_embeddings} absolute positions")
        if segments_BxL is None:
            segments_BxL = (tokens_BxL != cfg.pad_token_id).astype(jnp.int32)
        if token_types_BxL is None:
            token_types_BxL = jnp.zeros_like(tokens_BxL)
        x_BxLxD = self.embeddings(tokens_BxL, segments_BxL, token_types_BxL, deterministic=deterministic, rngs=rngs)
        mask = segment_mask(segments_BxL, segments_BxL)
        relative_RxD = self.relative() if cfg.relative_attention else None
        rows = relative_rows(length, cfg)

        def apply(layer: Layer, x: jax.Array, _: None, layer_rngs: nnx.Rngs | None) -> tuple[jax.Array, jax.Array]:
            out = layer(
                x, mask_Bx1xLxL=mask, relative_RxD=relative_RxD, rows=rows, deterministic=deterministic, rngs=layer_rngs
            )
            return out, out if keep_layers else None

        last_BxLxD, outputs_NxBxLxD = self.layers(apply, x_BxLxD, dropout_key=dropout_key(rngs))
        return last_BxLxD, jnp.concatenate([x_BxLxD[None], outputs_NxBxLxD]) if keep_layers else None

    def hidden_states(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        token_type_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``(num_layers + 1) x B x L x hidden_size``: the embeddings and every layer's output, as transformers'
        ``hidden_states``."""
        options = dict(keep_layers=True, deterministic=deterministic, rngs=rngs)
        return self._encode(encoder_input_tokens, encoder_segment_ids, token_type_ids, **options)[1]

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        *,
        token_type_ids: jax.Array | None = None,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """``B x L x hidden_size``: the last layer's states (transformers' ``last_hidden_state``)."""
        options = dict(keep_layers=False, deterministic=deterministic, rngs=rngs)
        return self._encode(encoder_input_tokens, encoder_segment_ids, token_type_ids, **options)[0]
