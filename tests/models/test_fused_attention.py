"""``model.attention_impl``: jax.nn.dot_product_attention ("dot_product") equals the einsum attention ("xla") in
float32 on the CPU, forward and backward (inputs, q/k/v/out weights and the relative-bias table), under padding,
packing, causal and cross-attention masks and in cached decoding; "auto" is the einsum path here."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from t5x_tl.models.attention import (
    MultiHeadAttention,
    RelativePositionBias,
    causal_mask,
    resolve_attention_impl,
    segment_mask,
)
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder

B, H, D_KV, D_MODEL, VOCAB = 2, 2, 4, 16, 32
IMPLS = ("xla", "dot_product")
TOL = dict(rtol=1e-5, atol=1e-5)
# Both implementations of a test run in one program, compiled without LLVM's optimisations (half the compile time
# of these tiny programs; both implementations get the same options).
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": "0"})


def _split(factory, impls=IMPLS) -> tuple[dict, nnx.State]:
    """Graph definitions per implementation and one set of random parameters, without compiling initialisers."""
    graphdefs = {impl: nnx.split(nnx.eval_shape(functools.partial(factory, impl)))[0] for impl in impls}
    _, abstract = nnx.split(nnx.eval_shape(functools.partial(factory, impls[0])))
    rng = np.random.default_rng(0)
    return graphdefs, jax.tree.map(lambda x: (0.5 * rng.standard_normal(x.shape)).astype(x.dtype), abstract)


class _Attention(nnx.Module):
    """One attention layer with both kinds of relative-bias table, so that the table's gradient is checked too."""

    def __init__(self, impl: str):
        kw = dict(dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
        self.attention = MultiHeadAttention(D_MODEL, H, D_KV, dropout_rate=0.5, attention_impl=impl, **kw)
        self.bidirectional_bias = RelativePositionBias(32, 128, H, bidirectional=True, **kw)
        self.causal_bias = RelativePositionBias(32, 128, H, bidirectional=False, **kw)

    def __call__(self, x, context, mask, bias_kind: str | None, position, dropout_key=None):
        table = {"bidirectional": self.bidirectional_bias, "causal": self.causal_bias}.get(bias_kind)
        drop = dict(deterministic=True, rngs=None)
        if dropout_key is not None:
            drop = dict(deterministic=False, rngs=nnx.Rngs(dropout=dropout_key))
        if position is None:  # teacher forcing: queries and keys from position 0
            bias = None if table is None else table(x.shape[1], context.shape[1])
            return self.attention(x, context, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, **drop)
        # cached decoding: queries at position.. against the keys/values of a whole (zero-padded) cache
        key_value = self.attention.key_value(context)
        bias = table(x.shape[1], context.shape[1], position)
        return self.attention(x, None, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, key_value=key_value, **drop)


# name: bias table; a padding query of the decoder's masks attends to nothing (a fully masked row)
CASES = {
    "encoder": "bidirectional",
    "decoder_causal": "causal",
    "cross_attention": None,
    "cached_decoding_1": "causal",
    "cached_decoding_3": "causal",
}


def _inputs(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, length, D_MODEL)).astype(np.float32)


def _cases() -> dict[str, dict]:
    """The inputs and masks of every case (built inside the compiled program)."""
    # row 0: one example and padding; row 1: two packed examples and padding
    segments = jnp.asarray([[1] * 10 + [0] * 6, [1] * 5 + [2] * 7 + [0] * 4])
    # as the encoder builds it: padding queries see every real key, real ones never see padding
    padding_query = (segments == 0)[:, None, :, None] & (segments > 0)[:, None, None, :]
    x, y = _inputs(16, 0), _inputs(16, 1)
    cases = {
        "encoder": dict(x=x, context=x, mask=segment_mask(segments, segments) | padding_query, position=None),
        "decoder_causal": dict(x=y, context=y, mask=segment_mask(segments, segments) & causal_mask(16), position=None),
        "cross_attention": dict(
            x=_inputs(8, 2),
            context=_inputs(16, 3),
            mask=segment_mask(jnp.asarray([[1] * 6 + [0] * 2, [1] * 3 + [2] * 3 + [0] * 2]), segments),
            position=None,
        ),
    }
    position, max_length = 5, 12
    for queries in (1, 3):
        # the cache holds positions < position + queries; the rest is still zero, and masked
        cache = np.where(np.arange(max_length)[None, :, None] < position + queries, _inputs(max_length, 4), 0.0)
        allowed = jnp.arange(max_length)[None, :] <= position + jnp.arange(queries)[:, None]
        cases[f"cached_decoding_{queries}"] = dict(
            x=_inputs(queries, 5), context=cache, mask=allowed[None, None], position=jnp.int32(position)
        )
    return cases


@functools.cache
def _results() -> dict:
    """Outputs and gradients of every case under both implementations, from one compiled program."""
    graphdefs, state = _split(_Attention)

    def one(impl, state, case, bias_kind):
        cotangent = _inputs(case["x"].shape[1], 9)

        def loss(state, x, context):
            out = nnx.merge(graphdefs[impl], state)(x, context, case["mask"], bias_kind, case["position"])
            return jnp.sum(out * cotangent), out

        (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(state, case["x"], case["context"])
        return {"output": out, "params": grads[0], "d_x": grads[1], "d_context": grads[2]}

    def dropped(impl, state, case):  # training with attention dropout: every implementation runs the einsums
        model = nnx.merge(graphdefs[impl], state)
        return model(case["x"], case["context"], case["mask"], "bidirectional", None, dropout_key=jax.random.key(1))

    @jit
    def run(state):
        cases = _cases()
        results = {impl: {name: one(impl, state, cases[name], kind) for name, kind in CASES.items()} for impl in IMPLS}
        return results, {impl: dropped(impl, state, cases["encoder"]) for impl in IMPLS}

    return jax.device_get(run(state))


@pytest.mark.parametrize("name", CASES)
def test_dot_product_attention_equals_einsum_attention(name):
    ours, ref = _results()[0]["dot_product"][name], _results()[0]["xla"][name]
    assert np.isfinite(ref["output"]).all()
    for key in ("output", "d_x", "d_context"):
        np.testing.assert_allclose(ours[key], ref[key], **TOL, err_msg=key)
    params = dict(nnx.to_flat_state(ref["params"]))
    for path, grad in nnx.to_flat_state(ours["params"]):
        np.testing.assert_allclose(grad[...], params[path][...], **TOL, err_msg="/".join(map(str, path)))
    if CASES[name] is not None:  # the relative-bias table's gradient is not trivially zero
        assert np.abs(params[(f"{CASES[name]}_bias", "embedding")][...]).max() > 1e-3


def test_attention_dropout_falls_back_to_the_einsums():
    dropped = _results()[1]
    np.testing.assert_array_equal(dropped["dot_product"], dropped["xla"])  # the same program, the same mask
    assert np.abs(dropped["xla"] - _results()[0]["xla"]["encoder"]["output"]).max() > 1e-3, "dropout was applied"


def _t5_loss(graphdef, state, batch):
    model = nnx.merge(graphdef, state)
    logits = model(batch["inputs"], batch["decoder_inputs"], batch["input_segments"], batch["target_segments"])
    log_probs = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(log_probs, batch["targets"][..., None], axis=-1)[..., 0]
    weights = (batch["targets"] > 0).astype(jnp.float32)
    return jnp.sum(nll * weights) / jnp.sum(weights)


def test_tiny_t5_loss_and_gradients_match():
    cfg = t5_config("tiny", VOCAB, d_model=D_MODEL, d_ff=32, num_heads=H, d_kv=D_KV, num_encoder_layers=1)
    cfg = dataclasses.replace(cfg, num_decoder_layers=1, scan_layers=False)
    assert cfg.shape_signature() == dataclasses.replace(cfg, attention_impl="cudnn").shape_signature()
    rng = np.random.default_rng(0)
    inputs = rng.integers(2, VOCAB, (B, 16))
    inputs[0, 12:] = 0
    targets = rng.integers(2, VOCAB, (B, 8))
    targets[0, 6:] = 0
    batch = {
        "inputs": inputs.astype(np.int32),
        "input_segments": np.asarray([[1] * 5 + [2] * 7 + [0] * 4, [1] * 16], np.int32),
        "targets": targets.astype(np.int32),
        "decoder_inputs": np.pad(targets, ((0, 0), (1, 0)))[:, :-1].astype(np.int32),
        "target_segments": np.asarray([[1] * 3 + [2] * 3 + [0] * 2, [1] * 8], np.int32),
    }
    graphdefs, state = _split(
        lambda impl: EncoderDecoder(dataclasses.replace(cfg, attention_impl=impl), rngs=nnx.Rngs(0))
    )
    run = jit(lambda state, batch: {i: jax.value_and_grad(_t5_loss, 1)(graphdefs[i], state, batch) for i in IMPLS})
    results = jax.device_get(run(state, batch))  # one compiled program for both
    (loss_x, grads_x), (loss_d, grads_d) = results["xla"], results["dot_product"]
    np.testing.assert_allclose(loss_d, loss_x, **TOL)
    other = dict(nnx.to_flat_state(grads_d))
    for path, grad in nnx.to_flat_state(grads_x):
        np.testing.assert_allclose(other[path][...], grad[...], **TOL, err_msg="/".join(map(str, path)))


def test_choice_of_implementation():
    resolve = functools.partial(resolve_attention_impl, d_kv=64, cached=False)
    assert resolve("dot_product", dtype=jnp.float32, dropout_active=False) == "dot_product"
    assert resolve("dot_product", dtype=jnp.float32, dropout_active=True) == "xla"  # attention dropout
    assert resolve("auto", dtype=jnp.float32, dropout_active=False) == "xla"  # cuDNN takes no float32
    if jax.default_backend() == "cpu":
        assert resolve("auto", dtype=jnp.bfloat16, dropout_active=False) == "xla"
        with pytest.raises(ValueError, match="attention_impl='cudnn' needs an NVIDIA GPU"):
            resolve("cudnn", dtype=jnp.bfloat16, dropout_active=False)
    with pytest.raises(ValueError, match="unknown attention_impl 'flash'"):
        MultiHeadAttention(8, 2, 4, dropout_rate=0.0, dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0),
                           attention_impl="flash")  # fmt: skip


def test_config_validation_names_the_choices():
    from t5x_tl.config import base_config, model_config, validate
    from t5x_tl.errors import UserError

    cfg = base_config()
    assert cfg.model.attention_impl == "auto"
    cfg.model.attention_impl = "dot_product"
    validate(cfg)
    assert model_config(cfg, 100).attention_impl == "dot_product"
    cfg.model.attention_impl = "flash"
    with pytest.raises(UserError, match=r"config.model.attention_impl='flash' is invalid: choose one of \('auto', "):
        validate(cfg)
