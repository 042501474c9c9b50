"""What the BERT-family tests share: transformers references with every weight random, our model on the same
weights, right-padded inputs of mixed lengths that reach the last position, and the closeness check."""

from __future__ import annotations

import jax
import numpy as np
import torch
import transformers
from flax import nnx

from t5x_tl.models.bert.config import BertConfig
from t5x_tl.models.bert.hf import params_from_hf
from t5x_tl.models.bert.model import Bert
from t5x_tl.train.state import abstract_model

FAMILIES = {
    "bert": (transformers.BertConfig, transformers.BertForMaskedLM, transformers.BertForSequenceClassification),
    "roberta": (
        transformers.RobertaConfig,
        transformers.RobertaForMaskedLM,
        transformers.RobertaForSequenceClassification,
    ),
}
# max_length: the longest input, which reaches the last position (RoBERTa's table has pad id + 1 more rows)
SHAPES = {
    "3_heads_gelu": dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=2, intermediate_size=64,
                         vocab_size=100, max_length=24, type_vocab_size=2, hidden_act="gelu", num_labels=3),
    "4_heads_tanh_gelu": dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=48,
                              vocab_size=90, max_length=16, type_vocab_size=3, hidden_act="gelu_new",
                              layer_norm_eps=1e-5, num_labels=2),
    "1_layer_relu": dict(hidden_size=64, num_attention_heads=2, num_hidden_layers=1, intermediate_size=96,
                         vocab_size=110, max_length=20, type_vocab_size=1, hidden_act="relu", num_labels=1),
}  # fmt: skip
HEADS = ("masked_lm", "sequence_classification")


def random_reference(family: str, shape: str, head: str, seed: int = 0) -> torch.nn.Module:
    """A transformers model whose every weight (biases and LayerNorms too) is random, in eval mode."""
    config_class, *model_classes = FAMILIES[family]
    sizes = dict(SHAPES[shape])
    offset = 2 if family == "roberta" else 0  # RoBERTa's positions start at pad id (1) + 1
    sizes["max_position_embeddings"] = sizes.pop("max_length") + offset
    torch.manual_seed(seed)
    model = model_classes[HEADS.index(head)](config_class(**sizes)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    return model


def ours_from(reference: torch.nn.Module, head: str, **overrides: object) -> Bert:
    cfg = BertConfig.from_hf(reference.config.to_dict(), **overrides)
    params = params_from_hf({k: v.numpy() for k, v in reference.state_dict().items()}, cfg, head)
    graphdef, state = abstract_model(lambda rngs: Bert(cfg, head=head, rngs=rngs))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def padded_inputs(cfg: BertConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three rows: full length (the last position), about half, and three tokens; right-padded."""
    rng = np.random.default_rng(seed)
    length = cfg.max_length
    segments = (np.arange(length)[None] < np.array([[length], [length // 2 + 1], [3]])).astype(np.int32)
    tokens = np.where(segments > 0, rng.integers(3, cfg.vocab_size, (3, length)), cfg.pad_token_id)
    tokens[:, 0] = 2  # a [CLS]-like first token that is no family's pad id
    token_types = rng.integers(0, cfg.type_vocab_size, (3, length)) * segments
    return tokens, segments, token_types


@nnx.jit
def our_outputs(model: Bert, tokens: jax.Array, segments: jax.Array | None, types: jax.Array) -> tuple:
    """The final hidden states and the head's outputs (masked-LM logits or classification scores)."""
    head = model if model.head == "masked_lm" else model.classify
    return model.encode(tokens, segments, token_type_ids=types), head(tokens, segments, token_type_ids=types)


def reference_outputs(reference: torch.nn.Module, tokens: np.ndarray, segments: np.ndarray, types: np.ndarray):
    with torch.no_grad():
        out = reference(
            input_ids=torch.tensor(tokens),
            attention_mask=torch.tensor(segments > 0),
            token_type_ids=torch.tensor(types),
            output_hidden_states=True,
        )
    return out.hidden_states[-1].numpy(), out.logits.numpy()


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> float:
    """Elementwise within ``rtol`` (relative to each value, with the floor rtol x max|expected|); returns the
    largest difference relative to max|expected| (printed under -s)."""
    actual = np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    return float(np.abs(actual - expected).max() / np.abs(expected).max())
