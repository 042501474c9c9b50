"""The Recurrent Memory Transformer: equal to its backbone without memory, one program over segments, memory
that carries (and can be reset, swapped or cut off from gradients), and clear errors for bad segmentation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from t5x_tl.models import decoding
from t5x_tl.models.encoder_only import EncoderOnly
from t5x_tl.models.hf_convert import ENCODER, config_from_hf, params_from_hf
from t5x_tl.models.registry import model_kind
from t5x_tl.models.rmt import RecurrentEncoder, RecurrentEncoderDecoder, RecurrentMemory
from t5x_tl.models.segments import MemoryConfig, merge, split
from t5x_tl.models.sizes import t5_config

VOCAB = 64
CFG = t5_config("tiny", VOCAB, d_model=32, d_ff=64, num_heads=2, d_kv=16, num_encoder_layers=2, num_decoder_layers=2)
MEMORY = MemoryConfig(segment_size=6, memory_size=3, max_segments=8)


def _tokens(rows: int = 2, length: int = 18, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, VOCAB, (rows, length)).astype(np.int32)


def _model(kind: str = "encoder_decoder", memory: MemoryConfig = MEMORY, **options) -> RecurrentMemory:
    model = model_kind(kind).build(CFG, nnx.Rngs(0), memory, **options)
    model.kind_name = kind  # what _with and _call dispatch on
    return model


def _with(model: RecurrentMemory, **changes) -> RecurrentMemory:
    """The same parameters under other (non-shape) memory settings."""
    twin = _model(model.kind_name, dataclasses.replace(model.memory_config, **changes))
    return nnx.merge(nnx.split(twin)[0], nnx.split(model)[1])


def _call(model, tokens, targets=None, **controls) -> np.ndarray:
    if isinstance(model, RecurrentEncoderDecoder):
        targets = targets if targets is not None else np.arange(2, 6, dtype=np.int32)[None].repeat(len(tokens), 0)
        return np.asarray(model(tokens, targets, **controls))
    return np.asarray(model(tokens, **controls))


@pytest.mark.parametrize("align", ["left", "right"])
def test_split_and_merge_are_inverse(align):
    tokens = _tokens(3, 14)
    tokens[1, 5:] = 0
    tokens[2, 13:] = 0
    cfg = dataclasses.replace(MEMORY, segment_size=4, align=align)
    segments = split((jnp.asarray(tokens),), jnp.asarray(tokens > 0), cfg)
    assert segments.values[0].shape == (4, 3, 4)
    np.testing.assert_array_equal(np.asarray(segments.values[0]) > 0, np.asarray(segments.real_SxBxT))
    counts = np.asarray(segments.present_SxB).sum(axis=0)
    np.testing.assert_array_equal(counts, [4, 2, 4])
    present = np.asarray(segments.present_SxB)[:, 1]
    assert list(present) == ([True, True, False, False] if align == "left" else [False, False, True, True])
    back = np.asarray(merge(segments.values[0], segments, 14))
    np.testing.assert_array_equal(back[tokens > 0], tokens[tokens > 0])


@pytest.mark.parametrize("kind", ["encoder_decoder", "decoder_only", "prefix_lm", "encoder_only"])
def test_one_segment_without_memory_is_the_backbone(kind):
    tokens = _tokens()
    tokens[1, 11:] = 0
    model = _model(kind, MemoryConfig(segment_size=18, memory_size=0, max_segments=1))
    extra = {}
    if kind == "prefix_lm":
        extra = dict(decoder_causal_attention=jnp.asarray(np.arange(18)[None].repeat(2, 0) < 5))
    if kind == "encoder_decoder":
        ours = np.asarray(model(tokens, tokens[:, :5]))
        theirs = np.asarray(model.backbone(tokens, tokens[:, :5]))
    else:
        ours = np.asarray(model(tokens, **extra))
        theirs = np.asarray(model.backbone(tokens, **extra))
    real = slice(None) if kind == "encoder_decoder" else tokens > 0
    np.testing.assert_allclose(ours[real], theirs[real], rtol=1e-5, atol=1e-5)


def _loss(model, tokens, targets):
    logits = model(tokens, targets)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1).mean()


def test_scan_unrolled_and_remat_agree_in_outputs_and_gradients():
    tokens, targets = jnp.asarray(_tokens()), jnp.asarray(_tokens(2, 4, seed=1))
    base = _model()
    results = []
    for changes in ({}, {"scan": False}, {"remat": True}, {"remat": True, "scan": False}):
        model = _with(base, **changes)
        graphdef, params = nnx.split(model)
        loss, grads = jax.jit(jax.value_and_grad(lambda p, g=graphdef: _loss(nnx.merge(g, p), tokens, targets)))(params)
        results.append((loss, grads))
    for loss, grads in results[1:]:
        np.testing.assert_allclose(loss, results[0][0], rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, results[0][1])
    assert float(jnp.abs(results[0][1]["memory"][...]).sum()) > 0


@pytest.mark.parametrize("kind", ["encoder_decoder", "decoder_only", "encoder_only"])
@pytest.mark.parametrize("align", ["left", "right"])
def test_a_short_row_keeps_its_memory_through_empty_segments(kind, align):
    model = _model(kind, dataclasses.replace(MEMORY, align=align))
    tokens = _tokens(2, 30)
    tokens[0, 10:] = 0  # 2 segments of 6 in a batch of 5
    alone = _call(model, tokens[:1, :10], tokens[:1, :4])
    batched = _call(model, tokens, tokens[:, :4])[:1]
    if kind != "encoder_decoder":
        batched = batched[:, :10]
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)


def test_memory_carries_the_first_segment_and_each_ablation_cuts_it():
    tokens = _tokens()
    changed = tokens.copy()
    changed[:, :6] = _tokens(2, 6, seed=5)  # only the first segment differs
    model = _model()

    def moved(model, **controls) -> float:
        return float(np.abs(_call(model, tokens, **controls) - _call(model, changed, **controls)).max())

    assert moved(model) > 1e-3
    assert moved(model, reset_memory=True) == 0.0
    assert moved(_with(model, write=False)) == 0.0
    assert moved(_model(memory=dataclasses.replace(MEMORY, memory_size=0))) == 0.0


def test_reset_memory_reads_only_the_last_segment():
    model = _model()
    tokens = _tokens()
    reset = _call(model, tokens, tokens[:, :4], reset_memory=True)
    np.testing.assert_allclose(reset, _call(model, tokens[:, 12:], tokens[:, :4]), rtol=1e-5, atol=1e-6)


def test_swapped_memory_makes_a_row_read_the_donors_history():
    model = _model()
    tokens = _tokens()
    tokens[1, 12:] = tokens[0, 12:]  # the same last segment, different histories
    targets = tokens[:1, :4].repeat(2, 0)
    plain = _call(model, tokens, targets)
    swapped = _call(model, tokens, targets, memory_permutation=jnp.array([1, 0]))
    np.testing.assert_allclose(swapped[0], plain[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(swapped[1], plain[0], rtol=1e-5, atol=1e-6)
    assert np.abs(plain[0] - plain[1]).max() > 1e-3


@pytest.mark.parametrize(("depth", "flows"), [(0, True), (1, False), (2, False), (3, True)])
def test_truncated_backpropagation_stops_gradients_through_the_memory(depth, flows):
    """3 segments: the initial memory reaches the loss only through memory carried over 2 segments."""
    model = _with(_model(), bptt_depth=depth)
    graphdef, params = nnx.split(model)
    tokens, targets = jnp.asarray(_tokens()), jnp.asarray(_tokens(2, 4, seed=1))
    grads = jax.grad(lambda p: _loss(nnx.merge(graphdef, p), tokens, targets))(params)
    assert (float(jnp.abs(grads["memory"][...]).max()) > 0) == flows


def test_greedy_decoding_reads_the_memory():
    model = _model()
    tokens = jnp.asarray(_tokens())
    decoded = np.asarray(decoding.greedy_decode(model, tokens, 5, eos_id=None))  # compiled by nnx.jit
    forced = np.asarray(model(tokens, jnp.concatenate([jnp.zeros((2, 1), jnp.int32), decoded[:, :-1]], 1)))
    np.testing.assert_array_equal(decoded, forced.argmax(-1))
    reset = np.asarray(decoding.greedy_decode(_with(model, write=False), tokens, 5, eos_id=None))
    assert decoded.shape == reset.shape == (2, 5)


def test_classify_pools_the_last_segment():
    model = _model("encoder_only", num_outputs=3)
    tokens = _tokens()
    out = np.asarray(model.classify(tokens))
    assert out.shape == (2, 3) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="num_outputs"):
        _model("encoder_only").classify(tokens)


def test_a_hugging_face_t5_encoder_gets_memory_without_new_layers():
    hf_config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_ff=48, num_heads=4, d_kv=8, num_layers=2, feed_forward_proj="gated-gelu"
    )
    torch.manual_seed(0)
    hf = transformers.T5EncoderModel(hf_config).eval()
    cfg = config_from_hf(hf_config.to_dict(), dropout_rate=0.0)
    params = params_from_hf({k: v.numpy() for k, v in hf.state_dict().items()}, cfg, head=ENCODER)
    graphdef, _ = nnx.split(EncoderOnly(cfg, token_head=False, rngs=nnx.Rngs(0)))
    backbone = nnx.merge(graphdef, params)
    tokens = _tokens(2, 12)
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor(tokens)).last_hidden_state.numpy()
    single = RecurrentEncoder(backbone, MemoryConfig(12, 0, 1), rngs=nnx.Rngs(1))
    _, (hidden, _), _, _ = single.encode(tokens)
    np.testing.assert_allclose(np.asarray(hidden), expected, rtol=1e-4, atol=1e-5)
    recurrent = RecurrentEncoder(backbone, MemoryConfig(4, 2, 3), rngs=nnx.Rngs(1))
    memory, (hidden, _), _, _ = recurrent.encode(tokens)
    assert memory.shape == (2, 2, 32) and hidden.shape == (2, 6, 32)
    assert set(nnx.to_pure_dict(nnx.state(recurrent, nnx.Param))) == {"backbone", "memory"}


def test_bad_segmentation_is_refused_with_what_to_change():
    with pytest.raises(ValueError, match="more than max_segments=8"):
        _call(_model(), _tokens(2, 49))
    with pytest.raises(ValueError, match="beyond max_length=16"):
        _model(memory=MemoryConfig(segment_size=14, memory_size=2, max_segments=2, max_length=16, segment_eos=True))
    with pytest.raises(ValueError, match="beyond max_length=16"):
        _model("decoder_only", MemoryConfig(segment_size=10, memory_size=4, max_segments=2, max_length=16))
    with pytest.raises(ValueError, match="no positions"):
        _call(_model("encoder_only"), np.zeros((2, 0), np.int32))
    with pytest.raises(ValueError, match="align"):
        MemoryConfig(segment_size=4, memory_size=2, max_segments=2, align="center")
    with pytest.raises(ValueError, match="memory_size"):
        MemoryConfig(segment_size=4, memory_size=-1, max_segments=2)
    with pytest.raises(ValueError, match="prefix_lm"):
        _model("decoder_only")(_tokens(), None, jnp.ones((2, 18), bool))


def test_segment_eos_ends_every_encoder_segment():
    model = _model(memory=dataclasses.replace(MEMORY, segment_eos=True))
    _, (hidden, keys), _, _ = model.encode(_tokens())
    assert hidden.shape == (2, 3 + 6 + 1, 32) and bool(keys[:, -1].all())
