"""Hugging Face BERT / RoBERTa directories both ways: ours saved and loaded by transformers' from_pretrained, and
transformers' save_pretrained loaded by ours, with equal outputs and identical parameters; one clear error for each
bad config, checkpoint or request, and nothing written when a save is refused."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from bert_reference import (
    FAMILIES,
    HEADS,
    assert_close,
    our_outputs,
    padded_inputs,
    random_reference,
    reference_outputs,
)
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.bert.config import BertConfig
from t5x_tl.models.bert.hf import load_hf_directory, params_from_hf, params_to_hf, save_hf_directory
from t5x_tl.models.bert.model import Bert
from t5x_tl.train.state import abstract_model

SHAPE = "3_heads_gelu"
CASES = [(family, head) for family in sorted(FAMILIES) for head in HEADS]


def _model(cfg: BertConfig, params: dict, head: str) -> Bert:
    graphdef, state = abstract_model(lambda rngs: Bert(cfg, head=head, rngs=rngs))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def _outputs(model: Bert) -> np.ndarray:
    tokens, segments, types = (jnp.asarray(x) for x in padded_inputs(model.config))
    return np.asarray(our_outputs(model, tokens, segments, types)[1])


def _reference_outputs(reference: torch.nn.Module, cfg: BertConfig) -> np.ndarray:
    return reference_outputs(reference, *padded_inputs(cfg))[1]


def _random_params(cfg: BertConfig, head: str, seed: int = 0) -> dict:
    """Every parameter random (biases and norms too), so a swapped or dropped tensor changes the outputs."""
    rng = np.random.default_rng(seed)
    _, abstract = abstract_model(lambda rngs: Bert(cfg, head=head, rngs=rngs))
    return jax.tree.map(lambda x: rng.normal(0, 0.2, x.shape).astype(np.float32), nnx.to_pure_dict(abstract))


@pytest.fixture(scope="module")
def references():
    """(family, head) -> a random-weight transformers model, built once for the module."""
    cache = {}

    def get(family: str, head: str) -> torch.nn.Module:
        if (family, head) not in cache:
            cache[family, head] = random_reference(family, SHAPE, head)
        return cache[family, head]

    return get


def _config(family: str, **changes: object) -> BertConfig:
    base = dict(vocab_size=100, hidden_size=48, num_layers=2, num_heads=3, intermediate_size=64, num_labels=3)
    if family == "roberta":
        base.update(model_type="roberta", pad_token_id=1, max_position_embeddings=26)
    else:
        base.update(max_position_embeddings=24)
    return BertConfig(**{**base, **changes})


@pytest.mark.parametrize(("family", "head"), CASES)
def test_ours_saved_loads_in_transformers_and_back(tmp_path, family, head):
    cfg = _config(family)
    params = _random_params(cfg, head)
    save_hf_directory(tmp_path, cfg, params, head=head)
    model_class = FAMILIES[family][1 + HEADS.index(head)]
    reference = model_class.from_pretrained(tmp_path).eval()
    relative = assert_close(_reference_outputs(reference, cfg), _outputs(_model(cfg, params, head)))
    print(f"\nours -> transformers, {family}/{head}: {relative:.2e}")
    cfg_back, params_back = load_hf_directory(tmp_path, head=head)
    assert cfg_back == cfg
    jax.tree.map(np.testing.assert_array_equal, params_back, params)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize(("family", "head"), CASES)
def test_transformers_saved_loads_in_ours(tmp_path, references, family, head, weights):
    reference = references(family, head)
    reference.save_pretrained(tmp_path)
    if weights == "pytorch_model.bin":
        (tmp_path / "model.safetensors").unlink()
        torch.save(reference.state_dict(), tmp_path / weights)
    cfg, params = load_hf_directory(tmp_path, head=head)
    relative = assert_close(_outputs(_model(cfg, params, head)), _reference_outputs(reference, cfg))
    print(f"\ntransformers -> ours, {family}/{head} from {weights}: {relative:.2e}")


def test_a_pretraining_checkpoint_loads_as_masked_lm_without_its_other_heads(tmp_path, references):
    """BertForPreTraining (the published bert-base checkpoints) adds a pooler and next-sentence head that
    BertForMaskedLM skips; so does the import, and the logits are BertForMaskedLM's of the same directory."""
    torch.manual_seed(0)
    pretraining = transformers.BertForPreTraining(references("bert", "masked_lm").config)
    with torch.no_grad():
        for parameter in pretraining.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    pretraining.save_pretrained(tmp_path)
    reference = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    cfg, params = load_hf_directory(tmp_path)
    assert_close(_outputs(_model(cfg, params, "masked_lm")), _reference_outputs(reference, cfg))


def _hf_tensors(cfg: BertConfig, head: str) -> dict[str, np.ndarray]:
    return params_to_hf(_random_params(cfg, head), cfg, head)


def test_tensor_mismatches_are_listed_in_one_error():
    cfg = _config("bert")
    hf = _hf_tensors(cfg, "masked_lm")
    del hf["bert.encoder.layer.1.output.dense.bias"]
    dense = "bert.encoder.layer.0.intermediate.dense.weight"
    hf[dense] = hf[dense].T.copy()  # of the right size: only the shape check before reshaping catches it
    hf["bert.encoder.layer.2.output.LayerNorm.weight"] = np.zeros(48, np.float32)
    hf["cls.predictions.bias"] = np.zeros(99, np.float32)
    with pytest.raises(UserError) as error:
        params_from_hf(hf, cfg, "masked_lm")
    lines = str(error.value).splitlines()
    assert lines[0] == "checkpoint does not match the config:"
    assert sorted(line.strip() for line in lines[1:]) == [
        "missing tensor bert.encoder.layer.1.output.dense.bias",
        "tensor bert.encoder.layer.0.intermediate.dense.weight has shape (48, 64); Hugging Face's is (64, 48)",
        "tensor cls.predictions.bias has shape (99,); Hugging Face's is (100,)",
        "unexpected tensor bert.encoder.layer.2.output.LayerNorm.weight",
    ]


BERT_JSON = _config("bert").to_hf("masked_lm")
UNSUPPORTED_CONFIGS = {  # config.json -> what the one error says
    "t5": (transformers.T5Config(d_model=16, num_layers=1).to_dict(), r"unsupported architecture model_type='t5'"),
    "gpt2": (transformers.GPT2Config(n_embd=16, n_layer=1).to_dict(), r"unsupported architecture model_type='gpt2'"),
    "unknown activation": (
        {**BERT_JSON, "hidden_act": "gelu_x"},
        r"unsupported hidden_act 'gelu_x'; t5x_tl implements gelu, .*gelu_pytorch_tanh, .*relu, silu",
    ),
    "relative positions": (
        {**BERT_JSON, "position_embedding_type": "relative_key"},
        r"unsupported position_embedding_type 'relative_key'",
    ),
    "model_type and architectures disagree": (
        {**BERT_JSON, "architectures": ["RobertaForMaskedLM"]},
        r"model_type='bert' and architectures=\['RobertaForMaskedLM'\] disagree",
    ),
    "heads do not divide hidden_size": (
        {**BERT_JSON, "num_attention_heads": 5},
        r"hidden_size=48 is not a multiple of num_heads=5",
    ),
    "labels disagree": ({**BERT_JSON, "num_labels": 2}, r"num_labels=2 and its 3 id2label entries disagree"),
    "no position after RoBERTa's offset": (
        {**BERT_JSON, "model_type": "roberta", "architectures": None, "pad_token_id": 1, "max_position_embeddings": 2},
        r"max_position_embeddings=2 leaves no position",
    ),
    "a decoder": ({**BERT_JSON, "is_decoder": True}, r"the config is a decoder"),
    "untied decoder": ({**BERT_JSON, "tie_word_embeddings": False}, r"tie_word_embeddings=false"),
    "no sizes": ({"model_type": "bert"}, r"the config has no vocab_size, hidden_size, num_hidden_layers"),
    "not JSON": ("{'model_type': 'bert'", r"is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED_CONFIGS))
def test_unsupported_configs_are_one_clear_error(tmp_path, case):
    config, message = UNSUPPORTED_CONFIGS[case]
    (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(UserError, match=message) as error:
        load_hf_directory(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'config.json'}: ") or case == "not JSON"
    assert "\n" not in str(error.value)


def _save_reference(directory: Path, references, family: str, head: str) -> None:
    references(family, head).save_pretrained(directory)


def test_truncated_or_missing_weights_are_one_clear_error(tmp_path, references):
    _save_reference(tmp_path, references, "roberta", "masked_lm")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"cannot read .*model\.safetensors .*damaged or incomplete"):
        load_hf_directory(tmp_path)
    weights.unlink()
    with pytest.raises(UserError, match=r"neither \*\.safetensors nor pytorch_model\.bin"):
        load_hf_directory(tmp_path)


def test_a_classification_head_of_another_label_count_is_refused(tmp_path, references):
    _save_reference(tmp_path, references, "bert", "sequence_classification")
    with pytest.raises(UserError, match="classification head of 3 labels, not the 2 asked for"):
        load_hf_directory(tmp_path, head="sequence_classification", num_labels=2)
    cfg, _ = load_hf_directory(tmp_path, head="sequence_classification", num_labels=3)
    assert cfg.num_labels == 3


def test_a_head_the_checkpoint_lacks_lists_its_tensors(tmp_path, references):
    _save_reference(tmp_path, references, "roberta", "masked_lm")
    with pytest.raises(UserError) as error:
        load_hf_directory(tmp_path, head="sequence_classification")
    message = str(error.value)
    assert "missing tensor classifier.out_proj.weight" in message
    assert "unexpected tensor lm_head.dense.weight" in message


def test_a_refused_save_writes_nothing(tmp_path):
    cfg = _config("bert")
    params = _random_params(cfg, "masked_lm")
    with pytest.raises(UserError) as error:
        save_hf_directory(tmp_path / "out", cfg, params, head="sequence_classification")
    assert "missing parameter classifier/out/kernel" in str(error.value)
    assert "unexpected parameter mlm_head/bias" in str(error.value)
    params["embeddings"]["word"] = params["embeddings"]["word"][:, :40]
    with pytest.raises(UserError, match=r"embeddings/word has shape \(100, 40\); the config's is \(100, 48\)"):
        save_hf_directory(tmp_path / "out", cfg, params)
    with pytest.raises(UserError, match="unknown head 'token_classification'"):
        save_hf_directory(tmp_path / "out", cfg, params, head="token_classification")
    assert not (tmp_path / "out").exists()
