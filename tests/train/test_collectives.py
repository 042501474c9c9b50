"""Collectives read from compiled HLO, and the golden collectives of the training step under every preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from t5x_tl.train.collectives import Collective, count_collectives, differences

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "collectives.json"

# Asynchronous pairs (counted once, by the done's shape), a combined tuple all-reduce, and an all-reduce in a
# while body run 5 times, as XLA prints them on accelerators.
_HLO = """HloModule m, entry_computation_layout={(f32[2,16]{1,0})->f32[8,16]{1,0}}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%body (p: (s32[], bf16[4,8])) -> (s32[], bf16[4,8]) {
  %p = (s32[], bf16[4,8]{1,0}) parameter(0)
  %x = bf16[4,8]{1,0} get-tuple-element(%p), index=1
  %ars = bf16[4,8]{1,0} all-reduce-start(%x), channel_id=1, replica_groups={{0,1,2,3}}, to_apply=%add
  %ard = bf16[4,8]{1,0} all-reduce-done(%ars)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %t = (s32[], bf16[4,8]{1,0}) tuple(%i, %ard)
}

%cond (q: (s32[], bf16[4,8])) -> pred[] {
  %q = (s32[], bf16[4,8]{1,0}) parameter(0)
  ROOT %c = pred[] constant(true)
}

ENTRY %main (param: f32[2,16]) -> f32[8,16] {
  %param = f32[2,16]{1,0} parameter(0)
  %zero = f32[] constant(0)
  %ags = (f32[2,16]{1,0}, f32[8,16]{1,0}) all-gather-start(%param), channel_id=2, replica_groups={{0,1,2,3}}, dimensions={0}
  %agd = f32[8,16]{1,0} all-gather-done(%ags)
  %cps = (f32[2,16]{1,0}, f32[2,16]{1,0}, u32[], u32[]) collective-permute-start(%param), source_target_pairs={{0,1}}
  %cpd = f32[2,16]{1,0} collective-permute-done(%cps)
  %ar = (f32[2,16]{1,0}, /*index=1*/f32[]) all-reduce(%cpd, %zero), channel_id=3, replica_groups={{0,1,2,3}}, to_apply=%add
  %init = (s32[], bf16[4,8]{1,0}) parameter(1)
  %w = (s32[], bf16[4,8]{1,0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"5"}}
  ROOT %out = f32[8,16]{1,0} copy(%agd)
}
"""  # noqa: E501


def test_async_pairs_tuples_and_loops_count_once_per_execution():
    stats = count_collectives(_HLO)
    assert stats["all-gather"] == Collective(1, 8 * 16 * 4)
    assert stats["collective-permute"] == Collective(1, 2 * 16 * 4)
    assert stats["all-reduce"] == Collective(1 + 5, (2 * 16 * 4 + 4) + 5 * (4 * 8 * 2))
    assert stats["reduce-scatter"] == stats["all-to-all"] == Collective(0, 0)


def test_a_compiled_program_shows_its_all_gather_and_each_psum_of_a_scan():
    mesh = jax.make_mesh((4,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))

    def local(a):
        gathered = jax.lax.all_gather(a, "x", tiled=True)  # 8 x 16 float32 on every device

        def step(carry, _):
            return carry + jnp.sin(jax.lax.psum(carry, "x")), None  # 2 x 16 float32, three times

        return gathered, jax.lax.scan(step, a, None, length=3)[0]

    spec = PartitionSpec("x")
    program = jax.jit(
        jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=(PartitionSpec(), spec), check_vma=False)
    )
    stats = count_collectives(program.lower(jax.ShapeDtypeStruct((8, 16), jnp.float32)).compile().as_text())
    assert stats["all-gather"] == Collective(1, 8 * 16 * 4)
    assert stats["all-reduce"] == Collective(3, 3 * 2 * 16 * 4)


def test_a_difference_names_the_preset_and_the_collective():
    golden = json.loads(GOLDEN.read_text())
    measured = json.loads(GOLDEN.read_text())
    measured["presets"]["fsdp"]["collectives"]["all-gather"]["count"] += 1
    assert differences(golden, golden) == []
    (line,) = differences(golden, measured)
    assert line.startswith("fsdp: all-gather count ")


def test_every_preset_compiles_to_its_golden_collectives():
    """``scripts/collectives.py --check`` in a fresh process with 8 CPU devices (this one has 4)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "collectives.py"), "--check", str(GOLDEN)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "collectives match" in result.stdout
