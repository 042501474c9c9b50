"""t5x_tl.eval."""
