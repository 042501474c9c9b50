"""Encoder-only models: equal to transformers' T5EncoderModel on the same weights, import/export, pooled heads."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from t5x_tl.errors import UserError
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.hf_convert import ENCODER, config_from_hf, load_hf_directory, params_from_hf, save_hf_directory
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5_kinds import DECODER_ONLY

VOCAB = 80
HF = dict(vocab_size=VOCAB, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=3, feed_forward_proj="gated-gelu")


def _inputs() -> np.ndarray:
    tokens = np.random.default_rng(0).integers(2, VOCAB, (2, 17))
    tokens[1, 9:] = 0
    return tokens


def _hidden(model: torch.nn.Module, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(tokens > 0))
    return out.last_hidden_state.numpy() if hasattr(out, "last_hidden_state") else out.encoder_last_hidden_state.numpy()


def _ours(state_dict: dict, hf_config: dict) -> EncoderOnly:
    cfg = config_from_hf(hf_config, dropout_rate=0.0)
    params = params_from_hf({k: v.numpy() for k, v in state_dict.items()}, cfg, head=ENCODER)
    graphdef, _ = nnx.split(EncoderOnly(cfg, token_head=False, rngs=nnx.Rngs(0)))
    return nnx.merge(graphdef, params)


def _assert_close(actual, expected) -> None:
    """Every position, the padded ones included (they attend to the real tokens, as in transformers)."""
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_encodings_equal_transformers_t5_encoder_model():
    torch.manual_seed(0)
    reference = transformers.T5EncoderModel(transformers.T5Config(**HF, dropout_rate=0.0)).eval()
    ours = _ours(reference.state_dict(), reference.config.to_dict())
    _assert_close(ours.encode(jnp.asarray(_inputs())), _hidden(reference, _inputs()))


def test_the_encoder_of_a_full_t5_checkpoint_imports_alone():
    torch.manual_seed(1)
    full = transformers.T5ForConditionalGeneration(transformers.T5Config(**HF, dropout_rate=0.0)).eval()
    ours = _ours(full.state_dict(), full.config.to_dict())
    tokens = _inputs()
    with torch.no_grad():
        expected = full.encoder(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(tokens > 0))
    _assert_close(ours.encode(jnp.asarray(tokens)), expected.last_hidden_state.numpy())


def test_export_loads_as_t5_encoder_model_and_round_trips(tmp_path):
    cfg = config_from_hf({**HF, "model_type": "t5", "tie_word_embeddings": False}, dropout_rate=0.0)
    ours = EncoderOnly(cfg, token_head=False, rngs=nnx.Rngs(2))
    params = nnx.to_pure_dict(nnx.state(ours, nnx.Param))
    save_hf_directory(tmp_path, cfg, params, head=ENCODER)
    loaded = transformers.T5EncoderModel.from_pretrained(tmp_path).eval()
    _assert_close(ours.encode(jnp.asarray(_inputs())), _hidden(loaded, _inputs()))
    _, params_back = load_hf_directory(tmp_path, head=ENCODER)
    stacked = params["encoder"]["layers"]["stacked"]["mlp"]["wo"]
    np.testing.assert_array_equal(params_back["encoder"]["layers"]["stacked"]["mlp"]["wo"], np.asarray(stacked))


def test_no_decoder_only_conversion(tmp_path):
    cfg = t5_config("tiny", VOCAB)
    with pytest.raises(UserError, match="Hugging Face has no twin of a decoder_only model"):
        DECODER_ONLY.load_hf(tmp_path)
    with pytest.raises(ValueError, match="unknown T5 head 'ForCausalLM'"):
        params_from_hf({}, cfg, head="ForCausalLM")


@pytest.fixture(scope="module")
def classifier() -> EncoderOnly:
    return EncoderOnly(t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=8), num_outputs=3,
                       rngs=nnx.Rngs(0))  # fmt: skip


def test_mean_pooled_head_ignores_padding(classifier):
    tokens = jnp.asarray(_inputs()[:1, :9])
    padded = jnp.pad(tokens, ((0, 0), (0, 6)))
    out = np.asarray(classifier.classify(tokens))
    assert out.shape == (1, 3) and out.dtype == np.float32
    np.testing.assert_allclose(np.asarray(classifier.classify(padded)), out, atol=1e-5)
    assert classifier(tokens).shape == (1, 9, VOCAB)


def test_first_token_pooling_reads_position_zero():
    cfg = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=8)
    first = EncoderOnly(cfg, num_outputs=2, pooling="first", rngs=nnx.Rngs(0))
    tokens = jnp.asarray(_inputs()[:1])
    hidden = first.encode(tokens)
    np.testing.assert_allclose(first.classify(tokens), hidden[:, 0] @ first.head[...], rtol=1e-5, atol=1e-6)


def test_bad_encoder_only_use():
    cfg = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=4, d_kv=8)
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        EncoderOnly(cfg, pooling="max", rngs=nnx.Rngs(0))
    bare = EncoderOnly(cfg, token_head=False, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(_inputs())
    with pytest.raises(ValueError, match="no pooled head"):
        bare.classify(tokens)
    with pytest.raises(ValueError, match="token_head=False"):
        bare(tokens)
