"""GPT-2's static hyperparameters, read from and written to a Hugging Face ``config.json`` as transformers 5 does.

Field names and defaults are transformers' ``GPT2Config`` (GPT-2 small), so a config round-trips unchanged; the
execution fields (dtypes, scan, remat) are ours, as in :class:`t5x_tl.models.config.T5Config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from t5x_tl.errors import UserError
from t5x_tl.models.config import ExecutionFields, check_int
from t5x_tl.models.layers import ACTIVATIONS, HF_ACTIVATION_ALIASES

MODEL_TYPE = "gpt2"
# transformers' ACT2FN names that t5x_tl computes (the aliases are the same functions under other names).
SUPPORTED_ACTIVATIONS = tuple(sorted({*ACTIVATIONS, *HF_ACTIVATION_ALIASES}))
# config.json keys transformers reads as another field of ours (its attribute_map), and the legacy n_ctx.
HF_ALIASES = {
    "hidden_size": "n_embd",
    "max_position_embeddings": "n_positions",
    "num_attention_heads": "n_head",
    "num_hidden_layers": "n_layer",
    "n_ctx": "n_positions",
}
_POSITIVE = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
_DROPOUTS = ("resid_pdrop", "embd_pdrop", "attn_pdrop")
_EXECUTION = ("dtype", "param_dtype", "scan_layers", "remat_policy")  # ours, never in config.json


@dataclasses.dataclass(frozen=True)
class GPT2Config(ExecutionFields):
    """GPT-2 small by default. ``reorder_and_upcast_attn`` is accepted either way: attention logits and softmax run
    in float32 here always, which is what it asks transformers for (the scale is applied to the float32 logits).

    ``scan_layers`` and ``remat_policy`` change how the layers execute, not the parameters.
    """

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # None: 4 * n_embd
    activation_function: str = "gelu_new"  # transformers' ACT2FN name
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | tuple[int, ...] | None = 50256  # transformers allows a list; a tuple keeps us hashable
    pad_token_id: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat_policy: str = "none"

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            check_int(name, getattr(self, name), prefix="GPT-2 config ")
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner < 1):
            raise UserError(f"GPT-2 config n_inner={self.n_inner!r} is invalid: a positive integer, or null (4*n_embd)")
        if self.n_embd % self.n_head:
            raise UserError(f"GPT-2 config n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.activation_function not in SUPPORTED_ACTIVATIONS:
            raise UserError(
                f"unsupported GPT-2 activation_function {self.activation_function!r}; t5x_tl implements "
                f"{', '.join(SUPPORTED_ACTIVATIONS)}"
            )
        for name in _DROPOUTS:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"GPT-2 config {name}={getattr(self, name)!r} is invalid: a rate in [0, 1)")
        self.check_execution(prefix="GPT-2 config ")

    @property
    def inner_dim(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def activation(self) -> str:
        """Our name (a key of :data:`t5x_tl.models.layers.ACTIVATIONS`) for ``activation_function``."""
        return HF_ACTIVATION_ALIASES.get(self.activation_function, self.activation_function)

    def attention_scales(self) -> list[float]:
        """Each layer's factor on the attention logits: 1/sqrt(head_dim) and/or 1/(layer index + 1)."""
        base = self.head_dim**-0.5 if self.scale_attn_weights else 1.0
        return [base / (i + 1) if self.scale_attn_by_inverse_layer_idx else base for i in range(self.n_layer)]

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any], **overrides: Any) -> GPT2Config:
        """Our config from a ``config.json`` dict; fields it lacks take transformers' defaults."""
        model_type = hf.get("model_type")
        if model_type is None and not any(str(name).startswith("GPT2") for name in hf.get("architectures") or ()):
            raise UserError('the config names no model_type; a GPT-2 config.json says "model_type": "gpt2"')
        if model_type not in (None, MODEL_TYPE):
            raise UserError(f"unsupported architecture model_type={model_type!r}; this reads GPT-2 ({MODEL_TYPE!r})")
        if hf.get("add_cross_attention"):
            raise UserError("the config asks for add_cross_attention, which t5x_tl's GPT-2 does not implement")
        fields = {f.name for f in dataclasses.fields(cls)} - set(_EXECUTION)
        values = {name: tuple(hf[name]) if isinstance(hf[name], list) else hf[name] for name in fields if name in hf}
        disagreements = []
        for alias, name in HF_ALIASES.items():
            if alias not in hf:
                continue
            if name in values and hf[alias] != values[name]:
                disagreements.append(f"{alias}={hf[alias]!r} but {name}={values[name]!r}")
            values.setdefault(name, hf[alias])
        if disagreements:
            raise UserError("the config's fields disagree: " + "; ".join(disagreements) + "; make them equal")
        return cls(**{**values, **overrides})

    def to_hf(self) -> dict[str, Any]:
        """The ``config.json`` fields transformers' ``GPT2Config`` reads (without a head's architectures/labels)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _EXECUTION}
        return {"model_type": MODEL_TYPE, **fields}
