"""Curriculum learning: the strategies of Learning to Execute, level-by-level batches, and its tasks."""
