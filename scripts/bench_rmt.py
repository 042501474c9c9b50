"""The Recurrent Memory Transformer's costs, measured side by side in one run.

1. Compile time of the training step at 2, 8 and 32 segments: one ``lax.scan`` over segments against the same
   step unrolled as a Python loop over segments.
2. XLA's activation memory (compiled temporaries) of the training step with and without per-segment remat.
3. Step time per segment against the plain backbone's step on one segment of the same tokens (target: 1.2x).
4. Our jitted step against an RMT loop in PyTorch over transformers' T5 of the same size (the same memory
   scheme: memory embeddings prepended to every encoder segment, the outputs at those positions carried,
   the decoder on the last segment; AdamW; full backpropagation through time), with segments and layers
   scanned (the default) and both unrolled.

Model: T5 v1.1 encoder-decoder (tiny by default), float32, segments of 128 tokens with 10 memory vectors,
targets of 8 tokens, AdamW, random tokens. Times are medians after warm-up.

    pip install torch==2.13.0 transformers   # the CPU build; see README
    python scripts/bench_rmt.py --size=tiny --out=/tmp/bench_rmt.json
    python scripts/bench_rmt.py --size=base --segment=512 --segments=8,32,128 --dtype=bfloat16   # on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable

import jax

from t5x_tl.benchmarking import (
    median_seconds,
    on_device,
    run_torch_as_xla_cpu_runs,
    step_runner,
    synthetic_batch,
    torch_t5,
    train_state_and_step,
)
from t5x_tl.models.config import T5Config
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.sizes import t5_config
from t5x_tl.train.state import TrainState


def batch_of(cfg: T5Config, rows: int, inputs: int, targets: int) -> dict[str, jax.Array]:
    """``synthetic_batch`` on the device."""
    return on_device(synthetic_batch(cfg, rows, inputs, targets))


def compiled(cfg: T5Config, memory: MemoryConfig | None, batch: dict) -> tuple[float, object, TrainState, Callable]:
    """(compile seconds, the compiled step, a state, the jitted step) of the RMT (or, without memory, the plain
    backbone)."""
    state, step = train_state_and_step(cfg, memory)
    start = time.perf_counter()
    executable = step.lower(state, batch).compile()
    return time.perf_counter() - start, executable, state, step


def seconds_per_step(executable: Callable, state: TrainState, batch: dict, repeats: int) -> float:
    """Median seconds of ``repeats`` steps of ``executable`` (after one untimed)."""
    return median_seconds(step_runner(executable, state, batch), repeats)


def torch_rmt_step(cfg: T5Config, args: argparse.Namespace, segments: int) -> Callable[[], None]:
    """One training step of an RMT loop written in PyTorch over transformers' T5."""
    import torch

    model = torch_t5(cfg)
    memory0 = torch.nn.Parameter(torch.randn(args.memory, cfg.d_model))
    optimizer = torch.optim.AdamW([*model.parameters(), memory0], lr=1e-4)
    batch = synthetic_batch(cfg, args.batch, segments * args.segment, args.targets)
    tokens = torch.from_numpy(batch["encoder_input_tokens"]).long()
    decoder_inputs = torch.from_numpy(batch["decoder_input_tokens"]).long()
    labels = torch.from_numpy(batch["decoder_target_tokens"]).long()
    mask = torch.ones(args.batch, args.memory + args.segment, dtype=torch.long)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        memory = memory0.expand(args.batch, -1, -1)
        for index in range(segments):
            piece = tokens[:, index * args.segment : (index + 1) * args.segment]
            embeds = torch.cat([memory, model.shared(piece)], dim=1)
            hidden = model.encoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            memory = hidden[:, : args.memory]
        loss = model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=decoder_inputs, labels=labels)
        loss.loss.backward()
        optimizer.step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--vocab", type=int, default=32128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--segment", type=int, default=128)
    parser.add_argument("--memory", type=int, default=10)
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--segments", default="2,8,32", help="segment counts for compile time and memory")
    parser.add_argument("--torch_segments", type=int, default=8, help="segments of the step-time comparisons")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="ours: activations")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="bench_rmt.json")
    args = parser.parse_args()

    run_torch_as_xla_cpu_runs()
    cfg = t5_config(args.size, args.vocab, dtype=args.dtype)
    memory = MemoryConfig(segment_size=args.segment, memory_size=args.memory, max_segments=1024)
    counts = [int(c) for c in args.segments.split(",")]
    result: dict = {"config": vars(args), "device": str(jax.devices()[0]), "by_segments": {}}
    print(f"T5 v1.1 {args.size} encoder-decoder RMT, batch {args.batch}, segments of {args.segment} + "
          f"{args.memory} memory, targets {args.targets}, {args.dtype}, AdamW, {result['device']}")  # fmt: skip
    print(f"{'segments':>8}{'compile scan s':>16}{'compile unrolled s':>20}{'ratio':>7}"
          f"{'temp MiB':>10}{'temp MiB remat':>16}{'ratio':>7}")  # fmt: skip
    for count in counts:
        batch = batch_of(cfg, args.batch, count * args.segment, args.targets)
        row = {}
        row["compile_scan_s"], scan_exe, _, _ = compiled(cfg, memory, batch)
        row["compile_unrolled_s"], _, _, _ = compiled(cfg, dataclasses.replace(memory, scan=False), batch)
        _, remat_exe, _, _ = compiled(cfg, dataclasses.replace(memory, remat=True), batch)
        row["temp_bytes"] = scan_exe.memory_analysis().temp_size_in_bytes
        row["temp_bytes_remat"] = remat_exe.memory_analysis().temp_size_in_bytes
        result["by_segments"][count] = row
        mib = 2**20
        print(f"{count:8d}{row['compile_scan_s']:16.1f}{row['compile_unrolled_s']:20.1f}"
              f"{row['compile_unrolled_s'] / row['compile_scan_s']:7.1f}"
              f"{row['temp_bytes'] / mib:10.0f}{row['temp_bytes_remat'] / mib:16.0f}"
              f"{row['temp_bytes'] / row['temp_bytes_remat']:7.1f}")  # fmt: skip

    count = args.torch_segments
    batch = batch_of(cfg, args.batch, count * args.segment, args.targets)
    _, exe, state, _ = compiled(cfg, memory, batch)
    rmt_s = seconds_per_step(exe, state, batch, args.steps)
    plain_batch = batch_of(cfg, args.batch, args.segment, args.targets)
    _, plain_exe, plain_state, _ = compiled(cfg, None, plain_batch)
    plain_s = seconds_per_step(plain_exe, plain_state, plain_batch, args.steps)
    unrolled_cfg = dataclasses.replace(cfg, scan_layers=False)
    _, unrolled_exe, unrolled_state, _ = compiled(unrolled_cfg, dataclasses.replace(memory, scan=False), batch)
    unrolled_s = seconds_per_step(unrolled_exe, unrolled_state, batch, args.steps)
    torch_s = median_seconds(torch_rmt_step(cfg, args, count), args.steps)
    tokens = args.batch * count * args.segment
    result["step"] = {
        "unrolled_step_s": unrolled_s,
        "unrolled_speedup_over_torch": torch_s / unrolled_s,
        "segments": count,
        "rmt_step_s": rmt_s,
        "rmt_s_per_segment": rmt_s / count,
        "plain_one_segment_step_s": plain_s,
        "per_segment_over_plain": rmt_s / count / plain_s,
        "torch_rmt_step_s": torch_s,
        "rmt_tokens_per_s": tokens / rmt_s,
        "torch_rmt_tokens_per_s": tokens / torch_s,
        "speedup_over_torch": torch_s / rmt_s,
    }
    step = result["step"]
    print(f"\n{count} segments: t5x_tl RMT step {rmt_s:.3f} s ({rmt_s / count * 1e3:.1f} ms per segment); plain "
          f"backbone on one segment {plain_s * 1e3:.1f} ms: per-segment / plain = "
          f"{step['per_segment_over_plain']:.2f}x")  # fmt: skip
    print(f"PyTorch RMT loop over transformers T5: {torch_s:.3f} s; t5x_tl / PyTorch tokens/s = "
          f"{step['speedup_over_torch']:.2f}x ({step['rmt_tokens_per_s']:.0f} vs "
          f"{step['torch_rmt_tokens_per_s']:.0f} tokens/s)")  # fmt: skip
    print(f"segments and layers unrolled (compile time grows with both): {unrolled_s:.3f} s, "
          f"{step['unrolled_speedup_over_torch']:.2f}x PyTorch")  # fmt: skip
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
