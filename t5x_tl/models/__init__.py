"""t5x_tl.models."""
