"""parewire_jax: preferential-attachment weight rewiring for JAX and Flax.

Scabini, De Baets & Bruno, "Improving Deep Neural Network Random
Initialization Through Neuronal Rewiring", arXiv:2207.08148 (2022).
"""

from parewire_jax.axes import MatrixLayout, as_matrices, from_matrices, matrix_layout
from parewire_jax.initializers import (
    max_strength_variance,
    min_strength_variance,
    rewired,
    rewiring_key,
)
from parewire_jax.rewiring import pa_rewire, rewire
from parewire_jax.strength import StrengthStats, strength_stats, strengths

__version__ = "0.1.0"

__all__ = [
    "MatrixLayout",
    "StrengthStats",
    "as_matrices",
    "from_matrices",
    "matrix_layout",
    "max_strength_variance",
    "min_strength_variance",
    "pa_rewire",
    "rewire",
    "rewired",
    "rewiring_key",
    "strength_stats",
    "strengths",
]
