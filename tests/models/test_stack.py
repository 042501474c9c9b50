"""Layers stacked on a leading axis: scan and loop agree, remat changes memory and not numbers, one body compiles."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from t5x_tl.config import DEFAULT_RULES
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.stack import REMAT_POLICIES, LayerStack
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.train.partitioning import param_specs
from t5x_tl.train.state import TrainState
from t5x_tl.train.step import make_train_step

CFG = t5_config("tiny", 96, d_model=32, d_ff=64, num_heads=4, d_kv=8, num_encoder_layers=3, num_decoder_layers=2)


def _batch(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(2, 96, (4, 7), dtype=np.int32)
    return {
        "encoder_input_tokens": jnp.asarray(rng.integers(2, 96, (4, 13), dtype=np.int32)),
        "decoder_input_tokens": jnp.asarray(np.pad(targets, ((0, 0), (1, 0)))[:, :-1]),
        "decoder_target_tokens": jnp.asarray(targets),
        "decoder_loss_weights": jnp.ones((4, 7), jnp.float32),
    }


def _params(cfg) -> tuple[nnx.GraphDef, dict]:
    graphdef, params = nnx.split(EncoderDecoder(cfg, rngs=nnx.Rngs(0)), nnx.Param)
    return graphdef, nnx.to_pure_dict(params)


def _loss_and_grads(cfg, params: dict):
    graphdef, _ = _params(cfg)

    def loss(p):
        logits = nnx.merge(graphdef, p)(_batch()["encoder_input_tokens"], _batch()["decoder_input_tokens"])
        return jax.nn.log_softmax(logits).mean()

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize(
    "variant", [dict(scan_layers=False)] + [dict(remat_policy=p) for p in REMAT_POLICIES if p != "none"]
)
def test_scan_loop_and_remat_give_the_same_loss_and_gradients(variant):
    _, params = _params(CFG)
    loss, grads = _loss_and_grads(CFG, params)
    other_loss, other_grads = _loss_and_grads(dataclasses.replace(CFG, **variant), params)
    np.testing.assert_allclose(float(other_loss), float(loss), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(other_grads), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-7)


def test_parameters_are_stacked_on_a_replicated_layers_axis():
    _, params = _params(CFG)
    wi = params["encoder"]["layers"]["stacked"]["mlp"]["wi_0"]
    assert wi.shape == (3, 32, 64)
    abstract = nnx.state(nnx.eval_shape(lambda: EncoderDecoder(CFG, rngs=nnx.Rngs(0))), nnx.Param)
    specs = param_specs(abstract, DEFAULT_RULES)
    assert specs["encoder"]["layers"]["stacked"]["mlp"]["wi_0"] == PartitionSpec(None, None, "model")
    assert specs["decoder"]["layers"]["stacked"]["self_attention"]["query"] == PartitionSpec(None, None, "model", None)


def _dot_count(cfg) -> int:
    graphdef, params = _params(cfg)
    batch = _batch()
    forward = lambda p: nnx.merge(graphdef, p)(batch["encoder_input_tokens"], batch["decoder_input_tokens"])
    return str(jax.make_jaxpr(forward)(params)).count("dot_general")


def test_scan_traces_one_layer_body_whatever_the_depth():
    deep = dict(num_encoder_layers=6, num_decoder_layers=5)
    assert _dot_count(dataclasses.replace(CFG, **deep)) == _dot_count(CFG)
    unrolled = dataclasses.replace(CFG, scan_layers=False)
    assert _dot_count(dataclasses.replace(unrolled, **deep)) > _dot_count(unrolled)


def _step_temp_bytes(cfg) -> int:
    graphdef, params = _params(cfg)
    optimizer = optax.adamw(1e-3)
    state = TrainState.create(params, optimizer)
    step = jax.jit(make_train_step(graphdef, optimizer, lambda _: 1e-3, 0.0, 0))
    return step.lower(state, _batch()).compile().memory_analysis().temp_size_in_bytes


def test_full_remat_needs_less_activation_memory():
    none, full = (_step_temp_bytes(dataclasses.replace(CFG, remat_policy=p)) for p in ("none", "full"))
    assert full < 0.8 * none, (none, full)


def test_bad_stack_arguments():
    make = lambda rngs: nnx.Linear(2, 2, rngs=rngs)
    with pytest.raises(ValueError, match="unknown remat_policy 'some'"):
        LayerStack(make, 2, scan=True, remat_policy="some", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="at least one layer"):
        LayerStack(make, 0, scan=True, remat_policy="none", rngs=nnx.Rngs(0))


def test_dropout_keys_are_per_layer_and_reproducible():
    drop = dataclasses.replace(CFG, dropout_rate=0.3)
    _, params = _params(drop)
    batch = _batch()

    @functools.partial(nnx.jit, static_argnames="deterministic")
    def forward(model, enc, dec, rngs, deterministic: bool):
        return model(enc, dec, deterministic=deterministic, rngs=rngs)

    def logits(cfg, seed: int | None):
        model = nnx.merge(nnx.graphdef(nnx.eval_shape(lambda: EncoderDecoder(cfg, rngs=nnx.Rngs(0)))), params)
        rngs = None if seed is None else nnx.Rngs(dropout=seed)
        enc, dec = batch["encoder_input_tokens"], batch["decoder_input_tokens"]
        return np.asarray(forward(model, enc, dec, rngs, seed is None))

    train = logits(drop, 1)
    np.testing.assert_array_equal(train, logits(drop, 1))
    np.testing.assert_allclose(logits(dataclasses.replace(drop, scan_layers=False), 1), train, rtol=1e-5, atol=1e-5)
    assert np.abs(train - logits(drop, 2)).max() > 1e-2
    assert np.abs(train - logits(drop, None)).max() > 1e-2
