"""The static hyperparameters of a DeBERTa-v2/v3 encoder, and their Hugging Face ``config.json`` form.

Fields absent from a ``config.json`` take transformers' defaults (``DebertaV2Config`` and the ``getattr`` defaults
of its modules), which are DeBERTa-v2's, not v3's: v3 configs state ``position_buckets``, ``share_att_key``,
``norm_rel_ebd`` and ``position_biased_input: false`` explicitly. Settings transformers accepts but t5x_tl does
not implement (the v2-xlarge convolution, an untied output layer) and fields that contradict each other are refused
with one UserError before any parameter exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from t5x_tl.errors import UserError
from t5x_tl.models.config import ExecutionFields, check_int
from t5x_tl.models.hf_io import activation, num_labels
from t5x_tl.models.layers import ACTIVATIONS as _SHARED_ACTIVATIONS

# t5x_tl's activations plus tanh, which transformers' ACT2FN has and some DeBERTa poolers use.
ACTIVATIONS = {**_SHARED_ACTIVATIONS, "tanh": jnp.tanh}

MODEL_TYPE = "deberta-v2"
HEADS = {"masked_lm": "DebertaV2ForMaskedLM", "sequence_classification": "DebertaV2ForSequenceClassification"}
POSITION_TERMS = ("c2p", "p2c")  # content-to-position and position-to-content, as transformers names them
REL_NORMS = ("none", "layer_norm")
# The size fields transformers always writes; a config.json without them is not a DeBERTa config.
HF_REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
_ARCHITECTURE = re.compile(r"(DebertaV2|Deberta)(For[A-Za-z]+|Model)$")
_FAMILY_TYPES = {"DebertaV2": MODEL_TYPE, "Deberta": "deberta"}


@dataclasses.dataclass(frozen=True)
class DebertaV2Config(ExecutionFields):
    """DeBERTa-v3 by default (shared attention keys, c2p and p2c terms, 256 log buckets, a normalised relative
    table, no absolute positions); ``from_hf`` reads any DeBERTa-v2/v3 ``config.json``.

    ``pos_att_type`` is transformers' ``"p2c|c2p"`` form ("" for none); the attention scale counts its terms even
    without ``relative_attention``, as transformers does. ``legacy_mlm_head`` picks transformers' ``legacy`` masked-LM
    head (``cls.predictions``, its transform projecting to ``embedding_size``) or the ``lm_predictions`` one; both
    decode with the word embedding. ``scan_layers`` and ``remat_policy`` change how the layers run, not the
    parameters.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    layer_norm_eps: float = 1e-7
    relative_attention: bool = True
    max_relative_positions: int = -1  # < 1: max_position_embeddings
    position_buckets: int = 256  # <= 0: no log buckets, relative positions clipped at max_relative_positions
    pos_att_type: str = "p2c|c2p"
    share_att_key: bool = True
    norm_rel_ebd: str = "layer_norm"
    position_biased_input: bool = False
    embedding_size: int | None = None  # None: hidden_size
    pad_token_id: int = 0
    legacy_mlm_head: bool = True
    num_labels: int = 2
    pooler_hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pooler_dropout: float = 0.0
    classifier_dropout: float | None = None  # None: hidden_dropout, as transformers' cls_dropout
    initializer_range: float = 0.02
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
        sizes += ("max_position_embeddings", "num_labels")
        for name in sizes:
            check_int(name, getattr(self, name))
        check_int("type_vocab_size", self.type_vocab_size, minimum=0)
        if self.embedding_size is not None:
            check_int("embedding_size", self.embedding_size)
        for name in ("hidden_act", "pooler_hidden_act"):
            if getattr(self, name) not in ACTIVATIONS:
                raise UserError(f"unsupported {name} {getattr(self, name)!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.hidden_size % self.num_heads:
            raise UserError(
                f"hidden_size={self.hidden_size} is not a multiple of num_heads={self.num_heads}: the fields disagree"
            )
        terms = self.position_terms
        if any(term not in POSITION_TERMS for term in terms) or len(set(terms)) != len(terms):
            raise UserError(
                f"unsupported pos_att_type {self.pos_att_type!r}; use distinct terms of {POSITION_TERMS} joined by '|'"
            )
        if self.norm_rel_ebd not in REL_NORMS:
            raise UserError(f"unsupported norm_rel_ebd {self.norm_rel_ebd!r}; choose one of {REL_NORMS}")
        if self.norm_rel_ebd == "layer_norm" and not self.relative_attention:
            raise UserError("norm_rel_ebd='layer_norm' without relative_attention has no table to normalise: "
                            "the fields disagree")  # fmt: skip
        if not self.legacy_mlm_head and self.embed_dim != self.hidden_size:
            raise UserError(
                f"legacy=false decodes hidden states of {self.hidden_size} with word embeddings of {self.embed_dim} "
                "(embedding_size): the fields disagree (transformers cannot run it either)"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise UserError(f"pad_token_id={self.pad_token_id} is outside the vocabulary of {self.vocab_size}")
        self.check_execution()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def embed_dim(self) -> int:
        """The width of the embedding tables (projected to hidden_size when it differs)."""
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    @property
    def position_terms(self) -> tuple[str, ...]:
        return tuple(term for term in self.pos_att_type.split("|") if term)

    @property
    def attention_span(self) -> int:
        """Relative positions on each side: the buckets when bucketing, else the clipping distance."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative_distance

    @property
    def max_relative_distance(self) -> int:
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout if self.classifier_dropout is None else self.classifier_dropout

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], **overrides: Any) -> DebertaV2Config:
        """Our config from a DeBERTa-v2/v3 ``config.json`` dict, read as transformers 5 reads it."""
        _check_model_type(hf)
        missing = [name for name in HF_REQUIRED_FIELDS if name not in hf]
        if missing:
            raise UserError(f"the config has no {', '.join(missing)}; a deberta-v2 config.json states all of "
                            f"{', '.join(HF_REQUIRED_FIELDS)} (re-save the model with save_pretrained)")  # fmt: skip
        for name in HF_REQUIRED_FIELDS:
            check_int(name, hf[name])
        if (hf.get("conv_kernel_size") or 0) > 0:
            raise UserError(
                f"conv_kernel_size={hf['conv_kernel_size']}: the convolution layer of DeBERTa-v2 xlarge/xxlarge is "
                "not implemented; t5x_tl converts configs without it (DeBERTa-v3)"
            )
        if hf.get("tie_word_embeddings") is False:
            raise UserError("tie_word_embeddings=false (a masked-LM decoder of its own) is not supported")
        _check_agree(hf, "attention_head_size", hf["hidden_size"] // hf["num_attention_heads"])
        _check_agree(hf, "pooler_hidden_size", hf["hidden_size"])
        default = {field.name: field.default for field in dataclasses.fields(cls)}
        fields = dict(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            hidden_act=activation("hidden_act", hf.get("hidden_act", "gelu"), ACTIVATIONS),
            max_position_embeddings=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 0),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-7),
            relative_attention=bool(hf.get("relative_attention", False)),
            max_relative_positions=hf.get("max_relative_positions", -1),
            position_buckets=hf.get("position_buckets", -1),
            pos_att_type=_terms("pos_att_type", hf.get("pos_att_type")),
            share_att_key=bool(hf.get("share_att_key", False)),
            norm_rel_ebd=_terms("norm_rel_ebd", hf.get("norm_rel_ebd", "none")),
            position_biased_input=bool(hf.get("position_biased_input", True)),
            embedding_size=None if hf.get("embedding_size") == hf["hidden_size"] else hf.get("embedding_size"),
            pad_token_id=hf.get("pad_token_id") or 0,
            legacy_mlm_head=bool(hf.get("legacy", True)),
            num_labels=num_labels(hf),
            pooler_hidden_act=activation("pooler_hidden_act", hf.get("pooler_hidden_act", "gelu"), ACTIVATIONS),
            hidden_dropout=hf.get("hidden_dropout_prob", default["hidden_dropout"]),
            attention_dropout=hf.get("attention_probs_dropout_prob", default["attention_dropout"]),
            pooler_dropout=hf.get("pooler_dropout", 0.0),
            classifier_dropout=hf.get("cls_dropout"),
            initializer_range=hf.get("initializer_range", 0.02),
        )
        return cls(**{**fields, **overrides})

    def to_hf(self, head: str = "masked_lm") -> dict[str, Any]:
        """A ``config.json`` dict from which transformers builds this model with ``head``."""
        if head not in HEADS:
            raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
        labels = [f"LABEL_{i}" for i in range(self.num_labels)]
        return {
            "architectures": [HEADS[head]],
            "model_type": MODEL_TYPE,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "relative_attention": self.relative_attention,
            "max_relative_positions": self.max_relative_positions,
            "position_buckets": self.position_buckets,
            "pos_att_type": list(self.position_terms),
            "share_att_key": self.share_att_key,
            "norm_rel_ebd": self.norm_rel_ebd,
            "position_biased_input": self.position_biased_input,
            "embedding_size": self.embed_dim,
            "pad_token_id": self.pad_token_id,
            "legacy": self.legacy_mlm_head,
            "pooler_hidden_size": self.hidden_size,
            "pooler_hidden_act": self.pooler_hidden_act,
            "pooler_dropout": self.pooler_dropout,
            "hidden_dropout_prob": self.hidden_dropout,
            "attention_probs_dropout_prob": self.attention_dropout,
            "cls_dropout": self.classifier_dropout,
            "initializer_range": self.initializer_range,
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "tie_word_embeddings": True,
        }


def _check_model_type(hf: Mapping[str, Any]) -> None:
    """``model_type`` (or, without it, the family ``architectures`` names) must be deberta-v2; both must agree."""
    names = hf.get("architectures") or ()
    types = {_FAMILY_TYPES[match.group(1)] for name in names if (match := _ARCHITECTURE.match(str(name)))}
    model_type = hf.get("model_type")
    if model_type is None:
        if len(types) != 1:
            raise UserError('the config has no model_type (nor architectures naming a DeBERTa class); add '
                            f'"model_type": "{MODEL_TYPE}" to config.json')  # fmt: skip
        (model_type,) = types
    if model_type == "deberta":
        raise UserError(f"model_type='deberta' is DeBERTa v1, which t5x_tl does not implement; it converts "
                        f"{MODEL_TYPE} (DeBERTa-v2 and v3)")  # fmt: skip
    if model_type != MODEL_TYPE:
        raise UserError(f"unsupported architecture model_type={model_type!r}; this loader reads {MODEL_TYPE!r}")
    if types - {model_type}:
        raise UserError(f"the config's model_type={model_type!r} and architectures={list(names)} disagree")


def _check_agree(hf: Mapping[str, Any], name: str, expected: int) -> None:
    if name in hf and hf[name] != expected:
        raise UserError(
            f"the config's {name}={hf[name]!r} differs from {expected} (from hidden_size and num_attention_heads): "
            "t5x_tl implements DeBERTa with the sizes those imply"
        )


def _terms(field: str, value: Any) -> str:
    """transformers' ``"a|b"`` string or list of terms (None: none) -> our lower-case ``"a|b"`` string."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = value.split("|")
    if not isinstance(value, list | tuple) or not all(isinstance(term, str) for term in value):
        raise UserError(f"the config's {field}={value!r} is invalid: it must be a '|'-joined string or a list")
    terms = [term.strip().lower() for term in value]
    return "|".join(term for term in terms if term)
