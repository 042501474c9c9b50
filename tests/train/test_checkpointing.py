"""Orbax checkpoints: exact round trip, keep-last-K, metadata before arrays, restore onto another mesh, the input
position in the same step (a damaged one replayed)."""

from __future__ import annotations

import logging

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from t5x_tl.config import DEFAULT_RULES
from t5x_tl.data.pipeline import BatchSpec, TaskBatches
from t5x_tl.data.tasks import builtin as tasks
from t5x_tl.errors import UserError
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.train import partitioning
from t5x_tl.train.checkpointing import Checkpointer
from t5x_tl.train.job import _host_sharding
from t5x_tl.train.restore import restore_input_position
from t5x_tl.train.state import abstract_train_state, init_train_state, state_shardings

CFG = t5_config("tiny", 128, d_model=32, d_ff=64, num_heads=4, d_kv=8)
OPTIMIZER = optax.adafactor(1e-2)


def factory(rngs):
    return EncoderDecoder(CFG, rngs=rngs)


def _state(mesh, seed=0, rules=DEFAULT_RULES):
    shardings = state_shardings(factory, OPTIMIZER, mesh, rules)
    return init_train_state(factory, OPTIMIZER, shardings, seed), shardings


def _assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_onto_another_mesh(tmp_path):
    saved, _ = _state(partitioning.make_mesh(2, 2), seed=1)
    checkpointer = Checkpointer(tmp_path, every=1, keep=2)
    assert checkpointer.save(5, saved, {"model": CFG.shape_signature(), "data_batches": 5})
    checkpointer.wait()
    assert checkpointer.latest_step() == 5
    assert checkpointer.metadata(5) == {"model": CFG.shape_signature(), "data_batches": 5}
    one_device = partitioning.make_mesh(1, 1, devices=jax.devices()[:1])
    _, shardings = _state(one_device)
    restored = checkpointer.restore(5, abstract_train_state(factory, OPTIMIZER, shardings))
    checkpointer.close()
    _assert_equal(saved, restored)
    assert restored.params["lm_head"].sharding.mesh.size == 1


@pytest.mark.parametrize(
    ("devices", "axes", "preset"),
    [(2, dict(data=2, model=1), "data_parallel"), (2, dict(data=1, model=1, fsdp=2), "fsdp"), (1, {}, "fsdp")],
)
def test_fully_sharded_state_restores_on_fewer_devices_and_other_presets(tmp_path, devices, axes, preset):
    saved, _ = _state(
        partitioning.make_mesh(1, 2, fsdp=2), seed=2, rules=partitioning.resolve_rules("fsdp_tensor_parallel")
    )
    checkpointer = Checkpointer(tmp_path, every=1, keep=1)
    checkpointer.save(1, saved, {})
    checkpointer.wait()
    mesh = partitioning.make_mesh(**{"data": 1, "model": 1, **axes}, devices=jax.devices()[:devices])
    _, shardings = _state(mesh, rules=partitioning.resolve_rules(preset))
    restored = checkpointer.restore(1, abstract_train_state(factory, OPTIMIZER, shardings))
    checkpointer.close()
    _assert_equal(saved, restored)
    assert restored.params["token_embed"]["embedding"].sharding.mesh.size == devices


def test_keeps_the_newest_checkpoints(tmp_path):
    state, _ = _state(partitioning.make_mesh(-1, 1))
    checkpointer = Checkpointer(tmp_path, every=2, keep=2)
    saved = [step for step in range(1, 9) if checkpointer.save(step, state, {})]
    checkpointer.wait()
    assert saved == [2, 4, 6, 8]
    assert sorted(checkpointer._manager.all_steps()) == [6, 8]
    checkpointer.close()


def test_unreadable_metadata_is_a_clear_error(tmp_path):
    state, _ = _state(partitioning.make_mesh(-1, 1))
    checkpointer = Checkpointer(tmp_path, every=1, keep=1)
    checkpointer.save(1, state, {"model": {}})
    checkpointer.wait()
    for path in (tmp_path / "1" / "metadata").iterdir():
        path.unlink()
    with pytest.raises(UserError, match="no readable metadata"):
        checkpointer.metadata(1)
    checkpointer.close()


def _stream(small_data) -> TaskBatches:
    task = tasks.builtin_span_corruption_task(small_data)
    return TaskBatches(BatchSpec(task.name, "train", inputs_length=32, targets_length=8, batch_size=2, seed=3))


def test_the_input_position_rides_in_the_step_and_a_damaged_one_is_replayed(small_data, tmp_path, caplog):
    state = {"w": jax.numpy.arange(4.0)}
    stream = _stream(small_data)
    expected = [next(stream) for _ in range(3)][-1]
    stream = _stream(small_data)
    next(stream), next(stream)
    checkpointer = Checkpointer(tmp_path, every=1, keep=2)
    checkpointer.save(2, state, {"data_state": stream.state_dict()}, stream)
    checkpointer.wait()
    resumed = _stream(small_data)
    assert checkpointer.restore_input_position(2, resumed)
    np.testing.assert_array_equal(next(resumed)["encoder_input_tokens"], expected["encoder_input_tokens"])

    for path in (tmp_path / "2" / "data").glob("host_0-of-1.data-*"):
        path.write_bytes(b"damaged")
    resumed = _stream(small_data)
    with caplog.at_level(logging.INFO, logger="t5x_tl"):
        restore_input_position(checkpointer, 2, checkpointer.metadata(2), resumed)
        batch = next(resumed)
    checkpointer.close()
    assert "input iterator state of step 2 is unreadable" in caplog.text and "Replaying 2 batches" in caplog.text
    np.testing.assert_array_equal(batch["encoder_input_tokens"], expected["encoder_input_tokens"])


def test_hosts_shard_the_source_by_default_only_when_there_are_several(monkeypatch):
    assert _host_sharding("auto") == "examples"
    monkeypatch.setattr(jax, "process_count", lambda: 4)
    assert _host_sharding("auto") == "source"
    assert _host_sharding("examples") == "examples"


def test_a_checkpoint_written_before_input_positions_restores_and_replays(tmp_path):
    state = {"w": jax.numpy.arange(4.0)}
    old = ocp.CheckpointManager(tmp_path, item_names=("state", "metadata"))
    old.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave({"a": 1})))
    old.wait_until_finished()
    old.close()
    checkpointer = Checkpointer(tmp_path, every=1, keep=2)
    assert checkpointer.metadata(3) == {"a": 1}
    _assert_equal(checkpointer.restore(3, jax.eval_shape(lambda: state)), state)
    assert not checkpointer.restore_input_position(3, TaskBatches(BatchSpec("unused", "train", 8, 8, 1, 0)))
    checkpointer.close()
