"""Random pruning of weight vectors, for LaPerm on sparse initial weights (LaPerm §5.4, §5.5)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from parewire_jax._checks import check_fraction
from parewire_jax.selection import Where, is_weight_matrix, select
from parewire_jax.tree import leaf_key
from parewire_jax.weight_vectors import as_rows, from_rows


def _prune_weight_vectors(key: Array, x: Array, fraction: float) -> Array:
  columns, layout = as_rows(x)
  n_out, n_in = columns.shape
  num_pruned = round(fraction * n_in)
  if num_pruned == 0 or columns.size == 0:
    return x
  noise = jax.random.uniform(key, (n_out, n_in))
  pruned = jnp.argsort(noise, axis=-1)[:, :num_pruned]  # distinct positions per vector
  columns = jnp.put_along_axis(columns, pruned, jnp.zeros((), columns.dtype), axis=-1, inplace=False)
  return from_rows(columns, layout)


def random_prune(key: Array, params: Any, fraction: float, *, where: Where | None = None) -> Any:
  """Sets a random ``fraction`` of every selected weight vector to zero (§5.4).

  LaPerm on sparse initial weights (§5.4, Fig. 5f, 7, 8; and the weight
  agnostic networks of §5.5) prunes ``θ_0`` before training; the zeros then
  belong to the multiset that synchronisation permutes, so connections move.
  In each weight vector (a column as laid out by ``as_matrices(x,
  out_axis=-1)``) of ``n`` entries exactly ``round(fraction * n)`` distinct
  entries (Python's ``round``, ties to even) chosen uniformly at random are
  set to ``0``; the others keep their values bit for bit.

  Args:
    key: a PRNG key. The leaf at ``path`` uses
      :func:`parewire_jax.leaf_key` ``(key, path)`` (a bare array has path
      ``()``), so adding or removing another leaf does not change which entries
      of this one are pruned.
    params: a parameter tree, or a single array.
    fraction: the pruned fraction ``p`` in ``[0, 1]`` (a concrete number).
    where: ``(path, leaf) -> bool`` narrows the weight matrices that are
      pruned (default: the dense and convolution kernels; see
      :mod:`parewire_jax.selection`); a
      bare array is always pruned.

  Returns:
    ``params`` with the selected leaves pruned.

  >>> import jax, jax.numpy as jnp
  >>> w = random_prune(jax.random.key(0), jnp.ones((10, 3)), 0.3)
  >>> (w == 0).sum(axis=0).tolist()
  [3, 3, 3]
  """
  fraction = check_fraction(fraction)
  if isinstance(params, jax.Array):
    if not is_weight_matrix((), params):
      raise ValueError(
        f"params must be a tree or a floating array with ndim >= 2, got shape {params.shape} and dtype {params.dtype}."
      )
    return _prune_weight_vectors(leaf_key(key, ()), params, fraction)
  selected = select(params, where)
  return jax.tree_util.tree_map_with_path(
    lambda path, chosen, x: _prune_weight_vectors(leaf_key(key, path), x, fraction) if chosen else x,
    selected,
    params,
  )
