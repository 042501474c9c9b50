"""t5x_tl.train."""
