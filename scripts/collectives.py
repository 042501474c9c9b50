"""The collectives of one training step under every partitioning preset, on 8 forced CPU devices.

For each preset of ``t5x_tl.models.sharding.RULE_PRESETS`` this compiles the training step as
``t5x_tl-train`` does (tiny T5 v1.1 encoder-decoder, Adafactor, batch 16 x inputs 32 / targets 8, layers
scanned) on a mesh fit for the preset, reads the compiled HLO and counts all-gathers, reduce-scatters,
all-reduces, all-to-alls and collective-permutes with their per-device bytes (``t5x_tl.train.collectives``).
Nothing is allocated or run: the step is lowered from shapes.

    python scripts/collectives.py                                        # the table
    python scripts/collectives.py --check tests/golden/collectives.json  # exit 1 naming what differs
    python scripts/collectives.py --update tests/golden/collectives.json # regenerate the golden file

The counts are XLA:CPU's partitioning of this JAX/XLA version; an XLA upgrade may legitimately change them
(then regenerate after reading the difference).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from t5x_tl.config import base_config  # noqa: E402
from t5x_tl.models.registry import model_kind  # noqa: E402
from t5x_tl.models.sizes import t5_config  # noqa: E402
from t5x_tl.platform import compiler_options  # noqa: E402
from t5x_tl.train import partitioning  # noqa: E402
from t5x_tl.train.collectives import KINDS, Collective, count_collectives, differences, format_table  # noqa: E402
from t5x_tl.train.optimizers import make_optimizer  # noqa: E402
from t5x_tl.train.state import abstract_model, abstract_train_state, state_shardings  # noqa: E402
from t5x_tl.train.step import make_train_step  # noqa: E402

DEVICES = 8
# preset -> mesh axes over the 8 devices
MESHES: dict[str, dict[str, int]] = {
    "data_parallel": dict(data=8, fsdp=1, model=1),
    "fsdp": dict(data=1, fsdp=8, model=1),
    "tensor_parallel": dict(data=2, fsdp=1, model=4),
    "fsdp_tensor_parallel": dict(data=1, fsdp=2, model=4),
}
SETUP = dict(kind="encoder_decoder", size="tiny", vocab_size=512, batch=16, inputs=32, targets=8, optimizer="adafactor")
REGENERATE = "python scripts/collectives.py --update tests/golden/collectives.json"
# LLVM's optimisations off: the partitioned HLO, and so its collectives, are the same, and compiling is faster
_FAST_CODEGEN = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _batch(mesh: jax.sharding.Mesh) -> dict[str, jax.ShapeDtypeStruct]:
    sharding = partitioning.batch_sharding(mesh)
    shapes = {
        "encoder_input_tokens": ((SETUP["batch"], SETUP["inputs"]), np.int32),
        "decoder_input_tokens": ((SETUP["batch"], SETUP["targets"]), np.int32),
        "decoder_target_tokens": ((SETUP["batch"], SETUP["targets"]), np.int32),
        "decoder_loss_weights": ((SETUP["batch"], SETUP["targets"]), np.float32),
    }
    return {name: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding) for name, (shape, dtype) in shapes.items()}


def lower_step(preset: str) -> tuple[jax.stages.Lowered, int]:
    """One training step under ``preset``, lowered from shapes, and the parameters' bytes."""
    cfg = base_config()
    model_cfg = t5_config(SETUP["size"], SETUP["vocab_size"], scan_layers=True)
    kind = model_kind(SETUP["kind"])
    factory = lambda rngs: kind.build(model_cfg, rngs)
    mesh = partitioning.make_mesh(**MESHES[preset])
    rules = partitioning.resolve_rules(preset)
    optimizer = make_optimizer(cfg.optimizer, cfg.train.steps)
    shardings = state_shardings(factory, optimizer, mesh, rules)
    graphdef, abstract_params = abstract_model(factory)
    step = make_train_step(graphdef, optimizer, lambda _: 1.0, cfg.train.z_loss, cfg.seed, kind, rules=rules)
    jitted = jax.jit(
        step,
        in_shardings=(shardings, partitioning.batch_sharding(mesh)),
        out_shardings=(shardings, None),
        donate_argnums=0,
        compiler_options={**compiler_options(), **_FAST_CODEGEN},
    )
    with jax.set_mesh(mesh):
        lowered = jitted.lower(abstract_train_state(factory, optimizer, shardings), _batch(mesh))
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(nnx.to_pure_dict(abstract_params)))
    return lowered, param_bytes


def measure(presets: list[str]) -> dict:
    """The golden file's content: the setup, and per preset its mesh and collectives."""
    result = {"jax": jax.__version__, "setup": SETUP, "presets": {}}
    lowered = {preset: lower_step(preset) for preset in presets}
    with ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL: two at a time
        hlo = dict(zip(presets, pool.map(lambda p: lowered[p][0].compile().as_text(), presets), strict=True))
    for preset in presets:
        stats = count_collectives(hlo[preset])
        param_bytes = lowered[preset][1]
        result["presets"][preset] = {
            "mesh": MESHES[preset],
            "parameter_bytes": param_bytes,
            "collectives": {kind: {"count": s.count, "bytes": s.bytes} for kind, s in stats.items()},
        }
    return result


def _dumps(measured: dict) -> str:
    """Indented JSON with each mesh and each collective's ``{count, bytes}`` on one line."""
    text = json.dumps(measured, indent=2)
    return re.sub(r"\{\s*([^{}\[\]]*?)\s*\}", lambda m: "{" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "}", text) + "\n"


def table(measured: dict) -> str:
    rows = {
        f"{preset} ({', '.join(f'{a}={n}' for a, n in entry['mesh'].items() if n > 1)})": {
            kind: Collective(**entry["collectives"][kind]) for kind in KINDS
        }
        for preset, entry in measured["presets"].items()
    }
    return format_table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, help="compare with this golden JSON; exit 1 on any difference")
    group.add_argument("--update", type=Path, help="write the golden JSON")
    parser.add_argument("--presets", nargs="*", default=list(MESHES), choices=list(MESHES))
    args = parser.parse_args(argv)
    if jax.device_count() != DEVICES:
        print(f"error: needs {DEVICES} CPU devices, JAX has {jax.device_count()}", file=sys.stderr)
        return 2
    measured = measure(args.presets)
    print(table(measured))
    if args.update:
        args.update.parent.mkdir(parents=True, exist_ok=True)
        args.update.write_text(_dumps(measured))
        print(f"wrote {args.update}")
    if args.check:
        golden = json.loads(args.check.read_text())
        problems = differences(golden, measured)
        if problems:
            print(f"collectives differ from {args.check}:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            if golden.get("jax") != measured["jax"]:
                print(f"  (golden written with jax {golden.get('jax')}, this is {measured['jax']})", file=sys.stderr)
            print(f"if the change is intended, regenerate: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"collectives match {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
