"""The analytic FLOP count against XLA's own count of an unrolled forward pass, for every model kind."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from t5x_tl.models.config import T5Config
from t5x_tl.models.registry import model_kind
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.t5_kinds import PREFIX_LM
from t5x_tl.train.flops import peak_flops_per_device, train_step_flops

S, T, B = 64, 32, 2


def _config(feed_forward_proj: str) -> T5Config:
    return T5Config(vocab_size=512, d_model=256, d_ff=512, num_heads=4, d_kv=64, num_encoder_layers=2,
                    num_decoder_layers=2, feed_forward_proj=feed_forward_proj, scan_layers=False)  # fmt: skip


def _xla_flops(kind: str, cfg: T5Config, memory: MemoryConfig | None = None) -> float:
    model = model_kind(kind).build(cfg, nnx.Rngs(0), memory)
    graphdef, params = nnx.split(model)
    ids = lambda n: jnp.ones((B, n), jnp.int32)

    def forward(params):
        m = nnx.merge(graphdef, params)
        if kind == "encoder_decoder":
            return m(ids(S), ids(T), deterministic=True)
        if kind == "encoder_only":
            return m(ids(S), deterministic=True)
        return m(ids(T if kind == "decoder_only" else S + T), deterministic=True)

    return jax.jit(forward).lower(params).compile().cost_analysis()["flops"]


@pytest.mark.parametrize("kind", ["encoder_decoder", "decoder_only", "prefix_lm", "encoder_only"])
@pytest.mark.parametrize("feed_forward_proj", ["gated-gelu", "relu"])
def test_matmul_flops_account_for_what_xla_counts(kind, feed_forward_proj):
    cfg = _config(feed_forward_proj)
    ours = B * model_kind(kind).forward_flops(cfg, S, T)
    xla = _xla_flops(kind, cfg)
    assert 0.97 * xla <= ours <= xla, (ours, xla)  # XLA also counts norms, softmax and activations


@pytest.mark.parametrize("kind", ["encoder_decoder", "decoder_only", "encoder_only"])
def test_memory_flops_count_every_segment_at_its_full_length(kind):
    """Unrolled segments (``scan=False``), so that XLA counts each one."""
    cfg = _config("gated-gelu")
    memory = MemoryConfig(segment_size=16, memory_size=4, max_segments=4, scan=False)
    length = T if kind == "decoder_only" else S  # decoder-only segments its targets, the others their inputs
    ours = B * model_kind(kind).forward_flops(cfg, S, T, memory)
    xla = _xla_flops(kind, cfg, memory)
    assert memory.num_segments(length) == (2 if kind == "decoder_only" else 4)
    assert 0.95 * xla <= ours <= xla, (ours, xla)


def test_a_training_step_is_three_forward_passes():
    cfg = _config("gated-gelu")
    assert train_step_flops(cfg, 8, S, T, PREFIX_LM) == 3 * 8 * PREFIX_LM.forward_flops(cfg, S, T)


def test_peaks_are_reported_only_where_known():
    cpu = jax.devices()[0]
    assert peak_flops_per_device(cpu, "bfloat16") is None
    assert peak_flops_per_device(cpu, "float32", configured=1e12) == 1e12

    class H100:
        device_kind = "NVIDIA H100 80GB HBM3"

    assert peak_flops_per_device(H100(), "bfloat16") == 989e12
    assert peak_flops_per_device(H100(), "float32") is None
