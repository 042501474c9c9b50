"""BERT and RoBERTa encoders in Flax NNX with a masked-LM or a sequence-classification head.

Inputs use t5x_tl's encoder-only batch layout: segment ids > 0 mark real tokens, distinct ids mark packed examples
(attention stays within one) and 0 is padding; without segment ids, every token but the pad id is one example.
Position ids restart at each packed example's first token: BERT counts from 0 (padding after an example continues
its count, as transformers' ``arange`` does for right-padded rows), RoBERTa from pad id + 1 with padding at the pad
id, as transformers' ``create_position_ids_from_input_ids``. Rows are padded on the right, as the tokenizers pad.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from t5x_tl.models.bert.config import BertConfig
from t5x_tl.models.bert.layers import SelfAttention, encoder_mask
from t5x_tl.models.encoder_heads import HeadedEncoder
from t5x_tl.models.layers import ACTIVATIONS, Dense, LayerNorm, logical_param
from t5x_tl.models.sharding import BLD, BLF, BLV, constrain
from t5x_tl.models.stack import LayerStack
from t5x_tl.models.t5 import dropout_key


def _common(cfg: BertConfig, rngs: nnx.Rngs) -> dict:
    return {"dtype": cfg.compute_dtype, "param_dtype": cfg.weight_dtype, "rngs": rngs}


def _dense(cfg: BertConfig, features_in: int, features_out: int, axes: tuple, rngs: nnx.Rngs) -> Dense:
    return Dense(features_in, features_out, axes, init_std=cfg.initializer_range, **_common(cfg, rngs))


def _norm(cfg: BertConfig, rngs: nnx.Rngs) -> LayerNorm:
    return LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **_common(cfg, rngs))


def position_ids(segments_BxL: jax.Array, cfg: BertConfig) -> jax.Array:
    """Each token's position id, counted from the first token of its packed example (see the module docstring)."""
    index_L = jnp.arange(segments_BxL.shape[1])
    previous_BxL = jnp.pad(segments_BxL[:, :-1], ((0, 0), (1, 0)))
    starts_BxL = (segments_BxL > 0) & (segments_BxL != previous_BxL)
    start_BxL = jax.lax.cummax(jnp.where(starts_BxL, index_L, 0), axis=1)
    positions_BxL = index_L - start_BxL + cfg.position_offset
    if cfg.model_type == "roberta":
        positions_BxL = jnp.where(segments_BxL > 0, positions_BxL, cfg.pad_token_id)
    return positions_BxL


class Embeddings(nnx.Module):
    """Word + learned absolute position + token type embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs) -> None:
        self.config = cfg
        normal = nnx.initializers.normal(cfg.initializer_range)

        def table(rows: int, axis: str | None) -> nnx.Param:
            return logical_param(normal, rngs.params(), (rows, cfg.hidden_size), (axis, "embed"), cfg.weight_dtype)

        self.word = table(cfg.vocab_size, "vocab")
        self.position = table(cfg.max_position_embeddings, None)
        self.token_type = table(cfg.type_vocab_size, None)
        self.norm = _norm(cfg, rngs)
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
        x_BxLxD = (
            jnp.take(self.word[...], tokens_BxL, axis=0)
            + jnp.take(self.token_type[...], token_types_BxL, axis=0)
            + jnp.take(self.position[...], position_ids(segments_BxL, self.config), axis=0)
        )
        x_BxLxD = self.norm(x_BxLxD.astype(self.config.compute_dtype))
        return constrain(self.dropout(x_BxLxD, deterministic=deterministic, rngs=rngs), BLD)


class Layer(nnx.Module):
    """A post-LayerNorm Transformer layer: ``norm(x + attention(x))``, then ``norm(x + mlp(x))``."""

    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs) -> None:
        self.activation = cfg.hidden_act
        self.attention = SelfAttention(
            cfg.hidden_size,
            cfg.num_heads,
            cfg.head_dim,
            dropout_rate=cfg.attention_dropout,
            init_std=cfg.initializer_range,
            **_common(cfg, rngs),
        )
        self.attention_norm = _norm(cfg, rngs)
        self.mlp_in = _dense(cfg, cfg.hidden_size, cfg.intermediate_size, ("embed", "mlp"), rngs)
        self.mlp_out = _dense(cfg, cfg.intermediate_size, cfg.hidden_size, ("mlp", "embed"), rngs)
        self.mlp_norm = _norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout)

    def __call__(
        self, x_BxLxD: jax.Array, *, mask_Bx1xLxL: jax.Array, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        attended_BxLxD = self.attention(x_BxLxD, mask_Bx1xLxL=mask_Bx1xLxL, **drop)
        x_BxLxD = constrain(self.attention_norm(x_BxLxD + self.dropout(attended_BxLxD, **drop)), BLD)
        h_BxLxF = constrain(ACTIVATIONS[self.activation](self.mlp_in(x_BxLxD)), BLF)
        return constrain(self.mlp_norm(x_BxLxD + self.dropout(self.mlp_out(h_BxLxF), **drop)), BLD)


class MaskedLMHead(nnx.Module):
    """Dense + activation + LayerNorm, then logits from the word embedding (tied) plus a bias of their own.

    BERT's transform uses ``hidden_act``; RoBERTa's always the exact GELU, as transformers' ``RobertaLMHead``.
    """

    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs) -> None:
        self.activation = "gelu" if cfg.model_type == "roberta" else cfg.hidden_act
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size, ("embed", None), rngs)
        self.norm = _norm(cfg, rngs)
        zeros = nnx.initializers.zeros
        self.bias = logical_param(zeros, rngs.params(), (cfg.vocab_size,), ("vocab",), cfg.weight_dtype)

    def __call__(self, x_BxLxD: jax.Array, word_embedding_VxD: jax.Array) -> jax.Array:
        h_BxLxD = self.norm(ACTIVATIONS[self.activation](self.dense(x_BxLxD)))
        logits_BxLxV = h_BxLxD @ word_embedding_VxD.astype(h_BxLxD.dtype).T + self.bias[...].astype(h_BxLxD.dtype)
        return constrain(logits_BxLxV.astype(jnp.float32), BLV)


class ClassificationHead(nnx.Module):
    """The first token's state through dense + tanh, then a linear map to the labels.

    BERT's dense is its pooler and dropout comes after it only; RoBERTa's head drops before the dense too.
    """

    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs) -> None:
        self.drop_first = cfg.model_type == "roberta"
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size, ("embed", None), rngs)
        self.out = _dense(cfg, cfg.hidden_size, cfg.num_labels, (None, None), rngs)
        self.dropout = nnx.Dropout(cfg.classifier_dropout_rate)

    def __call__(self, x_BxLxD: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        drop = dict(deterministic=deterministic, rngs=rngs)
        first_BxD = x_BxLxD[:, 0]
        if self.drop_first:
            first_BxD = self.dropout(first_BxD, **drop)
        pooled_BxD = self.dropout(jnp.tanh(self.dense(first_BxD)), **drop)
        return self.out(pooled_BxD).astype(jnp.float32)


class Bert(HeadedEncoder):
    """A BERT or RoBERTa encoder (``cfg.model_type``) with one ``head``: ``"masked_lm"`` or
    ``"sequence_classification"`` (``cfg.num_labels`` outputs), as transformers' ``...ForMaskedLM`` and
    ``...ForSequenceClassification`` classes."""

    def __init__(self, cfg: BertConfig, *, head: str = "masked_lm", rngs: nnx.Rngs) -> None:
        self._choose_head(cfg, head)
        self.embeddings = Embeddings(cfg, rngs)
        self.layers = LayerStack(
            lambda r: Layer(cfg, r), cfg.num_layers, scan=cfg.scan_layers, remat_policy=cfg.remat_policy, rngs=rngs
        )
        self._build_head(rngs, MaskedLMHead, ClassificationHead)

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
        cfg = self.config
        if encoder_input_tokens.shape[1] > cfg.max_length:
            raise ValueError(f"{encoder_input_tokens.shape[1]} tokens exceed the {cfg.max_length} positions")
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens != cfg.pad_token_id).astype(jnp.int32)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(encoder_input_tokens)
        mask = encoder_mask(encoder_segment_ids)
        x_BxLxD = self.embeddings(
            encoder_input_tokens, encoder_segment_ids, token_type_ids, deterministic=deterministic, rngs=rngs
        )

        def apply(layer: Layer, x: jax.Array, _: None, layer_rngs: nnx.Rngs | None) -> tuple[jax.Array, None]:
            return layer(x, mask_Bx1xLxL=mask, deterministic=deterministic, rngs=layer_rngs), None

        x_BxLxD, _ = self.layers(apply, x_BxLxD, dropout_key=dropout_key(rngs))
        return x_BxLxD
