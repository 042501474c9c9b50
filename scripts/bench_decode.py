"""Decoding throughput: cached greedy decoding against uncached (full re-evaluation each step) and against
transformers' ``generate`` on the same weights, side by side in one run.

    python scripts/bench_decode.py --size=small --batch=8 --prompt=128 --new_tokens=128 --out=/tmp/bench_decode.json

Every side generates exactly ``new_tokens`` tokens (EOS does not stop it); times are medians after a warm-up
(compilation excluded), the three sides called in turn.
"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from t5x_tl.benchmarking import interleaved_median_seconds, run_torch_as_xla_cpu_runs
from t5x_tl.models import decoding
from t5x_tl.models.hf_convert import config_to_hf, params_to_hf
from t5x_tl.models.sizes import t5_config
from t5x_tl.models.t5 import EncoderDecoder


@functools.partial(nnx.jit, static_argnames="new_tokens")
def uncached_greedy(model: EncoderDecoder, prompts: jax.Array, new_tokens: int) -> jax.Array:
    """Greedy decoding that re-runs the whole decoder on a fixed-length buffer every step: O(n) per token."""
    tokens = jnp.zeros((prompts.shape[0], new_tokens + 1), jnp.int32)

    def step(i, tokens):
        logits = model(prompts, tokens[:, :-1])
        chosen = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False), axis=-1)
        return jax.lax.dynamic_update_slice_in_dim(tokens, chosen[:, None].astype(jnp.int32), i + 1, axis=1)

    return jax.lax.fori_loop(0, new_tokens, step, tokens)[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    parser.add_argument("--vocab", type=int, default=32128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench_decode.json")
    args = parser.parse_args()

    import torch
    import transformers

    run_torch_as_xla_cpu_runs()
    cfg = t5_config(args.size, args.vocab)
    model = EncoderDecoder(cfg, rngs=nnx.Rngs(0))
    prompts = jnp.asarray(np.random.default_rng(0).integers(2, args.vocab, (args.batch, args.prompt)), jnp.int32)
    n = args.new_tokens

    hf_cfg = transformers.T5Config(**{**config_to_hf(cfg), "dropout_rate": 0.0})
    reference = transformers.T5ForConditionalGeneration(hf_cfg).eval()
    state = {
        k: torch.from_numpy(np.asarray(v))
        for k, v in params_to_hf(nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg).items()
    }
    reference.load_state_dict(state, strict=False)  # the embed_tokens aliases of shared.weight are not in ours
    torch_prompts = torch.from_numpy(np.asarray(prompts)).long()

    def generate() -> None:
        with torch.no_grad():
            reference.generate(
                input_ids=torch_prompts, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1
            )

    sides = {
        "cached": lambda: decoding.greedy_decode(model, prompts, n, eos_id=None).block_until_ready(),
        "uncached": lambda: uncached_greedy(model, prompts, n).block_until_ready(),
        "hf": generate,
    }
    seconds = interleaved_median_seconds(sides, args.repeats)
    cached_s, uncached_s, hf_s = seconds["cached"], seconds["uncached"], seconds["hf"]
    tokens = args.batch * n
    result = {
        "config": vars(args),
        "t5x_tl_cached": {"seconds": cached_s, "tokens_per_s": tokens / cached_s},
        "t5x_tl_uncached": {"seconds": uncached_s, "tokens_per_s": tokens / uncached_s},
        "transformers_generate": {"seconds": hf_s, "tokens_per_s": tokens / hf_s},
        "cached_vs_uncached": uncached_s / cached_s,
        "cached_vs_transformers": hf_s / cached_s,
    }
    print(f"T5 v1.1 {args.size}, batch {args.batch}, prompt {args.prompt}, {n} new tokens, float32, {jax.devices()[0]}")
    for name in ("t5x_tl_cached", "t5x_tl_uncached", "transformers_generate"):
        print(f"{name:24}{result[name]['seconds']:9.2f} s{result[name]['tokens_per_s']:10.0f} tokens/s")
    speedups = result["cached_vs_uncached"], result["cached_vs_transformers"]
    print(f"cached / uncached: {speedups[0]:.1f}x; cached / transformers: {speedups[1]:.2f}x")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
