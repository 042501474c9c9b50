"""The parameter sharding table: every parameter once, its logical and mesh axes, and its shard's shape."""

from __future__ import annotations

import math

import jax
from flax import nnx

from t5x_tl.config import DEFAULT_RULES
from t5x_tl.models.kinds import build_model
from t5x_tl.models.sizes import t5_config
from t5x_tl.train import partitioning
from t5x_tl.train.model_info import parameter_table
from t5x_tl.train.state import abstract_model


def test_table_shows_each_parameter_sharded_by_the_rules():
    cfg = t5_config("tiny", 384)
    _, params = abstract_model(lambda rngs: build_model("encoder_decoder", cfg, rngs))
    table = parameter_table(params, DEFAULT_RULES, partitioning.make_mesh(2, 2)).splitlines()
    rows = {line.split()[0]: line for line in table[2:-1]}
    assert len(rows) == len(jax.tree.leaves(nnx.to_pure_dict(params)))
    cells = lambda name: " ".join(rows[name].split()[1:])
    assert cells("token_embed/embedding") == "(384, 128) float32 (vocab, embed) (model, -) (192, 128)"
    query = cells("encoder/layers/stacked/attention/query")
    assert query == "(2, 128, 4, 32) float32 (layers, embed, heads, kv) (-, -, model, -) (2, 128, 2, 32)"
    total = sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.to_pure_dict(params)))
    assert table[-1].startswith(f"{total:,} parameters; mesh data 2 x model 2;")
