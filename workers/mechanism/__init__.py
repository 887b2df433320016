"""Focal-mechanism inversion (HASH grid search) and the mechanism worker.

``from workers.mechanism import invert`` is the stable entry point (see DESIGN.md).
"""

from workers.mechanism.invert import (
    Mechanism,
    Solution,
    invert,
    misfit_floor_from_reads,
    read_error_probability,
    weight_from_probabilities,
)

__all__ = [
    "Mechanism",
    "Solution",
    "invert",
    "misfit_floor_from_reads",
    "read_error_probability",
    "weight_from_probabilities",
]
