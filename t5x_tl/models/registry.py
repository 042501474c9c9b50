"""Every model kind by name: what configs, checkpoints and scripts name. A new kind is one line here."""

from __future__ import annotations

from t5x_tl.models.bert.kind import BERT, ROBERTA
from t5x_tl.models.deberta.kind import DEBERTA_V3
from t5x_tl.models.gpt2.kind import GPT2
from t5x_tl.models.kinds import ModelKind
from t5x_tl.models.t5_kinds import T5_KINDS

MODEL_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Makes ``kind`` available by name (configs, checkpoints, scripts); ValueError if the name is taken."""
    if kind.name in MODEL_KINDS and MODEL_KINDS[kind.name] != kind:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    MODEL_KINDS[kind.name] = kind
    return kind


for _kind in (*T5_KINDS, BERT, ROBERTA, DEBERTA_V3, GPT2):
    register_kind(_kind)


def model_kind(name: str) -> ModelKind:
    """The registered kind called ``name``; ValueError naming the registered ones otherwise."""
    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {name!r}; choose one of {tuple(MODEL_KINDS)}")
    return MODEL_KINDS[name]


def hf_kinds() -> tuple[str, ...]:
    """The registered kinds that have a Hugging Face twin."""
    return tuple(name for name, kind in MODEL_KINDS.items() if kind.hf_head)
