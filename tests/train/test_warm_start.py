"""Warm starts: the mapping picks each parameter's pretrained source; mismatches start fresh, leftovers are named."""

from __future__ import annotations

import jax
import numpy as np

from t5x_tl.train import warm_start

TARGETS = {
    "encoder": {"wi": np.zeros((4, 8), np.float32), "wo": np.zeros((8, 4), np.float32)},
    "head": np.zeros((4, 3), np.float32),
}
SOURCES = {
    "enc": {"wi": np.ones((4, 8), np.float32), "wo": np.ones((8, 5), np.float32)},
    "head": np.full((4, 3), 2.0, np.float32),
    "optimizer_only": np.ones(3, np.float32),
}


def test_mapping_renames_and_shape_mismatches_start_fresh():
    plan = warm_start.plan(TARGETS, SOURCES, [(r"encoder/(.*)", r"enc/\1")])
    assert plan.loaded == {"encoder/wi": "enc/wi", "head": "head"}
    assert plan.fresh == {"encoder/wo": "pretrained enc/wo is (8, 5), not (8, 4)"}
    assert plan.ignored == ["enc/wo", "optimizer_only"]
    report = plan.report()
    assert report.startswith("loaded 2 parameters, 1 initialised fresh, 2 pretrained tensors ignored")
    assert "  loaded  encoder/wi <- enc/wi" in report and "  fresh   encoder/wo (pretrained" in report


def test_without_a_mapping_paths_match_as_they_are():
    plan = warm_start.plan(TARGETS, SOURCES)
    assert plan.loaded == {"head": "head"}
    assert set(plan.fresh) == {"encoder/wi", "encoder/wo"}


def test_apply_replaces_exactly_the_loaded_tensors_in_the_target_dtype():
    targets = jax.tree.map(lambda x: jax.numpy.asarray(x, jax.numpy.bfloat16), TARGETS)
    plan = warm_start.plan(targets, SOURCES, [(r"encoder/(.*)", r"enc/\1")])
    out = warm_start.apply(targets, SOURCES, plan)
    assert out["encoder"]["wi"].dtype == jax.numpy.bfloat16 and float(out["encoder"]["wi"].sum()) == 32
    assert float(out["encoder"]["wo"].sum()) == 0 and float(out["head"].sum()) == 24
