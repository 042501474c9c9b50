"""Hugging Face interoperability: logits and greedy tokens equal to transformers' T5 / mT5 / UMT5 on the same
weights, import from and export to a model directory (as transformers saves and loads it), one message listing
every mismatch, and one clear error for each malformed input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
import transformers
from flax import nnx
from teacher_forcing import greedy_by_teacher_forcing

from t5x_tl.errors import UserError
from t5x_tl.models.config import T5Config
from t5x_tl.models.hf_convert import (
    HF_ACTIVATION_ALIASES,
    config_from_hf,
    load_hf_directory,
    params_from_hf,
    params_to_hf,
    save_hf_directory,
)
from t5x_tl.models.layers import ACTIVATIONS, parse_feed_forward
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.train.state import abstract_model

VOCAB = 96
BASE = dict(vocab_size=VOCAB, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2, num_decoder_layers=3)
VARIANTS = {
    "t5_1_0": (transformers.T5ForConditionalGeneration, dict(feed_forward_proj="relu", tie_word_embeddings=True)),
    "t5_1_1": (
        transformers.T5ForConditionalGeneration,
        dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    ),
    "umt5": (
        transformers.UMT5ForConditionalGeneration,
        dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    ),
}


def _reference(variant: str) -> torch.nn.Module:
    model_class, extra = VARIANTS[variant]
    config_class = transformers.UMT5Config if variant == "umt5" else transformers.T5Config
    cfg = config_class(**BASE, **extra, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    return model_class(cfg).eval()


def _model(cfg: T5Config, params: dict) -> EncoderDecoder:
    graphdef, _ = abstract_model(lambda rngs: EncoderDecoder(cfg, rngs=rngs))
    return nnx.merge(graphdef, params)


def _ours_from(reference: torch.nn.Module) -> EncoderDecoder:
    cfg = config_from_hf(reference.config.to_dict(), dropout_rate=0.0)
    return _model(cfg, params_from_hf({k: v.numpy() for k, v in reference.state_dict().items()}, cfg))


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    enc = rng.integers(2, VOCAB, (2, 30))
    enc[1, 18:] = 0
    dec = rng.integers(2, VOCAB, (2, 12))
    dec[:, 0] = 0
    return enc, dec


def _assert_close(actual, expected) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _logits(model: torch.nn.Module) -> np.ndarray:
    enc, dec = _inputs()
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0), decoder_input_ids=torch.tensor(dec)
        ).logits.numpy()


@nnx.jit
def _forward(model: EncoderDecoder, enc: jax.Array, dec: jax.Array) -> jax.Array:
    return model(enc, dec)


def _our_logits(model: EncoderDecoder) -> np.ndarray:
    enc, dec = _inputs()
    return np.asarray(_forward(model, jnp.asarray(enc), jnp.asarray(dec)))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_equal_transformers(variant):
    reference = _reference(variant)
    _assert_close(_our_logits(_ours_from(reference)), _logits(reference))


@pytest.mark.parametrize("variant", ["t5_1_0", "t5_1_1"])
def test_greedy_generation_equals_transformers(variant):
    reference = _reference(variant)
    enc, _ = _inputs()
    with torch.no_grad():
        expected = reference.generate(
            input_ids=torch.tensor(enc),
            attention_mask=torch.tensor(enc > 0),
            max_new_tokens=10,
            min_new_tokens=10,
            do_sample=False,
            num_beams=1,
            use_cache=False,  # transformers 5 sizes its cache by num_layers, which breaks 2+3 layer models
        ).numpy()[:, 1:]
    np.testing.assert_array_equal(greedy_by_teacher_forcing(_ours_from(reference), enc, 10), expected)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_export_loads_in_transformers_and_import_round_trips(tmp_path, variant):
    model_class, extra = VARIANTS[variant]
    cfg = config_from_hf({**BASE, **extra, "model_type": "umt5" if variant == "umt5" else "t5"}, dropout_rate=0.0)
    ours = EncoderDecoder(cfg, rngs=nnx.Rngs(3))
    params = nnx.to_pure_dict(nnx.state(ours, nnx.Param))  # an untied lm_head of its own: transformers keeps it
    save_hf_directory(tmp_path, cfg, params)
    _assert_close(_logits(model_class.from_pretrained(tmp_path).eval()), _our_logits(ours))
    cfg_back, params_back = load_hf_directory(tmp_path)
    assert dataclasses.replace(cfg_back, dropout_rate=0.0) == cfg
    for (a_path, a), (b_path, b) in zip(_leaves(params), _leaves(params_back), strict=True):
        assert a_path == b_path
        np.testing.assert_array_equal(np.asarray(a), b)


def _leaves(tree: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key in sorted(tree, key=str):
        value = tree[key]
        out += _leaves(value, (*prefix, key)) if isinstance(value, dict) else [((*prefix, key), value)]
    return out


def _hf_tensors(cfg: T5Config) -> dict[str, np.ndarray]:
    """A complete checkpoint of zeros for ``cfg``, in Hugging Face's names and layout (no weights initialised)."""
    _, abstract = abstract_model(lambda rngs: EncoderDecoder(cfg, rngs=rngs))
    return params_to_hf(jax.tree.map(lambda x: np.zeros(x.shape, np.float32), nnx.to_pure_dict(abstract)), cfg)


def test_mismatches_are_listed_in_one_message():
    cfg = T5Config(
        vocab_size=VOCAB, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_encoder_layers=1, num_decoder_layers=1
    )
    hf = _hf_tensors(cfg)
    del hf["encoder.block.0.layer.1.DenseReluDense.wo.weight"]
    hf["decoder.block.0.layer.0.SelfAttention.q.weight"] = np.zeros((7, 32), np.float32)
    hf["encoder.block.5.layer.0.layer_norm.weight"] = np.zeros(32, np.float32)
    with pytest.raises(UserError) as error:
        params_from_hf(hf, cfg)
    message = str(error.value)
    assert "missing tensor encoder.block.0.layer.1.DenseReluDense.wo.weight" in message
    assert "unexpected tensor encoder.block.5.layer.0.layer_norm.weight" in message
    q = "decoder.block.0.layer.0.SelfAttention.q.weight"
    assert f"tensor {q} has shape (7, 32); Hugging Face's is (32, 32)" in message


def test_tensors_of_the_right_size_but_the_wrong_shape_are_refused():
    """Transposed or flattened tensors have as many elements as the right ones: shapes are checked before reshaping."""
    cfg = T5Config(
        vocab_size=VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=12, num_encoder_layers=1, num_decoder_layers=1,
        feed_forward_proj="relu",
    )  # fmt: skip
    hf = _hf_tensors(cfg)
    q, o = (f"encoder.block.0.layer.0.SelfAttention.{n}.weight" for n in "qo")
    wi = "decoder.block.0.layer.2.DenseReluDense.wi.weight"
    hf[q], hf[o], hf[wi] = hf[q].T, hf[o].reshape(-1), hf[wi].T
    with pytest.raises(UserError) as error:
        params_from_hf(hf, cfg)
    message = str(error.value)
    assert f"tensor {q} has shape (32, 48); Hugging Face's is (48, 32)" in message
    assert f"tensor {o} has shape (1536,); Hugging Face's is (32, 48)" in message
    assert f"tensor {wi} has shape (32, 64); Hugging Face's is (64, 32)" in message
    assert len(message.splitlines()) == 4  # the headline and the three tensors


def test_unsupported_architecture_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="unsupported architecture model_type='bart'"):
        config_from_hf({**BASE, "model_type": "bart"})
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_hf_directory(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "t5", "vocab_size": 8, "d_model": 4, "d_ff": 4, '
                                          '"num_heads": 1, "d_kv": 4, "num_layers": 1}')  # fmt: skip
    with pytest.raises(UserError, match=r"neither \*\.safetensors nor pytorch_model\.bin"):
        load_hf_directory(tmp_path)


def _edit_config(directory: Path, **changes) -> None:
    """Rewrites config.json; a change to None drops the field."""
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


def _save_mt5(directory: Path) -> type[torch.nn.Module]:
    """As transformers 5 saves mT5: tie_word_embeddings true, no scale_decoder_outputs, no lm_head.weight."""
    torch.manual_seed(0)
    transformers.MT5ForConditionalGeneration(transformers.MT5Config(**BASE)).save_pretrained(directory)
    return transformers.MT5ForConditionalGeneration


def _save_umt5_without_tie_field(directory: Path) -> type[torch.nn.Module]:
    """A UMT5 config.json that states neither tie_word_embeddings nor scale_decoder_outputs: transformers scales."""
    _reference("umt5").save_pretrained(directory)
    _edit_config(directory, tie_word_embeddings=None, scale_decoder_outputs=None)
    return transformers.UMT5ForConditionalGeneration


def _save_legacy_t5_bin(directory: Path) -> type[torch.nn.Module]:
    """Like the original t5-small: pytorch_model.bin with lm_head.weight (= shared) and the decoder's
    cross-attention relative bias transformers ignores; no tie_word_embeddings in the config."""
    reference = _reference("t5_1_0")
    reference.config.save_pretrained(directory)
    _edit_config(directory, tie_word_embeddings=None, scale_decoder_outputs=None)
    state = {name: tensor.clone() for name, tensor in reference.state_dict().items()}
    state["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.randn(32, 4)
    torch.save(state, directory / "pytorch_model.bin")
    return transformers.T5ForConditionalGeneration


def _save_t5_1_0_with_distinct_head(directory: Path) -> type[torch.nn.Module]:
    """A scaled (T5 1.0) config whose file has an lm_head.weight of its own: transformers keeps and scales it."""
    _reference("t5_1_0").save_pretrained(directory)
    tensors = safetensors.torch.load_file(directory / "model.safetensors")
    tensors["lm_head.weight"] = torch.randn(VOCAB, BASE["d_model"])
    safetensors.torch.save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    return transformers.T5ForConditionalGeneration


SAVED = {
    "mt5": _save_mt5,
    "umt5_without_tie_field": _save_umt5_without_tie_field,
    "legacy_t5_bin": _save_legacy_t5_bin,
    "t5_1_0_distinct_head": _save_t5_1_0_with_distinct_head,
}


@pytest.mark.parametrize("case", sorted(SAVED))
def test_directories_saved_by_transformers_import_with_its_logits(tmp_path, case):
    """The directory, not the in-memory model, is the reference: what from_pretrained makes of it."""
    model_class = SAVED[case](tmp_path)
    reference = model_class.from_pretrained(tmp_path, dtype=torch.float32).eval()
    _assert_close(_our_logits(_model(*load_hf_directory(tmp_path))), _logits(reference))


@pytest.mark.parametrize(
    ("architecture", "model_type", "gated", "scaled", "per_layer_bias"),
    [
        ("T5ForConditionalGeneration", "t5", False, True, False),
        ("MT5ForConditionalGeneration", "mt5", True, False, False),
        ("UMT5EncoderModel", "umt5", True, True, True),
    ],
)
def test_model_type_and_defaults_follow_transformers(architecture, model_type, gated, scaled, per_layer_bias):
    """Without model_type, the family the architectures name; absent fields take that family's defaults."""
    hf = {**BASE, "architectures": [architecture]}
    reference = getattr(transformers, f"{model_type.upper()}Config")(**BASE)
    for cfg in config_from_hf(hf), config_from_hf({**hf, "model_type": model_type}):
        assert parse_feed_forward(cfg.feed_forward_proj)[0] == gated == reference.is_gated_act
        assert cfg.tie_word_embeddings == scaled == getattr(reference, "scale_decoder_outputs", False)
        assert cfg.per_layer_relative_bias == per_layer_bias


FEED_FORWARD_PROJS = ["relu", "gelu", "gated-gelu", "gelu_new", "silu", "gated-silu"]
FEED_FORWARD_PROJS += [f"gated-{name}" for name in sorted(HF_ACTIVATION_ALIASES)]


@pytest.mark.parametrize("spec", FEED_FORWARD_PROJS)
def test_activations_transformers_accepts_import_as_the_same_function(spec):
    reference = transformers.T5Config(feed_forward_proj=spec)
    cfg = config_from_hf({**BASE, "model_type": "t5", "feed_forward_proj": spec})
    gated, activation = parse_feed_forward(cfg.feed_forward_proj)
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    expected = transformers.activations.ACT2FN[reference.dense_act_fn](torch.tensor(x)).numpy()
    assert gated == reference.is_gated_act
    np.testing.assert_allclose(np.asarray(ACTIVATIONS[activation](jnp.asarray(x))), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def convert_script():
    """scripts/convert_hf.py as a module, to run its main in this process (a subprocess imports for seconds)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "convert_hf.py"
    spec = importlib.util.spec_from_file_location("convert_hf_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = dict(model_type="t5", vocab_size=8, d_model=4, d_ff=4, num_heads=1, d_kv=4, num_layers=1)
TINY_WEIGHTS = safetensors.torch.save({"shared.weight": torch.zeros(8, 4)})
NOISE = np.random.default_rng(0).bytes(256)


def _without(field: str) -> dict:
    return {name: value for name, value in TINY.items() if name != field}


BAD_INPUTS = {  # config.json (dict or text), a weights file (name, bytes) or None, what the error line says
    "config without d_ff": (_without("d_ff"), None, r"config\.json: the config has no d_ff"),
    "config without model_type": (_without("model_type"), None, r"has no model_type .* add \"model_type\""),
    "config with a bad size": ({**TINY, "d_model": "4"}, None, r"d_model='4' is invalid"),
    "config not JSON": ("{'model_type': 't5'", None, "is not valid JSON"),
    "config a JSON list": ([TINY], None, "holds a JSON list, not a config object"),
    "unknown activation": ({**TINY, "feed_forward_proj": "gated-gelu_x"}, None, "unsupported feed_forward_proj"),
    "empty safetensors": (TINY, ("model.safetensors", b""), r"cannot read .*model\.safetensors"),
    "truncated safetensors": (TINY, ("model.safetensors", TINY_WEIGHTS[:-7]), "damaged or incomplete"),
    "random safetensors": (TINY, ("model.safetensors", NOISE), "damaged or incomplete"),
    "random pytorch_model.bin": (TINY, ("pytorch_model.bin", NOISE), r"cannot read .*pytorch_model\.bin"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_malformed_inputs_are_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys, convert_script, case):
    config, weights, message = BAD_INPUTS[case]
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        (hf_dir / weights[0]).write_bytes(weights[1])
    monkeypatch.setattr(sys, "argv", ["convert_hf.py", "import", f"--hf_dir={hf_dir}", f"--out={tmp_path / 'out'}"])
    assert convert_script.main() == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()
