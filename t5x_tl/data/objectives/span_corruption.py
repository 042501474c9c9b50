"""T5's random-span corruption under its historical names; it is the ``random_spans`` objective of
``t5x_tl.data.objectives.preprocessors``, where the masks and encoders it is built from are described.
"""

from __future__ import annotations

from t5x_tl.data.objectives.preprocessors import objective_lengths
from t5x_tl.data.objectives.preprocessors import random_spans as span_corruption

__all__ = ["raw_length_for", "span_corruption"]


def raw_length_for(inputs_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """The largest chunk whose corrupted inputs fit ``inputs_length`` with EOS, and the targets length.

    For inputs 512, density 0.15 and mean span 3 this is (568, 114), as in T5.
    """
    params = {"noise_density": noise_density, "mean_noise_span_length": mean_noise_span_length}
    return objective_lengths("random_spans", params, inputs_length)
