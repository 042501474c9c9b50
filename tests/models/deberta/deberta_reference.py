"""What the DeBERTa tests share: transformers references with every weight random, our model on the same weights,
right-padded inputs of mixed lengths that reach the last position, and the closeness check."""

from __future__ import annotations

import jax
import numpy as np
import torch
import transformers
from flax import nnx

from t5x_tl.models.deberta.config import DebertaV2Config
from t5x_tl.models.deberta.hf import params_from_hf
from t5x_tl.models.deberta.model import DebertaV2
from t5x_tl.train.state import abstract_model

_COMMON = dict(vocab_size=100, num_hidden_layers=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# length: the longest input; with buckets well below it, the log-spaced buckets and the clipping are exercised.
SHAPES = {
    "v3_like": dict(_COMMON, hidden_size=32, num_attention_heads=4, intermediate_size=64, relative_attention=True,
                    position_buckets=8, max_relative_positions=-1, max_position_embeddings=24, pos_att_type="p2c|c2p",
                    share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False, hidden_act="gelu",
                    num_labels=3, length=24),
    "v2_like": dict(_COMMON, hidden_size=48, num_attention_heads=3, intermediate_size=80, relative_attention=True,
                    max_relative_positions=6, max_position_embeddings=20, pos_att_type=["c2p", "p2c"],
                    share_att_key=False, position_biased_input=True, type_vocab_size=2, hidden_act="gelu_new",
                    layer_norm_eps=1e-5, num_labels=2, length=20),
    "c2p_only_embedding_size": dict(_COMMON, hidden_size=40, num_attention_heads=5, intermediate_size=48,
                                    embedding_size=24, relative_attention=True, position_buckets=32,
                                    max_relative_positions=64, max_position_embeddings=32, pos_att_type="c2p",
                                    share_att_key=False, norm_rel_ebd="layer_norm", position_biased_input=True,
                                    hidden_act="relu", pooler_hidden_act="tanh", num_labels=1, length=32),
}  # fmt: skip
HEADS = {
    "masked_lm": transformers.DebertaV2ForMaskedLM,
    "sequence_classification": transformers.DebertaV2ForSequenceClassification,
}


def hf_config(shape: str, **changes: object) -> transformers.DebertaV2Config:
    sizes = {name: value for name, value in SHAPES[shape].items() if name != "length"}
    return transformers.DebertaV2Config(**{**sizes, **changes})


def random_reference(shape: str, head: str, seed: int = 0, **changes: object) -> torch.nn.Module:
    """A transformers model whose every weight (biases and LayerNorms too) is random, in eval mode."""
    torch.manual_seed(seed)
    model = HEADS[head](hf_config(shape, **changes)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    return model


def build(cfg: DebertaV2Config, params: dict, head: str) -> DebertaV2:
    graphdef, state = abstract_model(lambda rngs: DebertaV2(cfg, head=head, rngs=rngs))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def ours_from(reference: torch.nn.Module, head: str, **overrides: object) -> DebertaV2:
    cfg = DebertaV2Config.from_hf(reference.config.to_dict(), **overrides)
    return build(cfg, params_from_hf({k: v.numpy() for k, v in reference.state_dict().items()}, cfg, head), head)


def padded_inputs(shape: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three rows: full length (the last position), about half, and three tokens; right-padded."""
    rng = np.random.default_rng(seed)
    spec = SHAPES[shape]
    length = spec["length"]
    segments = (np.arange(length)[None] < np.array([[length], [length // 2 + 1], [3]])).astype(np.int32)
    tokens = np.where(segments > 0, rng.integers(3, spec["vocab_size"], (3, length)), 0)
    tokens[:, 0] = 2
    token_types = rng.integers(0, spec.get("type_vocab_size", 0) or 1, (3, length)) * segments
    return tokens, segments, token_types


@nnx.jit
def our_outputs(model: DebertaV2, tokens: jax.Array, segments: jax.Array | None, types: jax.Array) -> tuple:
    """Every hidden state (embeddings first) and the head's outputs (masked-LM logits or classification scores)."""
    head = model if model.head == "masked_lm" else model.classify
    return model.hidden_states(tokens, segments, token_type_ids=types), head(tokens, segments, token_type_ids=types)


def reference_outputs(reference: torch.nn.Module, tokens: np.ndarray, segments: np.ndarray, types: np.ndarray):
    with torch.no_grad():
        out = reference(
            input_ids=torch.tensor(tokens),
            attention_mask=torch.tensor(segments > 0).long(),
            token_type_ids=torch.tensor(types),
            output_hidden_states=True,
        )
    return np.stack([h.numpy() for h in out.hidden_states]), out.logits.numpy()


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> float:
    """Elementwise within ``rtol`` (relative to each value, with the floor rtol x max|expected|); returns the
    largest difference relative to max|expected| (printed under -s)."""
    actual = np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    return float(np.abs(actual - expected).max() / np.abs(expected).max())
