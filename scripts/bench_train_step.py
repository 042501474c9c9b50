"""Training-step throughput of our T5 v1.1 against Hugging Face's PyTorch T5, side by side in one run.

Both sides train the same configuration (T5 v1.1 small by default, batch 8, inputs 512, targets 114,
float32) with AdamW on random tokens; times are medians over timed steps after warm-up (JAX compilation
excluded), the two sides' steps taken in turn. MFU is model FLOPs (analytic) per second over a float32 matmul
peak measured in this run. The process keeps freed host memory as ``t5x_tl-train`` does
(``--host_allocator=kept``); both sides share it, and the heap takes a few rounds to settle (in the first
rounds after PyTorch's first step, the XLA step faulted in up to 2.8 GB of new pages), hence ``--warmup=3``.

    pip install torch==2.13.0 transformers   # the CPU build; see README
    python scripts/bench_train_step.py --size=small --steps=5 --out=/tmp/bench_train_step.json
    python scripts/bench_train_step.py --size=base --steps=2 --in_turn=0 --out=/tmp/bench_train_step_base.json

Taken in turn, the base sides hold both models' activations and did not fit in 24 GiB (killed at 24.4 GB
resident); ``--in_turn=0`` runs one side after the other.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from t5x_tl.benchmarking import interleaved_median_seconds, median_seconds, run_torch_as_xla_cpu_runs
from t5x_tl.host_allocator import keep_freed_host_memory
from t5x_tl.models.config import T5Config
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder
from t5x_tl.platform import compiler_options
from t5x_tl.train.flops import train_step_flops
from t5x_tl.train.state import TrainState
from t5x_tl.train.step import make_train_step


def matmul_peak_flops(n: int = 2048, steps: int = 10) -> dict[str, float]:
    """Float32 matmul FLOP/s of JAX and of torch on this machine: the denominators of MFU."""
    import torch

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    t = torch.randn(n, n)
    seconds = interleaved_median_seconds(
        {"jax": lambda: matmul(a).block_until_ready(), "torch": lambda: t @ t}, steps, 2
    )
    return {side: 2 * n**3 / s for side, s in seconds.items()}


def synthetic_batch(cfg: T5Config, batch: int, inputs: int, targets: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    target_tokens = rng.integers(2, cfg.vocab_size, (batch, targets), dtype=np.int32)
    return {
        "encoder_input_tokens": rng.integers(2, cfg.vocab_size, (batch, inputs), dtype=np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), target_tokens[:, :-1]], axis=1),
        "decoder_target_tokens": target_tokens,
        "decoder_loss_weights": np.ones((batch, targets), np.float32),
    }


def ours_state_and_step(cfg: T5Config) -> tuple[TrainState, Callable]:
    """A fresh AdamW train state and the jitted (state-donating) t5x_tl training step."""
    model = EncoderDecoder(cfg, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    optimizer = optax.adamw(1e-4)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    step = make_train_step(graphdef, optimizer, lambda _: 1e-4, 0.0, 0)
    return state, jax.jit(step, donate_argnums=0, compiler_options=compiler_options())


def ours_step(cfg: T5Config, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """One t5x_tl training step per call."""
    state, step_fn = ours_state_and_step(cfg)
    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    holder = {"state": state}

    def run() -> None:
        holder["state"], metrics = step_fn(holder["state"], device_batch)
        jax.block_until_ready(metrics["loss"])

    return run


def torch_t5(cfg: T5Config):
    """transformers' PyTorch ``T5ForConditionalGeneration`` of ``cfg``'s T5 v1.1 shape, random weights, training."""
    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    hf_cfg = HFConfig(
        vocab_size=cfg.vocab_size,
        d_model=cfg.d_model,
        d_ff=cfg.d_ff,
        num_heads=cfg.num_heads,
        d_kv=cfg.d_kv,
        num_layers=cfg.num_encoder_layers,
        num_decoder_layers=cfg.num_decoder_layers,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        use_cache=False,
    )
    return T5ForConditionalGeneration(hf_cfg).train()


def torch_step(cfg: T5Config, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """One transformers T5 AdamW training step per call; gradient checkpointing when ``cfg`` asks for remat."""
    import torch

    model = torch_t5(cfg)
    if cfg.remat_policy != "none":
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = torch.from_numpy(batch["encoder_input_tokens"]).long()
    decoder_inputs = torch.from_numpy(batch["decoder_input_tokens"]).long()
    labels = torch.from_numpy(batch["decoder_target_tokens"]).long()

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=inputs, decoder_input_ids=decoder_inputs, labels=labels).loss
        loss.backward()
        optimizer.step()

    return run


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=114)
    parser.add_argument("--vocab", type=int, default=32128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--remat_policy", default="none", help="ours: a REMAT_POLICIES name; torch: checkpointing")
    parser.add_argument("--scan_layers", type=int, choices=(0, 1), default=1, help="ours: 1 scan, 0 unrolled loop")
    parser.add_argument("--host_allocator", choices=("kept", "glibc_default"), default="kept")
    parser.add_argument(
        "--in_turn", type=int, choices=(0, 1), default=1, help="0: one side after the other, when both do not fit"
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed rounds: the first compiles, the next let the heap settle"
    )
    parser.add_argument("--out", default="bench_train_step.json")
    args = parser.parse_args()

    if args.host_allocator == "kept" and not keep_freed_host_memory():
        raise SystemExit("this C library has no mallopt: rerun with --host_allocator=glibc_default")
    run_torch_as_xla_cpu_runs()
    cfg = t5_config(args.size, args.vocab, remat_policy=args.remat_policy, scan_layers=bool(args.scan_layers))
    batch = synthetic_batch(cfg, args.batch, args.inputs, args.targets)
    tokens = args.batch * (args.inputs + args.targets)
    flops = train_step_flops(cfg, args.batch, args.inputs, args.targets)
    peak = matmul_peak_flops()
    sides = {"ours": ours_step, "theirs": torch_step}
    if args.in_turn:
        steps = {k: make(cfg, batch) for k, make in sides.items()}
        seconds = interleaved_median_seconds(steps, args.steps, args.warmup)
    else:  # one side's model and activations freed before the other's are made
        seconds = {k: median_seconds(make(cfg, batch), args.steps, args.warmup) for k, make in sides.items()}
    ours, theirs = seconds["ours"], seconds["theirs"]
    result = {
        "config": vars(args),
        "device": str(jax.devices()[0]),
        "model_flops_per_step": flops,
        "matmul_peak_flops": peak,
        "t5x_tl": {"step_s": ours, "tokens_per_s": tokens / ours, "mfu": flops / ours / peak["jax"]},
        "transformers_torch": {
            "step_s": theirs,
            "tokens_per_s": tokens / theirs,
            "mfu": flops / theirs / peak["torch"],
        },
        "speedup": theirs / ours,
    }
    print(f"T5 v1.1 {args.size}, batch {args.batch}, {args.inputs}/{args.targets}, float32, AdamW, "
          f"remat {args.remat_policy}, scan_layers {args.scan_layers}, host allocator {args.host_allocator}, "
          f"{result['device']}")  # fmt: skip
    print(f"matmul peak: jax {peak['jax'] / 1e9:.1f} GFLOP/s, torch {peak['torch'] / 1e9:.1f} GFLOP/s")
    print(f"{'':22}{'step s':>10}{'tokens/s':>12}{'MFU':>8}")
    for name in ("t5x_tl", "transformers_torch"):
        row = result[name]
        print(f"{name:22}{row['step_s']:10.3f}{row['tokens_per_s']:12.0f}{row['mfu']:8.1%}")
    print(f"t5x_tl / transformers tokens/s: {result['speedup']:.2f}x")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
