"""The pure train step: it learns, normalises per target token, and gives the same result on any mesh."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from t5x_tl.config import DEFAULT_RULES
from t5x_tl.models.registry import model_kind
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.train import partitioning
from t5x_tl.train.losses import token_losses
from t5x_tl.train.state import abstract_model, init_train_state, state_shardings
from t5x_tl.train.step import make_eval_step, make_train_step

CFG = t5_config("tiny", 128, d_model=32, d_ff=64, num_heads=4, d_kv=8)


def factory(rngs):
    return EncoderDecoder(CFG, rngs=rngs)


def _batch(seed: int = 0, batch: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(2, 128, (batch, 6), dtype=np.int32)
    weights = np.ones((batch, 6), np.float32)
    weights[:, 4:] = 0
    return {
        "encoder_input_tokens": rng.integers(2, 128, (batch, 10), dtype=np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], 1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": weights,
    }


def _run(mesh: jax.sharding.Mesh, steps: int, microbatches: int = 1, batch: dict | None = None, rules=DEFAULT_RULES):
    optimizer = optax.adafactor(1e-2)
    shardings = state_shardings(factory, optimizer, mesh, rules)
    state = init_train_state(factory, optimizer, shardings, seed=0)
    graphdef, _ = abstract_model(factory)
    step = jax.jit(
        make_train_step(graphdef, optimizer, lambda _: 1e-2, 1e-4, 0, microbatches=microbatches, rules=rules),
        in_shardings=(shardings, partitioning.batch_sharding(mesh)),
        out_shardings=(shardings, None),
    )
    losses = []
    with jax.set_mesh(mesh):
        for _ in range(steps):
            state, metrics = step(state, _batch() if batch is None else batch)
            losses.append(float(metrics["loss"]))
    return state, losses


@functools.cache
def _one_device_losses() -> tuple[float, ...]:
    """The reference every sharded run must match (computed once for the module)."""
    return tuple(_run(partitioning.make_mesh(1, 1, devices=jax.devices()[:1]), steps=3)[1])


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    state, losses = _run(partitioning.make_mesh(-1, 1), steps=15)
    assert losses[-1] < 0.8 * losses[0], losses
    assert int(state.step) == 15


@pytest.mark.parametrize("mesh_shape", [(2, 2), (1, 4)])
def test_sharded_training_matches_one_device(mesh_shape):
    assert jax.device_count() == 4, "conftest provides four CPU devices"
    single = _one_device_losses()
    state, sharded = _run(partitioning.make_mesh(*mesh_shape), steps=3)
    np.testing.assert_allclose(sharded, single, rtol=2e-5)
    kernel = state.params["decoder"]["layers"]["stacked"]["mlp"]["wi_0"]
    assert kernel.sharding.spec == PartitionSpec(None, None, "model")
    assert (kernel.sharding.mesh.shape["data"], kernel.sharding.mesh.shape["model"]) == mesh_shape


@pytest.mark.parametrize(
    ("preset", "axes"),
    [
        ("fsdp", dict(data=1, model=1, fsdp=4)),
        ("fsdp_tensor_parallel", dict(data=1, model=2, fsdp=2)),
        ("data_parallel", dict(data=2, model=1, replica=2)),
    ],
)
def test_every_sharding_preset_matches_one_device(preset, axes):
    single = _one_device_losses()
    rules = partitioning.resolve_rules(preset)
    state, sharded = _run(partitioning.make_mesh(**axes), steps=3, rules=rules)
    np.testing.assert_allclose(sharded, single, rtol=2e-5)
    embedding = state.params["token_embed"]["embedding"].sharding.spec  # (vocab, embed)
    expected = {"fsdp": (None, "fsdp"), "fsdp_tensor_parallel": ("model", "fsdp"), "data_parallel": (None, None)}
    assert tuple(embedding) + (None,) * (2 - len(embedding)) == expected[preset]


@pytest.mark.parametrize("microbatches", [2, 4])
def test_accumulated_microbatches_equal_the_whole_batch(microbatches):
    batch = _batch()
    batch["decoder_loss_weights"][np.arange(8) % 3 == 0, 1:] = 0  # uneven target tokens per microbatch
    mesh = partitioning.make_mesh(2, 2)
    whole, whole_losses = _run(mesh, steps=3, batch=batch)
    accumulated, losses = _run(mesh, steps=3, microbatches=microbatches, batch=batch)
    np.testing.assert_allclose(losses, whole_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(accumulated.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-6)


def test_loss_is_normalised_per_target_token():
    logits = np.zeros((2, 3, 5), np.float32)
    targets = np.zeros((2, 3), np.int32)
    weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    sums = token_losses(logits, targets, weights, z_loss=0.0)
    assert float(sums["weight_sum"]) == 3.0
    np.testing.assert_allclose(float(sums["cross_entropy_sum"]) / 3.0, np.log(5.0), rtol=1e-6)


def test_sequence_accuracy_counts_packed_segments_and_rows_whose_every_token_is_right():
    targets = np.array([[3, 4, 5, 6, 0], [2, 2, 2, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    predicted = np.array([[3, 4, 5, 1, 0], [2, 2, 2, 9, 9], [0, 0, 0, 0, 0]], np.int32)  # row 0: 4th token wrong
    logits = np.eye(10, dtype=np.float32)[predicted]
    weights = (targets > 0).astype(np.float32)
    packed = np.array([[1, 1, 2, 2, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    sums = token_losses(logits, targets, weights, 0.0, packed)
    # segments: row 0 holds (3, 4) right and (5, 6) wrong; row 1 one right segment; the all-padding row none
    assert (float(sums["sequence_sum"]), float(sums["sequence_correct_sum"])) == (3.0, 2.0)
    unpacked = token_losses(logits, targets, weights, 0.0)
    assert (float(unpacked["sequence_sum"]), float(unpacked["sequence_correct_sum"])) == (2.0, 1.0)


def test_padding_targets_do_not_change_the_loss():
    graphdef, _ = abstract_model(factory)
    mesh = partitioning.make_mesh(-1, 1)
    shardings = state_shardings(factory, optax.adafactor(1e-2), mesh, DEFAULT_RULES)
    params = init_train_state(factory, optax.adafactor(1e-2), shardings, seed=0).params
    eval_step = jax.jit(make_eval_step(graphdef, 0.0))
    batch = _batch()
    noisy = dict(
        batch, decoder_target_tokens=np.where(batch["decoder_loss_weights"] > 0, batch["decoder_target_tokens"], 7)
    )
    a, b = eval_step(params, batch), eval_step(params, noisy)
    assert float(a["cross_entropy_sum"]) == pytest.approx(float(b["cross_entropy_sum"]), rel=1e-6)
    assert float(a["weight_sum"]) == 8 * 4


def test_mesh_shape_errors():
    assert partitioning.mesh_shape((-1, 2), 8) == (4, 2)
    with pytest.raises(ValueError, match="does not divide"):
        partitioning.mesh_shape((3, -1), 8)
    with pytest.raises(ValueError, match="at most one mesh axis"):
        partitioning.mesh_shape((-1, -1), 8)


def _kind_batch(kind: str) -> dict[str, np.ndarray]:
    """Features as SeqIO's converter for ``kind`` writes them (unpacked)."""
    rng = np.random.default_rng(5)
    if kind == "encoder_only":
        targets = rng.integers(2, 128, (8, 12), dtype=np.int32)
        masked = rng.random((8, 12)) < 0.3
        return {
            "encoder_input_tokens": np.where(masked, 127, targets).astype(np.int32),
            "encoder_target_tokens": targets,
            "encoder_loss_weights": masked.astype(np.float32),
        }
    targets = rng.integers(2, 128, (8, 12), dtype=np.int32)
    batch = {
        "decoder_input_tokens": np.pad(targets, ((0, 0), (1, 0)))[:, :-1],
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones((8, 12), np.float32),
    }
    if kind == "prefix_lm":
        batch["decoder_causal_attention"] = np.repeat([[1] * 6 + [0] * 6], 8, axis=0).astype(np.int32)
        batch["decoder_loss_weights"][:, :5] = 0
    return batch


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [
        ("decoder_only", "float32"),
        ("prefix_lm", "float32"),
        ("encoder_only", "float32"),
        ("encoder_decoder", "bfloat16"),
    ],
)
def test_every_model_kind_trains(kind, dtype):
    cfg = dataclasses.replace(CFG, dtype=dtype, param_dtype=dtype)
    make = lambda rngs: model_kind(kind).build(cfg, rngs)
    mesh = partitioning.make_mesh(2, 2)
    optimizer = optax.adam(3e-3)
    shardings = state_shardings(make, optimizer, mesh, DEFAULT_RULES)
    state = init_train_state(make, optimizer, shardings, seed=0)
    graphdef, _ = abstract_model(make)
    step = jax.jit(
        make_train_step(graphdef, optimizer, lambda _: 3e-3, 1e-4, 0, model_kind(kind)), out_shardings=(shardings, None)
    )
    batch = _batch() if kind == "encoder_decoder" else _kind_batch(kind)
    losses = []
    with jax.set_mesh(mesh):
        for _ in range(15):
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
