"""What the GPT-2 tests share: three random-weight transformers GPT-2 shapes and ours on the same weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from flax import nnx

from t5x_tl.models.gpt2.config import GPT2Config
from t5x_tl.models.gpt2.hf import params_from_hf
from t5x_tl.models.gpt2.model import GPT2ForSequenceClassification, GPT2LMHeadModel

VOCAB = 100
NUM_LABELS = 3
SHAPES = {
    # GPT-2's defaults: tied output, gelu_new, 1/sqrt(head_dim)
    "tied": dict(n_embd=32, n_head=4, n_layer=2, n_positions=20),
    # an odd head count, an untied head, n_inner, ReLU, 1/(layer+1) on the logits, the upcast path (eager only)
    "odd_heads": dict(
        n_embd=48, n_head=3, n_layer=2, n_positions=16, n_inner=40, activation_function="relu",
        tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
        attn_implementation="eager",
    ),
    # exact GELU, unscaled logits, a larger epsilon, three layers
    "unscaled": dict(
        n_embd=36, n_head=6, n_layer=3, n_positions=24, activation_function="gelu", scale_attn_weights=False,
        layer_norm_epsilon=1e-3,
    ),
}  # fmt: skip


def hf_config(shape: str, **extra: object) -> transformers.GPT2Config:
    fields = dict(vocab_size=VOCAB, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=1)
    return transformers.GPT2Config(**{**fields, "pad_token_id": 0, **SHAPES[shape], **extra})


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn at random (transformers starts biases at 0 and LayerNorms at 1, which would hide a
    bias or norm read from the wrong place), large enough for attention far from uniform."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = 0.2 * torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1.0 + noise if ".ln_" in name and name.endswith("weight") else noise)
    return model.eval()


def reference(shape: str, *, classification: bool = False, seed: int = 0) -> torch.nn.Module:
    if classification:
        return randomize(transformers.GPT2ForSequenceClassification(hf_config(shape, num_labels=NUM_LABELS)), seed)
    return randomize(transformers.GPT2LMHeadModel(hf_config(shape)), seed)


def build(cfg: GPT2Config, params: dict, *, classification: bool = False) -> nnx.Module:
    """Our model on ``params`` (cast to the config's param_dtype), never initialised at random."""
    if classification:
        make = lambda: GPT2ForSequenceClassification(cfg, num_labels=NUM_LABELS, rngs=nnx.Rngs(0))
    else:
        make = lambda: GPT2LMHeadModel(cfg, rngs=nnx.Rngs(0))
    graphdef, abstract = nnx.split(nnx.eval_shape(make))
    return nnx.merge(graphdef, jax.tree.map(lambda a, s: jnp.asarray(a, s.dtype), params, nnx.to_pure_dict(abstract)))


def ours(reference: torch.nn.Module, **overrides: object) -> nnx.Module:
    classification = isinstance(reference, transformers.GPT2ForSequenceClassification)
    cfg = GPT2Config.from_hf(reference.config.to_dict(), **overrides)
    state = {name: tensor.numpy() for name, tensor in reference.state_dict().items()}
    head = "classification" if classification else "lm"
    return build(cfg, params_from_hf(state, cfg, head, NUM_LABELS), classification=classification)


def padded_tokens(lengths: list[int], width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded rows of tokens >= 2 (0 pads) and their segment ids (1 real, 0 padding)."""
    tokens = np.random.default_rng(seed).integers(2, VOCAB, (len(lengths), width))
    real = np.arange(width)[None] < np.asarray(lengths)[:, None]
    return np.where(real, tokens, 0), real.astype(np.int32)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    """Within ``rtol`` of each value, or of the largest value for those near 0."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
