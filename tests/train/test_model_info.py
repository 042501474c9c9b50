"""The parameter sharding table: every parameter once, its logical and mesh axes, and its shard's shape."""

from __future__ import annotations

import math

import jax
from flax import nnx

from t5x_tl.config import DEFAULT_RULES
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.train import partitioning
from t5x_tl.train.model_info import parameter_table
from t5x_tl.train.state import abstract_model


def test_table_shows_each_parameter_sharded_by_the_rules():
    cfg = t5_config("tiny", 384)
    _, params = abstract_model(lambda rngs: ENCODER_DECODER.build(cfg, rngs))
    table = parameter_table(params, DEFAULT_RULES, partitioning.make_mesh(2, 2)).splitlines()
    rows = {line.split()[0]: line for line in table[2:-1]}
    assert len(rows) == len(jax.tree.leaves(nnx.to_pure_dict(params)))
    cells = lambda name: " ".join(rows[name].split()[1:])
    assert cells("token_embed/embedding") == "(384, 128) float32 (vocab, embed) (model, -) (192, 128)"
    query = cells("encoder/layers/stacked/attention/query")
    assert query == "(2, 128, 4, 32) float32 (layers, embed, heads, kv) (-, -, model, -) (2, 128, 2, 32)"
    total = sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.to_pure_dict(params)))
    assert table[-1].startswith(f"{total:,} parameters; mesh replica 1 x data 2 x fsdp 1 x model 2;")


def test_fsdp_with_tensor_parallelism_shards_d_model_and_the_heads():
    cfg = t5_config("tiny", 384)
    _, params = abstract_model(lambda rngs: ENCODER_DECODER.build(cfg, rngs))
    mesh = partitioning.make_mesh(1, 2, fsdp=2)
    rules = partitioning.resolve_rules("fsdp_tensor_parallel")
    rows = {line.split()[0]: line.split() for line in parameter_table(params, rules, mesh).splitlines()[2:-1]}
    assert " ".join(rows["token_embed/embedding"][1:]) == "(384, 128) float32 (vocab, embed) (model, fsdp) (192, 64)"
    assert rows["encoder/final_norm/scale"][-1] == "(64,)"
    assert partitioning.batch_shards(mesh) == 2
    assert partitioning.batch_sharding(mesh).spec == jax.sharding.PartitionSpec(("replica", "data", "fsdp"))


def test_unknown_presets_are_refused_and_custom_rules_win():
    import pytest

    with pytest.raises(ValueError, match="preset 'zero3' is unknown; choose one of"):
        partitioning.resolve_rules("zero3")
    assert partitioning.resolve_rules("zero3", [["embed", "fsdp"]]) == (("embed", "fsdp"),)
