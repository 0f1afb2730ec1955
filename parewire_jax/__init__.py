"""parewire_jax: preferential-attachment weight rewiring for JAX and Flax.

Scabini, De Baets & Bruno, "Improving Deep Neural Network Random
Initialization Through Neuronal Rewiring", arXiv:2207.08148 (2022).
"""

from parewire_jax.axes import MatrixLayout, as_matrices, from_matrices, matrix_layout
from parewire_jax.diagnostics import RankingDistance, WeightDeviation, ranking_distance, weight_deviation
from parewire_jax.initializers import (
  max_strength_variance,
  min_strength_variance,
  rewired,
  rewiring_key,
)
from parewire_jax.lookahead_permutation import LaPermState, find_laperm_state, laperm, laperm_project
from parewire_jax.pruning import random_prune
from parewire_jax.rewiring import pa_rewire, rewire
from parewire_jax.selection import is_weight_matrix
from parewire_jax.strength import StrengthStats, strength_stats, strengths
from parewire_jax.tree import leaf_key, rewire_params

__version__ = "0.1.0"

__all__ = [
  "LaPermState",
  "MatrixLayout",
  "RankingDistance",
  "WeightDeviation",
  "StrengthStats",
  "as_matrices",
  "find_laperm_state",
  "from_matrices",
  "is_weight_matrix",
  "leaf_key",
  "laperm",
  "laperm_project",
  "matrix_layout",
  "max_strength_variance",
  "min_strength_variance",
  "pa_rewire",
  "random_prune",
  "ranking_distance",
  "rewire",
  "rewire_params",
  "rewired",
  "rewiring_key",
  "strength_stats",
  "strengths",
  "weight_deviation",
]
