"""A prepared GPU check: numerical parity with the CPU, cuDNN attention against XLA's, and the train step's MFU.

Run it through ``bash scripts/gpu_check.sh`` on a machine with an NVIDIA GPU (the wrapper prints the machine,
finds a JAX with CUDA, bounds the run to under 8 minutes and copies everything to ``$OUT``). Three checks, each
printing ``PASS``/``FAIL``/``SKIP``/``ERROR`` lines with their figures, and all figures in ``--json``:

1. ``parity``: the same jitted T5 v1.1 small loss and gradients (random weights from a fixed seed, a small batch
   with padding and packing) on the CPU and on the GPU, in float32 (matmul precision "highest", so the GPU does
   not round matmul inputs to TF32) and in bfloat16 (parameters float32; ``attention_impl="auto"``, so the GPU's
   bfloat16 side runs cuDNN's attention). Passes at loss relative differences below 1e-4 and 2e-2.
2. ``attention``: ``MultiHeadAttention`` forward and gradients (inputs, q/k/v/out weights, relative-bias table)
   with ``attention_impl="cudnn"`` against ``"xla"``, bfloat16, at T5-base shapes (B=8, L=512, H=12, d_kv=64),
   under an encoder mask (packing and padding) and a causal decoder mask; both also against a float32 reference;
   and the median time of a jitted forward + backward of each.
3. ``mfu``: the train step of the main job (``configs/pretrain_span_corruption.py``: Adafactor) at T5 v1.1 base
   and large, bfloat16 activations and float32 parameters, inputs 512 / targets 114, on a one-device mesh,
   built as ``t5x_tl.train.loop.train`` builds it, at the largest batch of a list that fits the chip. Step time is
   the median of timed steps after two warm-up steps; MFU is analytic model FLOPs over the data-sheet bfloat16
   peak. Base with ``attention_impl="auto"`` passes at 45% MFU or more.

``python scripts/gpu_check.py --dry_run`` runs every check on the CPU at tiny sizes (the parity check compares
the CPU with itself, the cuDNN comparison is skipped and ``"dot_product"`` stands in for it), which the test suite
runs (``tests/test_gpu_check.py``). Exit status: 0 when no check failed, 1 when one failed, 2 on an error.
Needs jax, flax, optax, numpy and ml_collections only: no TensorFlow or SeqIO (the GPU machine has neither).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .` (the GPU machine has no network)
    sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"
T5_VOCAB = 32100  # T5's SentencePiece vocabulary; the embedding is padded to 32128 as the loop pads it
NANOT5 = {  # nanoT5's published A100 figure (README of PiotrNawrot/nanoT5): not measured here
    "model": "T5 v1.1 base",
    "batch": 128,
    "inputs_length": 512,
    "targets_length": 114,
    "step_s": 0.56,
    "input_tokens_per_s": 128 * 512 / 0.56,
    "device": "NVIDIA A100",
    "peak_flops": 312e12,
    "precision": "bfloat16, torch.compile",
}
MFU_TARGET = 0.45
ENV_SHOWN = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE")
ENV_SHOWN += ("JAX_COMPILATION_CACHE_DIR",)


@dataclasses.dataclass(frozen=True)
class MfuJob:
    name: str
    size: str
    attention_impl: str
    batch_sizes: tuple[int, ...]  # descending; the first that compiles, fits and runs is taken
    target: bool = False  # passes or fails against MFU_TARGET (the others report their figures)
    start_at_batch_of: str = ""  # begin at the batch an earlier job found (same model: a side-by-side)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The sizes of every check: the real ones for a GPU, tiny ones for the CPU dry run."""

    parity_size: str
    parity_vocab: int  # before padding to a multiple of 128
    parity_batch: int
    parity_lengths: tuple[int, int]
    attention_shape: tuple[int, int, int, int]  # B, L, H, d_kv (d_model = H * d_kv)
    attention_repeats: int
    lengths: tuple[int, int]  # inputs, targets of the train step
    mfu_vocab: int
    mfu_jobs: tuple[MfuJob, ...]
    steps: int
    warmup_steps: int = 2


GPU_PLAN = Plan(
    parity_size="small",
    parity_vocab=T5_VOCAB,
    parity_batch=4,
    parity_lengths=(128, 32),
    attention_shape=(8, 512, 12, 64),
    attention_repeats=20,
    lengths=(512, 114),
    mfu_vocab=T5_VOCAB,
    # Without rematerialisation (the job's default) base's activations take about 0.25 GB an example and large's
    # about 0.8 GB (estimates): large starts where it should fit, so that one compilation is likely enough.
    # In this order, as the budget allows (each job needs 1-2 compilations of 30-60 s): base/xla, the last, compares
    # the einsum attention with "auto" at base/auto's batch.
    mfu_jobs=(
        MfuJob("base/auto", "base", "auto", (512, 384, 256, 128, 64), target=True),
        MfuJob("large/auto", "large", "auto", (128, 96, 64, 32)),
        MfuJob("base/xla", "base", "xla", (512, 384, 256, 128, 64), start_at_batch_of="base/auto"),
    ),
    steps=10,
)
DRY_RUN_PLAN = Plan(
    parity_size="tiny",
    parity_vocab=256,
    parity_batch=4,
    parity_lengths=(32, 8),
    attention_shape=(2, 32, 2, 8),
    attention_repeats=2,
    lengths=(32, 8),
    mfu_vocab=256,
    mfu_jobs=(
        MfuJob("base/auto", "tiny", "auto", (8, 4), target=True),
        MfuJob("large/auto", "tiny", "auto", (8, 4)),
        MfuJob("base/xla", "tiny", "xla", (8, 4), start_at_batch_of="base/auto"),
    ),
    steps=2,
)


class Report:
    """Status lines as they happen, and every figure, rewritten to ``path`` after each check."""

    def __init__(self, path: str | None, meta: dict):
        self.path = Path(path) if path else None
        self.data = {"meta": meta, "checks": {}, "lines": [], "summary": {}}

    def line(self, status: str, name: str, text: str) -> None:
        line = f"{status} {name}: {text}"
        print(line, flush=True)
        self.data["lines"].append({"status": status, "check": name, "text": text})
        self.write()

    def info(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def record(self, check: str, key: str, value) -> None:
        self.data["checks"].setdefault(check, {})[key] = value
        self.write()

    def write(self) -> None:
        counts = {s: sum(1 for x in self.data["lines"] if x["status"] == s) for s in (PASS, FAIL, SKIP, ERROR)}
        self.data["summary"] = {**counts, "elapsed_s": round(time.monotonic() - START, 1)}
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_jsonable))
        tmp.replace(self.path)


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


START = time.monotonic()


class Budget:
    """The run's wall-clock allowance: checks ask before each expensive step and skip what no longer fits."""

    def __init__(self, seconds: float):
        self.deadline = START + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds


# ---------------------------------------------------------------------------------------------------- batches


def _row_segments(length: int, row: int) -> list[int]:
    """Segment lengths of one packed row: 1, 2 or 3 examples, every other row ending in padding."""
    used = length if row % 2 else max(2, (3 * length) // 4)
    count = min(row % 3 + 1, used // 2)
    cuts = [round(i * used / count) for i in range(count + 1)]
    return [b - a for a, b in itertools.pairwise(cuts)]


def packed_batch(batch: int, inputs: int, targets: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """An encoder-decoder batch as SeqIO's packing feature converter lays it out: several examples per row
    (segment ids 1, 2, ...), padding (token 0, segment 0), decoder inputs shifted right within each example."""
    rng = np.random.default_rng(seed)
    out = {
        "encoder_input_tokens": np.zeros((batch, inputs), np.int32),
        "encoder_segment_ids": np.zeros((batch, inputs), np.int32),
        "decoder_input_tokens": np.zeros((batch, targets), np.int32),
        "decoder_target_tokens": np.zeros((batch, targets), np.int32),
        "decoder_segment_ids": np.zeros((batch, targets), np.int32),
        "decoder_loss_weights": np.zeros((batch, targets), np.float32),
    }
    for row in range(batch):
        for prefix, length in (("encoder", inputs), ("decoder", targets)):
            start = 0
            for segment, n in enumerate(_row_segments(length, row), start=1):
                tokens = rng.integers(2, vocab, n, dtype=np.int32)
                span = slice(start, start + n)
                out[f"{prefix}_segment_ids"][row, span] = segment
                if prefix == "encoder":
                    out["encoder_input_tokens"][row, span] = tokens
                else:
                    out["decoder_target_tokens"][row, span] = tokens
                    out["decoder_input_tokens"][row, start + 1 : start + n] = tokens[:-1]
                    out["decoder_loss_weights"][row, span] = 1.0
                start += n
    return out


# ---------------------------------------------------------------------------------------------------- helpers


def _on_nvidia_gpu(device: jax.Device) -> bool:
    return device.platform == "gpu" and "nvidia" in device.device_kind.lower()


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def _norm_rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``|a - b| / |b|`` in the Frobenius norm (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def _flat(tree) -> dict[str, np.ndarray]:
    """``{"encoder/layers/mlp/wi_0": array, ...}`` of a parameter tree (a pure dict or an ``nnx.State``)."""
    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    name = lambda path: "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    return {name(path): np.asarray(leaf) for path, leaf in leaves}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


def is_out_of_memory(error: BaseException) -> bool:
    """XLA's out-of-memory errors, at compile time or when a step allocates."""
    text = f"{type(error).__name__}: {error}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM"))


def needed_bytes(memory) -> int | None:
    """Peak device bytes of a compiled program from ``compiled.memory_analysis()``: arguments, outputs not aliased
    to (donated) arguments, and temporaries."""
    if memory is None:
        return None
    return int(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        - memory.alias_size_in_bytes
        + memory.temp_size_in_bytes
    )


def predicted_bytes(memory, batch: int, other_batch: int) -> int:
    """``needed_bytes`` at ``other_batch``: temporaries (activations) scale with the batch, the state does not."""
    fixed = memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
    return int(fixed + memory.temp_size_in_bytes * other_batch / batch)


def next_batch_to_try(candidates: Sequence[int], tried: int, memory, limit: int | None, slack: float = 0.92) -> int:
    """Index in ``candidates`` (descending) of the next batch worth compiling after ``candidates[tried]`` did not
    fit: the first smaller one whose predicted memory is under ``slack * limit`` (else the smallest one left)."""
    rest = range(tried + 1, len(candidates))
    if memory is None or not limit:
        return tried + 1
    for i in rest:
        if predicted_bytes(memory, candidates[tried], candidates[i]) <= slack * limit:
            return i
    return len(candidates) - 1 if tried + 1 < len(candidates) else tried + 1


def _memory_limit(device: jax.Device) -> int | None:
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some backends raise instead of returning None
        return None
    return stats.get("bytes_limit")


# ---------------------------------------------------------------------------------------------------- check 1


def check_parity(plan: Plan, cpu: jax.Device, accelerator: jax.Device, report: Report, budget: Budget) -> None:
    """Loss, logits and gradients of one T5 v1.1 on the CPU and on ``accelerator``, float32 and bfloat16."""
    from t5x_tl.models.attention import resolve_attention_impl
    from t5x_tl.models.sizes import padded_vocab_size, t5_config
    from t5x_tl.models.t5_kinds import ENCODER_DECODER
    from t5x_tl.train.losses import token_losses
    from t5x_tl.train.state import abstract_model

    name = "parity"
    inputs, targets = plan.parity_lengths
    batch = packed_batch(plan.parity_batch, inputs, targets, plan.parity_vocab, seed=1)
    weights = batch["decoder_loss_weights"] > 0
    report.record(name, "setup", {
        "model": f"T5 v1.1 {plan.parity_size}", "batch": plan.parity_batch, "lengths": [inputs, targets],
        "real_target_tokens": int(weights.sum()), "padding_target_tokens": int((~weights).sum()),
        "reference": str(cpu), "device": str(accelerator),
    })  # fmt: skip
    report.info(
        f"T5 v1.1 {plan.parity_size}, batch {plan.parity_batch} x {inputs}/{targets} (packed, padded), "
        f"{cpu} against {accelerator}"
    )
    thresholds = {"float32": 1e-4, "bfloat16": 2e-2}
    params_host = None
    for dtype, threshold in thresholds.items():
        if not budget.allows(20):
            report.line(SKIP, f"{name} {dtype}", f"out of time budget ({budget.left():.0f} s left)")
            continue
        cfg = t5_config(plan.parity_size, padded_vocab_size(plan.parity_vocab), dtype=dtype, param_dtype="float32")
        # The device runs the job's "auto" (cuDNN for bfloat16 on an NVIDIA GPU); the CPU reference runs "xla",
        # what "auto" is on a CPU-only machine: "auto" decides by jax.devices()[0], the GPU here, not by the device
        # a computation is placed on, so it would ask cuDNN for the CPU's program.
        impls = {"reference": "xla", "device": "auto"}
        configs = {side: replace(cfg, attention_impl=impl) for side, impl in impls.items()}
        graphdefs = {
            side: abstract_model(functools.partial(ENCODER_DECODER.build, c))[0] for side, c in configs.items()
        }
        if params_host is None:  # the same float32 parameters for both dtypes
            with jax.default_device(cpu):
                model = ENCODER_DECODER.build(cfg, nnx.Rngs(params=jax.random.key(0)))
                params_host = jax.device_get(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
            del model

        def loss_fn(params, batch, graphdef):
            logits, tgt, w, segments = ENCODER_DECODER.predict(nnx.merge(graphdef, params), batch, None)
            sums = token_losses(logits, tgt, w, 1e-4, segments)
            return (sums["cross_entropy_sum"] + sums["z_loss_sum"]) / jnp.maximum(sums["weight_sum"], 1.0), logits

        # float32: "highest" so that the GPU's matmuls do not round their inputs to TF32 (its default)
        precision = "highest" if dtype == "float32" else None
        results = {}
        seconds = {}
        for side, device in (("reference", cpu), ("device", accelerator)):
            grad_fn = jax.jit(jax.value_and_grad(functools.partial(loss_fn, graphdef=graphdefs[side]), has_aux=True))
            start = time.perf_counter()
            with jax.default_matmul_precision(precision):
                (loss, logits), grads = grad_fn(jax.device_put(params_host, device), jax.device_put(batch, device))
            results[side] = jax.device_get((loss, logits, grads))
            seconds[side] = time.perf_counter() - start
        attention = resolve_attention_impl(
            "auto", dtype=cfg.compute_dtype, d_kv=cfg.d_kv, dropout_active=False, cached=False
        )
        (loss_r, logits_r, grads_r), (loss_d, logits_d, grads_d) = results["reference"], results["device"]
        g_r, g_d = _flat(grads_r), _flat(grads_d)
        leaf_norm_rel = {k: _rel(float(np.linalg.norm(g_d[k])), float(np.linalg.norm(g_r[k]))) for k in g_r}
        leaf_err = {k: _norm_rel_err(g_d[k], g_r[k]) for k in g_r}
        norm_r = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in g_r.values()))
        norm_d = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in g_d.values()))
        real = np.broadcast_to(weights[..., None], logits_r.shape)  # padding positions' logits do not count
        worst_leaf = max(leaf_err, key=leaf_err.get)
        figures = {
            "matmul_precision": precision or "default",
            "loss_reference": float(loss_r),
            "loss_device": float(loss_d),
            "loss_abs_diff": abs(float(loss_d) - float(loss_r)),
            "loss_rel_diff": _rel(float(loss_d), float(loss_r)),
            "logits_max_abs_diff": _max_abs(logits_d[real], logits_r[real]),
            "logits_max_abs_reference": float(np.max(np.abs(logits_r[real]))),
            "logits_norm_rel_err": _norm_rel_err(logits_d[real], logits_r[real]),
            "grad_norm_reference": norm_r,
            "grad_norm_device": norm_d,
            "grad_norm_rel_diff": _rel(norm_d, norm_r),
            "grad_leaf_norm_max_rel_diff": max(leaf_norm_rel.values()),
            "grad_leaf_max_norm_rel_err": leaf_err[worst_leaf],
            "grad_leaf_worst": worst_leaf,
            "finite": bool(np.isfinite(loss_d) and all(np.isfinite(g).all() for g in g_d.values())),
            "seconds_with_compile": seconds,
            "attention_impl": {"reference": "xla", "device": f"auto -> {attention}"},
            "threshold_loss_rel_diff": threshold,
        }
        figures["logits_max_rel_diff"] = figures["logits_max_abs_diff"] / max(figures["logits_max_abs_reference"], 1e-9)
        report.record(name, dtype, figures)
        ok = figures["finite"] and figures["loss_rel_diff"] < threshold
        note = " (matmul precision 'highest': no TF32)" if dtype == "float32" else " (parameters float32)"
        note += f"; attention: cpu xla, device auto -> {attention}"
        report.line(
            PASS if ok else FAIL,
            f"{name} {dtype}",
            f"loss rel diff {figures['loss_rel_diff']:.2e} {'<' if ok else '>='} {threshold:.0e}{note}; "
            f"loss {figures['loss_reference']:.6f} (cpu) vs {figures['loss_device']:.6f}; "
            f"logits max abs diff {figures['logits_max_abs_diff']:.2e} (rel to max |logit| "
            f"{figures['logits_max_rel_diff']:.2e}, norm rel {figures['logits_norm_rel_err']:.2e}); "
            f"grad norm rel diff {figures['grad_norm_rel_diff']:.2e}, per-parameter norm max rel diff "
            f"{figures['grad_leaf_norm_max_rel_diff']:.2e}, worst parameter's norm rel err "
            f"{figures['grad_leaf_max_norm_rel_err']:.2e} ({worst_leaf})",
        )


# ---------------------------------------------------------------------------------------------------- check 2


class _AttentionLayer(nnx.Module):
    """One ``MultiHeadAttention`` with T5's bidirectional and causal relative-bias tables."""

    def __init__(self, impl: str, heads: int, d_kv: int, dtype, rngs: nnx.Rngs):
        from t5x_tl.models.attention import MultiHeadAttention, RelativePositionBias

        kw = dict(dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.attention = MultiHeadAttention(heads * d_kv, heads, d_kv, dropout_rate=0.0, attention_impl=impl, **kw)
        self.encoder_bias = RelativePositionBias(32, 128, heads, bidirectional=True, **kw)
        self.decoder_bias = RelativePositionBias(32, 128, heads, bidirectional=False, **kw)

    def __call__(self, x, mask, causal: bool):
        length = x.shape[1]
        bias = (self.decoder_bias if causal else self.encoder_bias)(length, length)
        return self.attention(x, x, mask_Bx1xQxK=mask, bias_1xHxQxK=bias, deterministic=True, rngs=None)


def attention_masks(segments: np.ndarray) -> dict[str, tuple[jax.Array, bool]]:
    """The encoder's mask (packing; a padding query sees every real key) and the decoder's causal one (a padding
    query sees nothing), as ``t5x_tl.models.t5`` builds them."""
    from t5x_tl.models.attention import causal_mask, segment_mask

    seg = jnp.asarray(segments)
    padding_query = (seg == 0)[:, None, :, None] & (seg > 0)[:, None, None, :]
    return {
        "encoder": (segment_mask(seg, seg) | padding_query, False),
        "decoder": (segment_mask(seg, seg) & causal_mask(seg.shape[1]), True),
    }


def check_attention(plan: Plan, device: jax.Device, report: Report, budget: Budget) -> None:
    """cuDNN's fused attention against the einsum attention, bfloat16, forward and gradients, and their speed."""
    from t5x_tl.benchmarking import interleaved_median_seconds

    name = "attention"
    b, length, heads, d_kv = plan.attention_shape
    if _on_nvidia_gpu(device):
        fused = "cudnn"
    else:
        report.line(SKIP, f"{name} cudnn", f"no NVIDIA GPU ({device.device_kind}): cuDNN attention needs one")
        fused = "dot_product"
        report.info("'dot_product' (jax.nn.dot_product_attention's XLA code) stands in for 'cudnn' below")
    if not budget.allows(30):
        report.line(SKIP, f"{name} {fused}", f"out of time budget ({budget.left():.0f} s left)")
        return
    segments = packed_batch(b, length, 2, 100, seed=2)["encoder_segment_ids"]
    real = segments > 0
    rng = np.random.default_rng(3)
    x32 = rng.standard_normal((b, length, heads * d_kv)).astype(np.float32)
    cotangent = rng.standard_normal((b, length, heads * d_kv)).astype(np.float32) * real[..., None]
    layers = {
        (impl, dt): nnx.eval_shape(lambda impl=impl, dt=dt: _AttentionLayer(impl, heads, d_kv, dt, nnx.Rngs(0)))
        for impl, dt in ((fused, jnp.bfloat16), ("xla", jnp.bfloat16), ("xla", jnp.float32))
    }
    graphdefs = {key: nnx.split(layer)[0] for key, layer in layers.items()}
    with jax.default_device(device):
        state = nnx.split(_AttentionLayer("xla", heads, d_kv, jnp.float32, nnx.Rngs(0)))[1]
    masks = attention_masks(segments)
    report.record(name, "setup", {
        "B": b, "L": length, "H": heads, "d_kv": d_kv, "d_model": heads * d_kv, "dtype": "bfloat16",
        "fused": fused, "real_query_fraction": float(real.mean()), "device": str(device),
    })  # fmt: skip
    report.info(f"B={b}, L={length}, H={heads}, d_kv={d_kv}, bfloat16 (parameters float32), {fused} vs xla")

    @functools.cache
    def fwd_bwd(key, causal: bool):
        """``(state, x, mask, cotangent) -> (output, (d_state, d_x))``, jitted; the arrays are arguments, not
        constants folded into the program."""
        graphdef, dtype = graphdefs[key], key[1]

        def loss(state, x, mask, cotangent):
            out = nnx.merge(graphdef, state)(x, mask, causal)
            return jnp.sum(out.astype(jnp.float32) * cotangent), out

        def run(state, x, mask, cotangent):
            grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
            (_, out), grads = grad(state, x.astype(dtype), mask, cotangent)
            return out.astype(jnp.float32), grads

        return jax.jit(run)

    x, cotangent = jax.device_put((x32, cotangent), device)
    masks = {case: (jax.device_put(mask, device), causal) for case, (mask, causal) in masks.items()}
    for case, (mask, causal) in masks.items():
        outs = {}
        for key in graphdefs:
            with jax.default_matmul_precision("highest" if key[1] == jnp.float32 else None):
                outs[key] = jax.device_get(fwd_bwd(key, causal)(state, x, mask, cotangent))
        f, xl, ref = outs[(fused, jnp.bfloat16)], outs[("xla", jnp.bfloat16)], outs[("xla", jnp.float32)]

        def parts(result):
            out, (grads, dx) = result
            return {"output": out[real], "d_x": dx.astype(np.float32), **_flat(grads)}

        pf, px, pr = parts(f), parts(xl), parts(ref)
        rows = {}
        for k in pr:
            rows[k] = {
                "max_abs_diff": _max_abs(pf[k], px[k]),
                "norm_rel_err": _norm_rel_err(pf[k], px[k]),
                "fused_vs_f32": _norm_rel_err(pf[k], pr[k]),
                "xla_vs_f32": _norm_rel_err(px[k], pr[k]),
            }
        padding_rows = ~real
        rows["output_at_padding_queries"] = {"max_abs_diff": _max_abs(f[0][padding_rows], xl[0][padding_rows])}
        report.record(name, case, rows)
        # the other bias table has no gradient in this case
        checked = [k for k in pr if not k.endswith("_bias/embedding") or k == f"{case}_bias/embedding"]
        tolerance = {"output": 1e-2}
        worst = []
        for k in checked:
            r = rows[k]
            tol = tolerance.get(k, 2e-2)
            # fine when the two bfloat16 results agree, or when the fused one is as close to float32 as XLA's
            good = r["norm_rel_err"] < tol or r["fused_vs_f32"] <= 2 * r["xla_vs_f32"] + 1e-3
            worst.append((r["norm_rel_err"], k, good))
        ok = all(g for _, _, g in worst)
        text = "; ".join(
            f"{k}: max abs {rows[k]['max_abs_diff']:.2e}, "
            f"norm rel {rows[k]['norm_rel_err']:.2e} (vs f32: {fused} {rows[k]['fused_vs_f32']:.2e}, "
            f"xla {rows[k]['xla_vs_f32']:.2e})"
            for k in checked
        )
        report.line(PASS if ok else FAIL, f"{name} {fused} vs xla {case}", text)
        report.info(
            f"{case}: outputs at padding queries (not in the loss) differ by up to "
            f"{rows['output_at_padding_queries']['max_abs_diff']:.2e}"
        )
    if not budget.allows(15):
        report.line(SKIP, f"{name} timing", f"out of time budget ({budget.left():.0f} s left)")
        return
    steps = {impl: fwd_bwd((impl, jnp.bfloat16), False) for impl in (fused, "xla")}
    mask = masks["encoder"][0]
    calls = {impl: (lambda s=s: jax.block_until_ready(s(state, x, mask, cotangent))) for impl, s in steps.items()}
    seconds = interleaved_median_seconds(calls, plan.attention_repeats, warmup=2)
    flops = 3 * (4 * 2 * b * length * (heads * d_kv) ** 2 + 2 * 2 * b * heads * length * length * d_kv)
    timing = {impl: {"median_ms": s * 1e3, "tflops": flops / s / 1e12} for impl, s in seconds.items()}
    timing["speedup_fused_over_xla"] = seconds["xla"] / seconds[fused]
    report.record(name, "timing", timing)
    text = (
        f"forward+backward (encoder mask, median of {plan.attention_repeats}): {fused} "
        f"{timing[fused]['median_ms']:.3f} ms ({timing[fused]['tflops']:.1f} TFLOP/s), xla "
        f"{timing['xla']['median_ms']:.3f} ms ({timing['xla']['tflops']:.1f} TFLOP/s): "
        f"{timing['speedup_fused_over_xla']:.2f}x"
    )
    if fused == "cudnn":  # "auto" picks cuDNN on this GPU: it should not be the slower one
        faster = timing["speedup_fused_over_xla"] >= 1.0
        report.line(PASS if faster else FAIL, f"{name} timing", text + (" (cudnn not slower)" if faster else ""))
    else:
        report.info(f"timing (CPU stand-in, no criterion): {text}")


# ---------------------------------------------------------------------------------------------------- check 3


@dataclasses.dataclass
class TrainStepBuild:
    """The main job's train step for one model and batch, jitted as the loop jits it."""

    model_cfg: object
    mesh: jax.sharding.Mesh
    step: Callable
    init_state: Callable[[], object]
    abstract_state: object
    data_sharding: object


def build_train_step(job: MfuJob, plan: Plan, device: jax.Device) -> TrainStepBuild:
    """``t5x_tl.train.loop.train``'s optimizer, state shardings, initialisation and jitted step for the main job's
    config at ``job``'s size, bfloat16 activations and float32 parameters, on a one-device data-parallel mesh."""
    from t5x_tl.config import load_config_file, model_config, validate
    from t5x_tl.models.registry import model_kind
    from t5x_tl.platform import compiler_options
    from t5x_tl.train import partitioning
    from t5x_tl.train.optimizers import learning_rate_schedule, make_optimizer
    from t5x_tl.train.state import abstract_model, abstract_train_state, init_train_state, state_shardings
    from t5x_tl.train.step import make_train_step

    cfg = load_config_file(REPO / "configs" / "pretrain_span_corruption.py")
    cfg.model.size = job.size
    cfg.model.dtype = "bfloat16"
    cfg.model.param_dtype = "float32"
    cfg.model.attention_impl = job.attention_impl
    cfg.data.inputs_length, cfg.data.targets_length = plan.lengths
    cfg.partitioning.preset = "data_parallel"
    validate(cfg)
    model_cfg = model_config(cfg, plan.mfu_vocab)
    kind = model_kind(cfg.model.kind)
    factory = lambda rngs: kind.build(model_cfg, rngs)
    p = cfg.partitioning
    mesh = partitioning.make_mesh(p.data, p.model, fsdp=p.fsdp, replica=p.replica, devices=[device])
    rules = partitioning.resolve_rules(p.preset, p.rules)
    data_sharding = partitioning.batch_sharding(mesh)
    optimizer = make_optimizer(cfg.optimizer, cfg.train.steps)
    shardings = state_shardings(factory, optimizer, mesh, rules)
    graphdef, _ = abstract_model(factory)
    schedule = learning_rate_schedule(cfg.optimizer, cfg.train.steps)
    step = jax.jit(
        make_train_step(
            graphdef, optimizer, schedule, cfg.train.z_loss, cfg.seed, kind, cfg.train.microbatches, rules=rules
        ),
        in_shardings=(shardings, data_sharding),
        out_shardings=(shardings, None),
        donate_argnums=(0, 1),
        compiler_options=compiler_options(),
    )
    return TrainStepBuild(
        model_cfg=model_cfg,
        mesh=mesh,
        step=step,
        init_state=lambda: init_train_state(factory, optimizer, shardings, cfg.seed),
        abstract_state=abstract_train_state(factory, optimizer, shardings),
        data_sharding=data_sharding,
    )


def time_train_step(job: MfuJob, plan: Plan, device: jax.Device, batch_sizes: Sequence[int], report: Report,
                    budget: Budget, min_seconds: float) -> dict:  # fmt: skip
    """Compiles the step at the first batch of ``batch_sizes`` that fits (skipping sizes that the compiled
    program's memory analysis predicts will not), then times ``plan.steps`` steps after the warm-up ones."""
    build = build_train_step(job, plan, device)
    inputs, targets = plan.lengths
    limit = _memory_limit(device)
    attempts = []
    i = 0
    with jax.set_mesh(build.mesh):
        while i < len(batch_sizes):
            batch = batch_sizes[i]
            if not budget.allows(min_seconds):
                attempts.append({"batch": batch, "result": f"not tried: {budget.left():.0f} s of budget left"})
                break
            host = packed_batch(batch, inputs, targets, plan.mfu_vocab, seed=batch)
            abstract_batch = {
                k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=build.data_sharding) for k, v in host.items()
            }
            start = time.perf_counter()
            try:
                compiled = build.step.lower(build.abstract_state, abstract_batch).compile()
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                attempts.append({"batch": batch, "result": f"compile: out of memory ({str(error)[:200]})"})
                i += 1
                continue
            compile_s = time.perf_counter() - start
            memory = compiled.memory_analysis()
            needed = needed_bytes(memory)
            attempt = {"batch": batch, "compile_s": compile_s, "needed_bytes": needed, "limit_bytes": limit}
            if needed and limit and needed > limit:
                attempt["result"] = f"needs {needed / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB: not run"
                attempts.append(attempt)
                i = next_batch_to_try(batch_sizes, i, memory, limit)
                del compiled
                continue
            state = None
            try:
                state = build.init_state()
                batches = [jax.device_put(host, build.data_sharding) for _ in range(plan.warmup_steps + plan.steps)]
                losses, times = [], []
                for n, device_batch in enumerate(batches):
                    tick = time.perf_counter()
                    state, metrics = compiled(state, device_batch)
                    jax.block_until_ready((state, metrics))
                    if n >= plan.warmup_steps:
                        times.append(time.perf_counter() - tick)
                    losses.append(float(metrics["loss"]))
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                attempt["result"] = f"run: out of memory ({str(error)[:200]})"
                attempts.append(attempt)
                del state, compiled
                gc.collect()
                i = next_batch_to_try(batch_sizes, i, memory, limit)
                continue
            attempt["result"] = "ran"
            attempts.append(attempt)
            del state, compiled, batches
            return {"batch": batch, "times": times, "losses": losses, "attempts": attempts,
                    "model_cfg": build.model_cfg, "compile_s": compile_s}  # fmt: skip
    return {"batch": None, "attempts": attempts, "model_cfg": build.model_cfg}


def check_mfu(plan: Plan, device: jax.Device, report: Report, budget: Budget, peak_override: float) -> None:
    """Step time, tokens/s and MFU of the main job's train step at T5 v1.1 base and large, bfloat16."""
    from t5x_tl.models.sizes import padded_vocab_size, t5_config
    from t5x_tl.train.flops import peak_flops_per_device, train_step_flops

    name = "mfu"
    inputs, targets = plan.lengths
    peak = peak_flops_per_device(device, "bfloat16", peak_override)
    report.record(name, "peak_flops_per_device", peak)
    report.info(
        f"peak: {peak / 1e12:.0f} TFLOP/s bfloat16 dense for {device.device_kind!r}"
        + (" (--peak_flops)" if peak_override else " (t5x_tl.train.flops, data sheet)")
        if peak
        else f"peak: none known for {device.device_kind!r}: MFU not computed (--peak_flops sets one)"
    )
    found: dict[str, int] = {}
    min_seconds = {"tiny": 3, "small": 30, "base": 60, "large": 90}  # to compile once and run: else skipped
    for job in plan.mfu_jobs:
        label = f"{name} {job.name}"
        sizes = job.batch_sizes
        if job.start_at_batch_of in found:
            sizes = tuple(b for b in sizes if b <= found[job.start_at_batch_of])
        need = min_seconds.get(job.size, 60)
        if not budget.allows(need):
            report.line(SKIP, label, f"out of time budget ({budget.left():.0f} s left, {need} s needed)")
            continue
        try:
            result = time_train_step(job, plan, device, sizes, report, budget, need)
        except Exception as error:
            report.record(name, job.name, {"error": traceback.format_exc()[-3000:]})
            report.line(ERROR, label, _first_line(error))
            continue
        finally:  # what a failed job left on the device goes before the next one
            gc.collect()
            jax.clear_caches()
        for attempt in result["attempts"]:
            report.info(f"{job.name} batch {attempt['batch']}: {attempt['result']}")
        if result["batch"] is None:
            report.record(name, job.name, {"attempts": result["attempts"]})
            report.line(FAIL if job.target else SKIP, label, f"no batch of {list(sizes)} ran")
            continue
        batch, model_cfg = result["batch"], result["model_cfg"]
        found[job.name] = batch
        step_s = statistics.median(result["times"])
        flops = train_step_flops(model_cfg, batch, inputs, targets)
        figures = {
            "size": job.size,
            "attention_impl": job.attention_impl,
            "batch": batch,
            "lengths": [inputs, targets],
            "step_s_median": step_s,
            "step_s_all": result["times"],
            "compile_s": result["compile_s"],
            "tokens_per_s": batch * (inputs + targets) / step_s,
            "input_tokens_per_s": batch * inputs / step_s,
            "model_flops_per_step": flops,
            "model_tflops_per_s": flops / step_s / 1e12,
            "mfu": flops / step_s / peak if peak else None,
            "losses": result["losses"],
            "attempts": result["attempts"],
        }
        report.record(name, job.name, figures)
        mfu = f"MFU {figures['mfu']:.1%}" if peak else "MFU n/a (no peak)"
        text = (
            f"batch {batch} x {inputs}/{targets}: {step_s:.3f} s/step (median of {len(result['times'])}), "
            f"{figures['tokens_per_s']:,.0f} tokens/s ({figures['input_tokens_per_s']:,.0f} input tokens/s), "
            f"{figures['model_tflops_per_s']:.0f} model TFLOP/s, {mfu}; compile {result['compile_s']:.0f} s; "
            f"loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}"
        )
        finite = all(math.isfinite(x) for x in result["losses"])
        if not finite:
            report.line(FAIL, label, text + " (loss not finite)")
        elif job.target and peak:
            ok = figures["mfu"] >= MFU_TARGET
            report.line(PASS if ok else FAIL, label, f"{text} ({'>=' if ok else '<'} target {MFU_TARGET:.0%})")
        elif job.target:
            report.line(PASS, label, text)
            report.line(SKIP, f"{label} target", f"MFU target {MFU_TARGET:.0%} needs a peak ({device.device_kind})")
        else:
            report.line(PASS, label, text)
        if job.name == "base/auto":
            base = t5_config("base", padded_vocab_size(T5_VOCAB))
            theirs = train_step_flops(base, NANOT5["batch"], NANOT5["inputs_length"], NANOT5["targets_length"])
            implied = theirs / NANOT5["step_s"] / NANOT5["peak_flops"]
            report.record(name, "nanoT5_published", {**NANOT5, "implied_mfu_by_our_flop_count": implied})
            report.info(
                f"nanoT5 (published, not run here): T5 v1.1 base, batch 128 x 512, bfloat16 with torch.compile on an "
                f"A100: {NANOT5['step_s']} s/step, {NANOT5['input_tokens_per_s']:,.0f} input tokens/s, "
                f"{implied:.0%} MFU of the A100's 312 TFLOP/s by our FLOP count. Another chip, not a side-by-side; "
                f"ours: {figures['input_tokens_per_s']:,.0f} input tokens/s on {device.device_kind} at batch {batch}"
            )


# ---------------------------------------------------------------------------------------------------- main


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for module in ("jax", "jaxlib", "flax", "optax", "numpy", "ml_collections"):
        try:
            versions[module] = __import__(module).__version__
        except Exception as error:  # a version we cannot read is reported, not fatal
            versions[module] = f"unavailable ({type(error).__name__})"
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry_run", action="store_true", help="every check on the CPU at tiny sizes")
    parser.add_argument("--checks", default="parity,attention,mfu", help="comma-separated subset, in this order")
    parser.add_argument("--budget_s", type=float, default=400.0, help="skip what would run past this (seconds)")
    parser.add_argument("--json", default="", help="write every figure here (rewritten after each check)")
    parser.add_argument("--steps", type=int, default=0, help="timed train steps (0: the plan's)")
    parser.add_argument("--peak_flops", type=float, default=0.0, help="MFU's denominator (0: the data sheet's)")
    args = parser.parse_args(argv)

    # the loop's donation of the batch: XLA reuses none of its buffers, and says so at every compile
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    plan = DRY_RUN_PLAN if args.dry_run else GPU_PLAN
    if args.steps:
        plan = dataclasses.replace(plan, steps=args.steps)
    if args.dry_run:
        jax.config.update("jax_platforms", "cpu")
    budget = Budget(args.budget_s)
    device = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    if args.dry_run:  # the CPU against itself: the same numbers, so only the check's plumbing is tested
        cpu, other = device, device
    elif device.platform == "cpu":
        print("ERROR: no accelerator: jax.devices() lists only CPUs; use --dry_run for a CPU run", flush=True)
        return 2
    else:
        other = device
    meta = {
        "argv": list(sys.argv if argv is None else argv),
        "mode": "dry_run (CPU, tiny sizes)" if args.dry_run else "full",
        "device": str(device),
        "device_kind": device.device_kind,
        "devices": [str(d) for d in jax.devices()],
        "memory_limit_bytes": _memory_limit(device),
        "versions": _versions(),
        "env": {k: os.environ.get(k, "") for k in ENV_SHOWN},
        "plan": dataclasses.asdict(plan),
        "budget_s": args.budget_s,
    }  # fmt: skip
    report = Report(args.json or None, meta)
    print(f"gpu_check ({meta['mode']}) on {device} [{device.device_kind}], budget {args.budget_s:.0f} s", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), flush=True)
    checks = {
        "parity": lambda: check_parity(plan, cpu, other, report, budget),
        "attention": lambda: check_attention(plan, device, report, budget),
        "mfu": lambda: check_mfu(plan, device, report, budget, args.peak_flops),
    }
    for name in args.checks.split(","):
        if name not in checks:
            parser.error(f"unknown check {name!r}; choose from {list(checks)}")
        print(f"== {name} ({budget.left():.0f} s of budget left)", flush=True)
        start = time.monotonic()
        try:
            checks[name]()
        except Exception as error:
            report.record(name, "error", traceback.format_exc()[-3000:])
            report.line(ERROR, name, _first_line(error))
            traceback.print_exc()
        report.record(name, "seconds", round(time.monotonic() - start, 1))
    report.write()
    s = report.data["summary"]
    print(
        f"== summary: {s[PASS]} PASS, {s[FAIL]} FAIL, {s[SKIP]} SKIP, {s[ERROR]} ERROR in {s['elapsed_s']:.0f} s"
        + (f"; figures in {args.json}" if args.json else ""),
        flush=True,
    )
    return 2 if s[ERROR] else 1 if s[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
