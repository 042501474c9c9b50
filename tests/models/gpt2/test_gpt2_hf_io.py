"""GPT-2 checkpoints both ways: our export loads in transformers with equal outputs, transformers' files (new,
legacy, bare, untied) load here, and each malformed input is one clear error with nothing written."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx, traverse_util
from gpt2_reference import NUM_LABELS, VOCAB, assert_close, build, hf_config, padded_tokens, reference

from t5x_tl.errors import UserError
from t5x_tl.models.gpt2.config import SUPPORTED_ACTIVATIONS, GPT2Config
from t5x_tl.models.gpt2.hf import load_hf_directory, params_from_hf, params_to_hf, save_hf_directory
from t5x_tl.models.gpt2.model import GPT2ForSequenceClassification, GPT2LMHeadModel

CONFIG = GPT2Config(
    vocab_size=VOCAB, n_positions=16, n_embd=48, n_layer=2, n_head=3, resid_pdrop=0.0, embd_pdrop=0.0,
    attn_pdrop=0.0, bos_token_id=1, eos_token_id=1, pad_token_id=0,
)  # fmt: skip
TOKENS, SEGMENTS = padded_tokens([16, 9], 16, seed=9)


def _random_params(cfg: GPT2Config, classification: bool, seed: int) -> dict:
    """Our parameters, every one random (our initialiser starts biases at 0 and norms at 1)."""
    if classification:
        make = lambda: GPT2ForSequenceClassification(cfg, num_labels=NUM_LABELS, rngs=nnx.Rngs(0))
    else:
        make = lambda: GPT2LMHeadModel(cfg, rngs=nnx.Rngs(0))
    shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(make), nnx.Param))
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [(0.2 * rng.standard_normal(s.shape)).astype(np.float32) for s in leaves])


def _ours_out(model: nnx.Module) -> np.ndarray:
    tokens, segments = jnp.asarray(TOKENS), jnp.asarray(SEGMENTS)
    if isinstance(model, GPT2ForSequenceClassification):
        return np.asarray(model.classify(tokens, segments))
    return np.asarray(model(tokens, segments))[SEGMENTS > 0]


def _hf_out(model: torch.nn.Module) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=torch.tensor(TOKENS), attention_mask=torch.tensor(SEGMENTS)).logits.numpy()
    return out if isinstance(model, transformers.GPT2ForSequenceClassification) else out[SEGMENTS > 0]


def _assert_equal_params(a: dict, b: dict) -> None:
    flat_a, flat_b = traverse_util.flatten_dict(a), traverse_util.flatten_dict(b)
    assert sorted(flat_a) == sorted(flat_b)
    for path, value in flat_a.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(flat_b[path]), err_msg=str(path))


EXPORTS = {
    "tied_lm": (dict(), "lm", transformers.GPT2LMHeadModel),
    "untied_lm": (dict(tie_word_embeddings=False, activation_function="gelu_pytorch_tanh"), "lm",
                  transformers.GPT2LMHeadModel),
    "classifier": (dict(), "classification", transformers.GPT2ForSequenceClassification),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_loads_in_transformers_and_import_round_trips(tmp_path, name):
    overrides, head, hf_class = EXPORTS[name]
    cfg = dataclasses.replace(CONFIG, **overrides)
    params = _random_params(cfg, head == "classification", seed=1)
    save_hf_directory(tmp_path, cfg, params, head=head)
    loaded = hf_class.from_pretrained(tmp_path).eval()
    assert_close(_hf_out(loaded), _ours_out(build(cfg, params, classification=head == "classification")))
    cfg_back, params_back = load_hf_directory(tmp_path, head=head, num_labels=NUM_LABELS if head != "lm" else None)
    assert cfg_back == cfg
    _assert_equal_params(params_back, params)


def _save_legacy_bare_bin(directory: Path) -> transformers.GPT2LMHeadModel:
    """As the original gpt2 files: a bare GPT2Model's names, the attn.bias / masked_bias buffers, and an old
    config.json (n_ctx, no tie_word_embeddings)."""
    model = reference("tied", seed=2)
    config = {**model.config.to_dict(), "n_ctx": model.config.n_positions}
    config.pop("tie_word_embeddings")
    (directory / "config.json").write_text(json.dumps(config))
    state = {name.removeprefix("transformer."): t for name, t in model.state_dict().items() if name != "lm_head.weight"}
    for i in range(model.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 20, 20))
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, directory / "pytorch_model.bin")
    return model


def _save_distinct_head(directory: Path) -> transformers.GPT2LMHeadModel:
    """A tied config whose file holds an lm_head.weight of its own: transformers keeps it, untied."""
    model = reference("tied", seed=3)
    model.save_pretrained(directory)
    import safetensors.torch

    tensors = safetensors.torch.load_file(directory / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn(VOCAB, model.config.n_embd)
    safetensors.torch.save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    return transformers.GPT2LMHeadModel.from_pretrained(directory).eval()


SAVED = {
    "untied_save_pretrained": lambda d: _saved(reference("odd_heads", seed=4), d),
    "classifier_save_pretrained": lambda d: _saved(reference("unscaled", classification=True, seed=5), d),
    "legacy_bare_bin": _save_legacy_bare_bin,
    "distinct_head": _save_distinct_head,
}


def _saved(model: torch.nn.Module, directory: Path) -> torch.nn.Module:
    model.save_pretrained(directory)
    return model


@pytest.mark.parametrize("name", sorted(SAVED))
def test_transformers_directories_load_with_equal_outputs(tmp_path, name):
    model = SAVED[name](tmp_path)
    classification = isinstance(model, transformers.GPT2ForSequenceClassification)
    cfg, params = load_hf_directory(tmp_path, head="classification" if classification else "lm")
    assert cfg.tie_word_embeddings == (name not in ("untied_save_pretrained", "distinct_head"))
    assert_close(_ours_out(build(cfg, params, classification=classification)), _hf_out(model))


def _tensors() -> dict[str, np.ndarray]:
    return params_to_hf(_random_params(CONFIG, False, seed=6), CONFIG)


def test_mismatches_are_listed_in_one_message():
    tensors = _tensors()
    del tensors["transformer.h.1.mlp.c_fc.bias"]
    tensors["transformer.h.0.attn.c_attn.weight"] = tensors["transformer.h.0.attn.c_attn.weight"].T  # same size
    tensors["transformer.h.2.ln_1.weight"] = np.ones(48, np.float32)
    with pytest.raises(UserError) as error:
        params_from_hf(tensors, CONFIG)
    assert str(error.value).splitlines() == [
        "checkpoint does not match the GPT-2 config:",
        "  missing tensor transformer.h.1.mlp.c_fc.bias",
        "  unexpected tensor transformer.h.2.ln_1.weight",
        "  tensor transformer.h.0.attn.c_attn.weight has shape (144, 48); Hugging Face's is (48, 144)",
    ]


def test_a_tied_config_refuses_a_distinct_head_given_directly():
    tensors = {**_tensors(), "lm_head.weight": np.zeros((VOCAB, 48), np.float32)}
    with pytest.raises(UserError, match=r"lm_head\.weight differs from transformer\.wte\.weight"):
        params_from_hf(tensors, CONFIG)


@pytest.mark.parametrize(
    "config, message",
    [
        (transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4),
         "unsupported architecture model_type='bert'; this reads GPT-2"),
        (transformers.T5Config(vocab_size=VOCAB, d_model=32, num_layers=1, num_heads=4),
         "unsupported architecture model_type='t5'; this reads GPT-2"),
    ],
)  # fmt: skip
def test_directories_of_other_architectures_are_refused(tmp_path, config, message):
    config.save_pretrained(tmp_path)
    with pytest.raises(UserError, match=message):
        load_hf_directory(tmp_path)


def test_truncated_weights_and_missing_files(tmp_path):
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_hf_directory(tmp_path)
    save_hf_directory(tmp_path, CONFIG, _random_params(CONFIG, False, seed=7))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="damaged or incomplete"):
        load_hf_directory(tmp_path)
    weights.unlink()
    with pytest.raises(UserError, match=r"neither \*\.safetensors nor pytorch_model\.bin"):
        load_hf_directory(tmp_path)


def test_classifier_label_count_and_head_mismatches(tmp_path):
    save_hf_directory(tmp_path, CONFIG, _random_params(CONFIG, True, seed=8), head="classification")
    with pytest.raises(UserError, match="holds a classifier of 3 labels, not the 2 asked for"):
        load_hf_directory(tmp_path, head="classification", num_labels=2)
    with pytest.raises(UserError, match=r"unexpected tensor score\.weight"):
        load_hf_directory(tmp_path, head="lm")
    with pytest.raises(UserError, match="unknown GPT-2 head 'pooled'"):
        load_hf_directory(tmp_path, head="pooled")


def test_save_refuses_parameters_of_another_shape_and_writes_nothing(tmp_path):
    params = _random_params(dataclasses.replace(CONFIG, n_inner=40, tie_word_embeddings=False), False, seed=9)
    target = tmp_path / "out"
    with pytest.raises(UserError) as error:
        save_hf_directory(target, CONFIG, params)
    assert str(error.value).splitlines() == [
        "parameters do not match the GPT-2 config:",
        "  unexpected parameter lm_head",
        "  parameter layers/stacked/mlp/wi has shape (2, 48, 40); the config's is (2, 48, 192)",
        "  parameter layers/stacked/mlp/wi_bias has shape (2, 40); the config's is (2, 192)",
        "  parameter layers/stacked/mlp/wo has shape (2, 40, 48); the config's is (2, 192, 48)",
    ]
    assert not target.exists()


def test_config_round_trips_and_reads_transformers_defaults():
    assert GPT2Config.from_hf(CONFIG.to_hf()) == CONFIG
    assert GPT2Config.from_hf(hf_config("odd_heads").to_dict()).inner_dim == 40
    defaults = GPT2Config.from_hf({"model_type": "gpt2"})
    assert (defaults.n_embd, defaults.inner_dim, defaults.activation_function) == (768, 3072, "gelu_new")
    assert GPT2Config.from_hf({"model_type": "gpt2", "hidden_size": 64, "n_head": 4}).n_embd == 64
    several_eos = GPT2Config.from_hf({"model_type": "gpt2", "eos_token_id": [1, 2]})  # transformers allows a list
    assert hash(several_eos) and GPT2Config.from_hf(json.loads(json.dumps(several_eos.to_hf()))) == several_eos


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"activation_function": "gelu_10"}, "unsupported GPT-2 activation_function 'gelu_10'; t5x_tl implements "
         + ", ".join(SUPPORTED_ACTIVATIONS)),
        ({"n_embd": 64, "hidden_size": 32}, "fields disagree: hidden_size=32 but n_embd=64"),
        ({"n_positions": 64, "n_ctx": 32}, "fields disagree: n_ctx=32 but n_positions=64"),
        ({"n_embd": 50, "n_head": 4}, "n_embd=50 is not divisible by n_head=4"),
        ({"add_cross_attention": True}, "add_cross_attention"),
        ({"n_layer": 0}, "n_layer=0 is invalid"),
        ({"model_type": None, "architectures": ["BertModel"]}, "names no model_type"),
    ],
)  # fmt: skip
def test_bad_configs_are_one_clear_error(fields, message):
    with pytest.raises(UserError, match=re.escape(message)):
        GPT2Config.from_hf({k: v for k, v in {"model_type": "gpt2", **fields}.items() if v is not None})


def test_gelu_new_is_among_the_supported_names():
    assert {"gelu_new", "gelu_pytorch_tanh", "gelu", "relu"} <= set(SUPPORTED_ACTIVATIONS)
