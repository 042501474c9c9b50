"""Synthetic data: the generated world, its corpus and derived tasks."""
