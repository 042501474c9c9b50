"""Model FLOPs of a training step (the kind's analytic forward FLOPs x3), and the peaks MFU is measured against."""

from __future__ import annotations

import jax

from t5x_tl.models.config import T5Config
from t5x_tl.models.kinds import ModelKind
from t5x_tl.models.segments import MemoryConfig
from t5x_tl.models.t5_kinds import ENCODER_DECODER

# Dense bfloat16 matmul peaks per device, from the vendors' data sheets (FLOP/s).
BFLOAT16_PEAK_FLOPS = {
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def peak_flops_per_device(device: jax.Device, dtype: str, configured: float = 0.0) -> float | None:
    """``configured`` if set, else the data-sheet bfloat16 peak of ``device`` for bfloat16 runs; None where
    no peak is known (CPUs, float32), so MFU is not reported rather than made up."""
    if configured > 0:
        return configured
    if dtype != "bfloat16":
        return None
    return next((peak for name, peak in BFLOAT16_PEAK_FLOPS.items() if device.device_kind.startswith(name)), None)


def train_step_flops(
    cfg: T5Config,
    batch_size: int,
    inputs_length: int,
    targets_length: int,
    kind: ModelKind = ENCODER_DECODER,
    memory: MemoryConfig | None = None,
) -> float:
    """Model FLOPs of one training step: three times the forward pass (backward costs twice the forward)."""
    forward = batch_size * kind.forward_flops(cfg, inputs_length, targets_length, memory) + kind.batch_flops(cfg)
    return 3.0 * forward
