"""Synthetic downstream tasks (pairs, QA, summaries, translation) derived from the built-in world."""
