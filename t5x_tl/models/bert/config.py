"""The static hyperparameters of a BERT-family encoder, and their Hugging Face ``config.json`` form.

BERT and RoBERTa share every module; they differ in the pad id, in how position ids are counted (RoBERTa's start
after the pad id, as fairseq's do) and in the names and shape of their heads, all of which follow ``model_type``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from t5x_tl.errors import UserError
from t5x_tl.models.config import ExecutionFields, check_int
from t5x_tl.models.hf_io import activation, num_labels
from t5x_tl.models.layers import ACTIVATIONS

FAMILIES = {"bert": "Bert", "roberta": "Roberta"}  # model_type -> transformers' class prefix
HEADS = {"masked_lm": "ForMaskedLM", "sequence_classification": "ForSequenceClassification"}  # head -> class suffix
# The size fields transformers always writes; a config.json without them is not a BERT-family config.
HF_REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
_ARCHITECTURE = re.compile(r"(Bert|Roberta)(For[A-Za-z]+|Model)$")


@dataclasses.dataclass(frozen=True)
class BertConfig(ExecutionFields):
    """BERT by default; RoBERTa is ``model_type="roberta", pad_token_id=1`` (and its 514 position embeddings).

    ``num_labels`` sizes the sequence-classification head only. ``scan_layers`` and ``remat_policy`` change how the
    layers execute, not the parameters.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"  # a name of t5x_tl.models.layers.ACTIVATIONS
    model_type: str = "bert"
    pad_token_id: int = 0
    num_labels: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    classifier_dropout: float | None = None  # None: hidden_dropout, as in transformers
    initializer_range: float = 0.02
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"

    def __post_init__(self) -> None:
        sizes = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size")
        sizes += ("max_position_embeddings", "type_vocab_size", "num_labels")
        for name in sizes:
            check_int(name, getattr(self, name))
        if self.model_type not in FAMILIES:
            raise UserError(f"unsupported model_type {self.model_type!r}; the BERT family is {tuple(FAMILIES)}")
        if self.hidden_act not in ACTIVATIONS:
            raise UserError(f"unsupported hidden_act {self.hidden_act!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.hidden_size % self.num_heads:
            raise UserError(
                f"hidden_size={self.hidden_size} is not a multiple of num_heads={self.num_heads}: the fields disagree"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise UserError(f"pad_token_id={self.pad_token_id} is outside the vocabulary of {self.vocab_size}")
        if self.max_length < 1:
            raise UserError(
                f"max_position_embeddings={self.max_position_embeddings} leaves no position after RoBERTa's offset "
                f"pad_token_id + 1 = {self.position_offset}: the fields disagree"
            )
        self.check_execution()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def position_offset(self) -> int:
        """The position id of a sequence's first token: 0 for BERT, pad id + 1 for RoBERTa."""
        return self.pad_token_id + 1 if self.model_type == "roberta" else 0

    @property
    def max_length(self) -> int:
        """The longest sequence the position table covers."""
        return self.max_position_embeddings - self.position_offset

    @property
    def classifier_dropout_rate(self) -> float:
        return self.hidden_dropout if self.classifier_dropout is None else self.classifier_dropout

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], **overrides: Any) -> BertConfig:
        """Our config from a BERT or RoBERTa ``config.json`` dict, read as transformers 5 reads it."""
        model_type = _model_type(hf)
        missing = [name for name in HF_REQUIRED_FIELDS if name not in hf]
        if missing:
            raise UserError(f"the config has no {', '.join(missing)}; a {model_type} config.json states all of "
                            f"{', '.join(HF_REQUIRED_FIELDS)} (re-save the model with save_pretrained)")  # fmt: skip
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise UserError(
                f"unsupported position_embedding_type {hf['position_embedding_type']!r}: t5x_tl's BERT family has "
                "learned absolute positions only"
            )
        if hf.get("is_decoder") or hf.get("add_cross_attention"):
            raise UserError("the config is a decoder (is_decoder / add_cross_attention): t5x_tl's BERT is an encoder")
        if hf.get("tie_word_embeddings") is False:
            raise UserError("tie_word_embeddings=false (an untied masked-LM decoder) is not supported")
        default = cls.__dataclass_fields__
        fields = dict(
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"],
            max_position_embeddings=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            hidden_act=activation("hidden_act", hf.get("hidden_act", "gelu")),
            model_type=model_type,
            pad_token_id=hf.get("pad_token_id", 1 if model_type == "roberta" else 0),
            num_labels=num_labels(hf),
            hidden_dropout=hf.get("hidden_dropout_prob", default["hidden_dropout"].default),
            attention_dropout=hf.get("attention_probs_dropout_prob", default["attention_dropout"].default),
            classifier_dropout=hf.get("classifier_dropout"),
            initializer_range=hf.get("initializer_range", 0.02),
        )
        return cls(**{**fields, **overrides})

    def to_hf(self, head: str = "masked_lm") -> dict[str, Any]:
        """A ``config.json`` dict from which transformers builds this model with ``head``."""
        if head not in HEADS:
            raise UserError(f"unknown head {head!r}; choose one of {tuple(HEADS)}")
        labels = [f"LABEL_{i}" for i in range(self.num_labels)]
        return {
            "architectures": [FAMILIES[self.model_type] + HEADS[head]],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": self.hidden_act,
            "pad_token_id": self.pad_token_id,
            "hidden_dropout_prob": self.hidden_dropout,
            "attention_probs_dropout_prob": self.attention_dropout,
            "classifier_dropout": self.classifier_dropout,
            "initializer_range": self.initializer_range,
            "position_embedding_type": "absolute",
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "tie_word_embeddings": True,
            "is_decoder": False,
            "add_cross_attention": False,
        }


def _model_type(hf: Mapping[str, Any]) -> str:
    """``model_type``, checked against the family ``architectures`` names; without it, that family."""
    names = hf.get("architectures") or ()
    families = {match.group(1).lower() for name in names if (match := _ARCHITECTURE.match(str(name)))}
    model_type = hf.get("model_type")
    if model_type is None:
        if len(families) != 1:
            raise UserError(f'the config has no model_type (nor architectures naming one of {tuple(FAMILIES)}); add '
                            '"model_type" to config.json')  # fmt: skip
        (model_type,) = families
    if model_type not in FAMILIES:
        raise UserError(f"unsupported architecture model_type={model_type!r}; this loader reads {tuple(FAMILIES)}")
    if families - {model_type}:
        raise UserError(f"the config's model_type={model_type!r} and architectures={list(names)} disagree")
    return model_type
