"""What the ``scripts/bench_*.py`` benchmarks share: medians of interleaved calls, because this shared machine's
speed drifts (its matmul peak measured 270 and 360 GFLOP/s an hour apart); the PyTorch settings that make
a side-by-side run compare like with like; and the T5 training steps they time (t5x_tl's and transformers', on
the same random batch) with the matmul peak that MFU is measured against. Scripts import these, never each
other."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from t5x_tl.models.config import T5Config
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.t5_kinds import ENCODER_DECODER
from t5x_tl.platform import compiler_options
from t5x_tl.train.state import TrainState
from t5x_tl.train.step import make_train_step

if TYPE_CHECKING:
    import torch


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (compilation, caches)."""
    return interleaved_median_seconds({"fn": fn}, repeats, warmup)["fn"]


def interleaved_median_seconds(
    fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time of each of ``fns``, called in turn in every round, so that a drift in the machine's
    speed during the run falls on every side alike rather than on whichever ran last."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def run_torch_as_xla_cpu_runs() -> None:
    """Gives PyTorch the CPU terms XLA's CPU client runs on: every core, and denormal floats flushed to zero.

    XLA:CPU flushes denormals; PyTorch computes with them by default, at a large cost per operation. Training
    with AdamW drifts second moments into that range within a few steps: transformers' T5-small step here went
    from 4.6 s to 12.9 s over its first four steps, which credited XLA with a 1.4-2x lead it had not earned.
    """
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if not torch.set_flush_denormal(True):
        raise RuntimeError("PyTorch cannot flush denormals on this CPU, so its timings would not match XLA's terms")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The training-step benchmarks' model and batch options: ``--size``, ``--batch``, ``--inputs``,
    ``--targets``, ``--vocab``."""
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--targets", type=int, default=114)
    parser.add_argument("--vocab", type=int, default=32128)


def matmul_peak_flops(n: int = 2048, steps: int = 10) -> dict[str, float]:
    """Float32 matmul FLOP/s of JAX and of torch on this machine (``n``-square products, medians of ``steps``
    taken in turn): the denominators of MFU."""
    import torch

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    t = torch.randn(n, n)
    seconds = interleaved_median_seconds(
        {"jax": lambda: matmul(a).block_until_ready(), "torch": lambda: t @ t}, steps, 2
    )
    return {side: 2 * n**3 / s for side, s in seconds.items()}


def synthetic_batch(cfg: T5Config, batch: int, inputs: int, targets: int) -> dict[str, np.ndarray]:
    """A seeded encoder-decoder batch of random tokens (no padding): ``batch`` rows of ``inputs`` and ``targets``."""
    rng = np.random.default_rng(0)
    target_tokens = rng.integers(2, cfg.vocab_size, (batch, targets), dtype=np.int32)
    return {
        "encoder_input_tokens": rng.integers(2, cfg.vocab_size, (batch, inputs), dtype=np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((batch, 1), np.int32), target_tokens[:, :-1]], axis=1),
        "decoder_target_tokens": target_tokens,
        "decoder_loss_weights": np.ones((batch, targets), np.float32),
    }


def on_device(batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """``batch`` as JAX arrays, so that timed steps do not copy it from the host each call."""
    return {k: jnp.asarray(v) for k, v in batch.items()}


def train_state_and_step(cfg: T5Config, memory: MemoryConfig | None = None) -> tuple[TrainState, Callable]:
    """A fresh AdamW (learning rate 1e-4) train state and the jitted, state-donating t5x_tl training step of
    ``cfg``'s encoder-decoder; with ``memory``, of the Recurrent Memory Transformer over it."""
    model = ENCODER_DECODER.build(cfg, nnx.Rngs(0), memory)
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    optimizer = optax.adamw(1e-4)
    state = TrainState.create(params, optimizer)
    step = make_train_step(graphdef, optimizer, lambda _: 1e-4, 0.0, 0)
    return state, jax.jit(step, donate_argnums=0, compiler_options=compiler_options())


def step_runner(step: Callable, state: TrainState, batch: Mapping[str, object]) -> Callable[[], None]:
    """A call that takes one training step of ``step`` (jitted or compiled) on ``batch``, keeps the new state
    for the next call, and waits for the loss."""
    holder = {"state": state}

    def run() -> None:
        holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready(metrics["loss"])

    return run


def t5x_tl_train_step(cfg: T5Config, batch: Mapping[str, np.ndarray]) -> Callable[[], None]:
    """One t5x_tl AdamW training step of ``cfg``'s encoder-decoder on ``batch`` per call."""
    state, step = train_state_and_step(cfg)
    return step_runner(step, state, on_device(batch))


def torch_t5(cfg: T5Config) -> torch.nn.Module:
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


def torch_train_step(cfg: T5Config, batch: Mapping[str, np.ndarray]) -> Callable[[], None]:
    """One transformers T5 AdamW training step on ``batch`` per call; gradient checkpointing when ``cfg`` asks
    for remat."""
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
