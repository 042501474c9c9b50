"""The training step compiled ahead of time from shapes: what one step needs per device on a mesh of any size.

:func:`analyze` lowers the step ``t5x_tl-train`` runs (:func:`t5x_tl.train.jitted.jit_train_step`) from
``jax.ShapeDtypeStruct`` arguments carrying their ``NamedSharding`` (nothing is allocated or run), compiles it, and
reads from the compiled program its per-device memory (``compiled.memory_analysis()``), its collectives
(:mod:`t5x_tl.train.collectives`) and the analytic FLOPs per device (:mod:`t5x_tl.train.flops`). On forced host CPU
devices (``jax.config.update("jax_num_cpu_devices", n)``) this simulates a pod: XLA:CPU's buffer assignment stands
in for the TPU/GPU compiler's, which fuses, schedules and pads differently (``scripts/aot_pod_memory.py``).
"""

from __future__ import annotations

import dataclasses
import resource
import time

import jax
import numpy as np
from ml_collections import ConfigDict

from t5x_tl.config import base_config, model_config, validate
from t5x_tl.data.features import FeatureLayout
from t5x_tl.data.pipeline import BatchSpec
from t5x_tl.errors import UserError
from t5x_tl.models.registry import model_kind
from t5x_tl.models.sizes import T5_1_1_SIZES, padded_vocab_size
from t5x_tl.train import partitioning
from t5x_tl.train.checkpoint_record import ModelSpec
from t5x_tl.train.collectives import KINDS, count_collectives
from t5x_tl.train.flops import train_step_flops
from t5x_tl.train.jitted import jit_train_step
from t5x_tl.train.optimizers import make_optimizer
from t5x_tl.train.state import abstract_model, abstract_train_state, state_shardings

# LLVM's optimisations off: buffer assignment (and so the memory analysis) and the partitioned HLO are fixed
# before code generation, and compiling is several times faster (as in scripts/collectives.py).
FAST_CODEGEN = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# XLA:CPU has no bfloat16 arithmetic: it converts bfloat16 operands to float32, and its while-loop invariant code
# motion then hoists the conversion of every stacked activation a scanned forward pass saved out of the backward
# loop, holding a float32 copy of each whole stack (T5 v1.1 base, 64 devices, FSDP, no remat: 37.8 GiB per device
# with the pass, 24.8 without; with full remat 2.65 against 2.36). GPUs and TPUs compute in bfloat16 natively and
# need no such copies, so the estimate leaves the pass out (scripts/aot_pod_memory.py also reports XLA:CPU as is).
NO_LOOP_HOISTING = {"xla_disable_hlo_passes": "while-loop-invariant-code-motion"}
TENSOR_AXIS_CHOICES = (8, 4, 2, 1)  # the default `model` axis: the largest of these that divides the tensor dims


def abstract_batch(
    features: FeatureLayout,
    batch_size: int,
    inputs_length: int,
    targets_length: int,
    mesh: jax.sharding.Mesh,
    pack: bool = True,
) -> dict[str, jax.ShapeDtypeStruct]:
    """The global batch the layout's SeqIO feature converter makes (every feature int32), as sharded shapes."""
    spec = BatchSpec("", "train", inputs_length, targets_length, batch_size, seed=0, pack=pack, features=features)
    # An aligned layout's converter looks up the task's mask id, which fixes no length: any id does here.
    options = {"mask_id": 1} if features.aligned else {}
    converter = features.converter(pack=pack, apply_length_check=False, **options)
    lengths = converter.get_model_feature_lengths(spec.task_feature_lengths())
    sharding = partitioning.batch_sharding(mesh)
    return {
        name: jax.ShapeDtypeStruct((batch_size, length), np.int32, sharding=sharding)
        for name, length in lengths.items()
    }


@dataclasses.dataclass(frozen=True)
class PodSetup:
    """One configuration to compile: T5 v1.1 ``size`` on ``devices`` devices under a partitioning preset.

    Defaults are T5X's pretraining: batch 2,048 x inputs 512 / targets 114 (span corruption), bfloat16
    activations over float32 parameters, Adafactor, scanned layers, SentencePiece's 32,100 entries padded to
    32,128. ``model_axis`` 0 picks the tensor-parallel axis: the largest of 8, 4, 2, 1 that divides the heads,
    the MLP width and the vocabulary (1 for presets without tensor parallelism).
    """

    size: str
    devices: int
    preset: str
    remat: str = "none"
    batch_size: int = 2048
    inputs_length: int = 512
    targets_length: int = 114
    model_axis: int = 0
    vocab_size: int = 32100
    dtype: str = "bfloat16"
    param_dtype: str = "float32"
    optimizer: str = "adafactor"
    kind: str = "encoder_decoder"


def mesh_axes(setup: PodSetup) -> dict[str, int]:
    """``data``, ``fsdp`` and ``model`` sizes of the setup's preset: all devices on the axis the preset shards
    the batch with parameters (``fsdp``) or without (``data``), a ``model`` axis for tensor parallelism."""
    if setup.devices < 1:
        raise UserError(f"a mesh needs at least one device, got {setup.devices}")
    tensor = setup.preset in ("tensor_parallel", "fsdp_tensor_parallel")
    model = setup.model_axis or (_default_model_axis(setup) if tensor else 1)
    if model > 1 and not tensor:
        raise UserError(f"preset {setup.preset!r} has no tensor parallelism: leave the model axis at 1")
    if setup.devices % model:
        raise UserError(f"the model axis {model} does not divide {setup.devices} devices")
    rest = setup.devices // model
    if setup.preset in ("fsdp", "fsdp_tensor_parallel"):
        return dict(data=1, fsdp=rest, model=model)
    return dict(data=rest, fsdp=1, model=model)


def _tensor_dims(setup: PodSetup) -> dict[str, int]:
    _, d_ff, heads, _, _ = T5_1_1_SIZES[setup.size]
    return {"heads": heads, "d_ff": d_ff, "vocab": padded_vocab_size(setup.vocab_size)}


def _default_model_axis(setup: PodSetup) -> int:
    dims = _tensor_dims(setup).values()
    return next(n for n in TENSOR_AXIS_CHOICES if setup.devices % n == 0 and all(d % n == 0 for d in dims))


def pod_config(setup: PodSetup) -> ConfigDict:
    """The job config of ``setup`` (``base_config`` with its overrides), validated: unknown sizes, presets,
    remat policies or optimizers fail here with the choices named."""
    cfg = base_config()
    cfg.model.kind = setup.kind
    cfg.model.size = setup.size
    cfg.model.dtype = setup.dtype
    cfg.model.param_dtype = setup.param_dtype
    cfg.model.scan_layers = True
    cfg.model.remat_policy = setup.remat
    cfg.optimizer.name = setup.optimizer
    cfg.data.batch_size = setup.batch_size
    cfg.data.inputs_length = setup.inputs_length
    cfg.data.targets_length = setup.targets_length
    cfg.partitioning.preset = setup.preset
    validate(cfg)
    axes = mesh_axes(setup)
    cfg.partitioning.data, cfg.partitioning.fsdp, cfg.partitioning.model = axes["data"], axes["fsdp"], axes["model"]
    shards = axes["data"] * axes["fsdp"]
    if setup.batch_size % shards:
        raise UserError(f"batch {setup.batch_size} does not divide over the batch's {shards} mesh shards (data x fsdp)")
    if axes["model"] > 1:
        uneven = {name: dim for name, dim in _tensor_dims(setup).items() if dim % axes["model"]}
        if uneven:
            raise UserError(f"the model axis {axes['model']} does not divide {setup.size}'s {uneven}")
    return cfg


def analyze(setup: PodSetup, fast_codegen: bool = True, loop_hoisting: bool = False) -> dict:
    """Compiles the setup's training step from shapes on the first ``setup.devices`` devices; returns its mesh,
    per-device memory (bytes), collectives per step and analytic FLOPs per device, and the compile's timing.

    ``loop_hoisting`` keeps XLA:CPU's while-loop invariant code motion (see :data:`NO_LOOP_HOISTING`);
    ``fast_codegen`` compiles with LLVM's optimisations off (:data:`FAST_CODEGEN`), which changes no buffer."""
    cfg = pod_config(setup)
    if setup.devices > jax.device_count():
        raise UserError(f"{setup.devices} devices asked for, JAX has {jax.device_count()}")
    kind = model_kind(setup.kind)
    model = ModelSpec(kind, model_config(cfg, setup.vocab_size))  # as t5x_tl.train.job builds it
    model_cfg, factory = model.config, model.build
    p = cfg.partitioning
    mesh = partitioning.make_mesh(
        p.data, p.model, fsdp=p.fsdp, replica=p.replica, devices=jax.devices()[: setup.devices]
    )
    rules = partitioning.resolve_rules(p.preset, p.rules)
    optimizer = make_optimizer(cfg.optimizer, cfg.train.steps)
    shardings = state_shardings(factory, optimizer, mesh, rules)
    graphdef, _ = abstract_model(factory)
    options = {**(FAST_CODEGEN if fast_codegen else {}), **({} if loop_hoisting else NO_LOOP_HOISTING)}
    jitted = jit_train_step(cfg, graphdef, optimizer, shardings, mesh, rules, options)
    state = abstract_train_state(factory, optimizer, shardings)
    batch = abstract_batch(kind.features, setup.batch_size, setup.inputs_length, setup.targets_length, mesh)
    start = time.perf_counter()
    with jax.set_mesh(mesh):
        lowered = jitted.lower(state, batch)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()
    memory = compiled.memory_analysis()
    collectives = count_collectives(compiled.as_text())
    flops = train_step_flops(model_cfg, setup.batch_size, setup.inputs_length, setup.targets_length, kind)
    params = jax.tree.leaves(state.params)
    per_device = lambda x: int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
    memory_bytes = {
        "argument": memory.argument_size_in_bytes,
        "output": memory.output_size_in_bytes,
        "temp": memory.temp_size_in_bytes,
        "alias": memory.alias_size_in_bytes,
        "generated_code": memory.generated_code_size_in_bytes,
    }
    memory_bytes["total"] = memory_bytes["argument"] + memory_bytes["output"] + memory_bytes["temp"]
    memory_bytes["total"] -= memory_bytes["alias"]
    return {
        "setup": dataclasses.asdict(setup),
        "mesh": {axis: int(n) for axis, n in mesh.shape.items()},
        "vocab_size_padded": model_cfg.vocab_size,
        "parameters": int(sum(x.size for x in params)),
        "parameter_bytes_per_device": int(sum(per_device(x) for x in params)),
        "state_bytes_per_device": int(sum(per_device(x) for x in jax.tree.leaves(state))),
        "memory_bytes_per_device": memory_bytes,
        "collectives_per_step": {kind: dataclasses.asdict(collectives[kind]) for kind in KINDS},
        "collective_bytes_per_step": int(sum(collectives[kind].bytes for kind in KINDS)),
        "flops_per_step": flops,
        "flops_per_device": flops / setup.devices,
        "lower_s": round(lowered_at - start, 2),
        "compile_s": round(compiled_at - lowered_at, 2),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "fast_codegen": fast_codegen,
        "loop_hoisting": loop_hoisting,
        "jax": jax.__version__,
    }
