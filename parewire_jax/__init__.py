"""parewire_jax: preferential-attachment weight rewiring for JAX and Flax.

Scabini, De Baets & Bruno, "Improving Deep Neural Network Random
Initialization Through Neuronal Rewiring", arXiv:2207.08148 (2022).

The public names below are imported on first use (PEP 562), so that the
command line (``python -m parewire_jax``) can parse and refuse bad arguments
without first spending seconds importing JAX. ``import parewire_jax as pw;
pw.rewired`` and ``from parewire_jax import rewired`` work as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parewire_jax import _lazy

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
  "MatrixLayout": "axes",
  "as_matrices": "axes",
  "batch_rewiring": "batching",
  "einsum_kernel_axes": "axes",
  "from_matrices": "axes",
  "matrix_layout": "axes",
  "RankingDistance": "diagnostics",
  "WeightDeviation": "diagnostics",
  "ranking_distance": "diagnostics",
  "weight_deviation": "diagnostics",
  "max_strength_variance": "initializers",
  "min_strength_variance": "initializers",
  "rewired": "initializers",
  "rewiring_key": "initializers",
  "LaPermState": "lookahead_permutation",
  "find_laperm_state": "lookahead_permutation",
  "laperm": "lookahead_permutation",
  "laperm_project": "lookahead_permutation",
  "random_prune": "pruning",
  "pa_rewire": "rewiring",
  "rewire": "rewiring",
  "is_kernel": "selection",
  "is_weight_matrix": "selection",
  "kernel_out_axes": "selection",
  "StrengthStats": "strength",
  "strength_stats": "strength",
  "strengths": "strength",
  "leaf_key": "tree",
  "rewire_params": "tree",
}

__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # what static tools see (`X as X` re-exports); tests/test_package.py checks it matches _EXPORTS
  from parewire_jax.axes import (
    MatrixLayout as MatrixLayout,
    as_matrices as as_matrices,
    einsum_kernel_axes as einsum_kernel_axes,
    from_matrices as from_matrices,
    matrix_layout as matrix_layout,
  )
  from parewire_jax.batching import (
    batch_rewiring as batch_rewiring,
  )
  from parewire_jax.diagnostics import (
    RankingDistance as RankingDistance,
    WeightDeviation as WeightDeviation,
    ranking_distance as ranking_distance,
    weight_deviation as weight_deviation,
  )
  from parewire_jax.initializers import (
    max_strength_variance as max_strength_variance,
    min_strength_variance as min_strength_variance,
    rewired as rewired,
    rewiring_key as rewiring_key,
  )
  from parewire_jax.lookahead_permutation import (
    LaPermState as LaPermState,
    find_laperm_state as find_laperm_state,
    laperm as laperm,
    laperm_project as laperm_project,
  )
  from parewire_jax.pruning import (
    random_prune as random_prune,
  )
  from parewire_jax.rewiring import (
    pa_rewire as pa_rewire,
    rewire as rewire,
  )
  from parewire_jax.selection import (
    is_kernel as is_kernel,
    is_weight_matrix as is_weight_matrix,
    kernel_out_axes as kernel_out_axes,
  )
  from parewire_jax.strength import (
    StrengthStats as StrengthStats,
    strength_stats as strength_stats,
    strengths as strengths,
  )
  from parewire_jax.tree import (
    leaf_key as leaf_key,
    rewire_params as rewire_params,
  )
