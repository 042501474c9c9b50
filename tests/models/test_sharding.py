"""Activation sharding constraints: logical names -> mesh axes under the rules in scope, a no-op elsewhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from t5x_tl.models.sharding import BLD, BLF, activation_rules, constrain, logical_spec
from t5x_tl.train import partitioning

MESH_AXES = partitioning.MESH_AXES


@pytest.mark.parametrize(
    ("preset", "bld", "blf"),
    [
        ("data_parallel", (partitioning.BATCH_AXES, None, None), (partitioning.BATCH_AXES, None, None)),
        ("fsdp", (partitioning.BATCH_AXES, None, None), (partitioning.BATCH_AXES, None, None)),
        ("tensor_parallel", (partitioning.BATCH_AXES, None, None), (partitioning.BATCH_AXES, None, "model")),
    ],
)
def test_activation_batch_follows_the_data_and_d_model_stays_whole(preset, bld, blf):
    rules = partitioning.resolve_rules(preset)
    assert logical_spec(BLD, rules, MESH_AXES) == PartitionSpec(*bld)
    assert logical_spec(BLF, rules, MESH_AXES) == PartitionSpec(*blf)


def test_unnamed_axes_are_left_to_xla_and_a_mesh_axis_is_used_once():
    rules = (("a", "data"), ("b", ("data", "model")), ("c", None))
    spec = logical_spec(("a", "b", "c", "unknown"), rules, MESH_AXES)
    assert spec == PartitionSpec("data", "model", None, PartitionSpec.UNCONSTRAINED)


def test_without_rules_or_mesh_nothing_changes():
    x = jnp.ones((4, 3, 8))
    assert constrain(x, BLD) is x  # no rules, no mesh
    with activation_rules(partitioning.resolve_rules("fsdp")):
        assert constrain(x, BLD) is x  # rules but no mesh
    with pytest.raises(ValueError, match="3 logical axes"):
        constrain(jnp.ones((4, 3)), BLD)


def test_under_a_mesh_and_rules_the_activation_takes_its_sharding():
    mesh = partitioning.make_mesh(2, 2)  # data=2, model=2
    rules = partitioning.resolve_rules("tensor_parallel")

    def f(x):
        with activation_rules(rules):
            return constrain(x * 2.0, BLF)

    x = np.arange(4 * 3 * 8, dtype=np.float32).reshape(4, 3, 8)
    with jax.set_mesh(mesh):
        y = jax.jit(f)(x)
    assert y.sharding.shard_shape(y.shape) == (2, 3, 4)  # batch over data, hidden units over model
    np.testing.assert_array_equal(np.asarray(y), x * 2.0)
