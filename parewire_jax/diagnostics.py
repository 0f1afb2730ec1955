"""How weights are organised and how far they moved: training metrics for LaPerm and beyond.

:func:`ranking_distance` is the change of each weight's rank within its
weight vector between two steps (LaPerm §3, Fig. 3); :func:`weight_deviation`
summarises how far weights moved from their initial values (large networks
trained well stay close to them, arXiv:2012.02550). Both are usable under
``jit`` as metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from parewire_jax.selection import Where, is_floating_array, is_weight_matrix, select
from parewire_jax.weight_vectors import rankings


class RankingDistance(NamedTuple):
  """Ranking distance of one weight array between two steps (§3, Fig. 3).

  Attributes:
    mean: ``D̄ / n``: the mean over all entries of ``|R_t − R_{t−1}|`` divided
      by the weight-vector size ``n`` (the paper plots ``D̄_t / 784``).
    std: ``SD[D] / n``: the population standard deviation, likewise relative.

  >>> import jax.numpy as jnp
  >>> d = ranking_distance(jnp.array([[1.0], [2.0]]), jnp.array([[2.0], [1.0]]))
  >>> type(d).__name__, float(d.mean)
  ('RankingDistance', 0.5)
  """

  mean: Array
  std: Array


class WeightDeviation(NamedTuple):
  """Distribution summary of ``Δ = w − w_init`` for one array (arXiv:2012.02550).

  Attributes:
    mean: mean of ``Δ``.
    std: population standard deviation of ``Δ``.
    mean_abs: mean of ``|Δ|``.
    max_abs: max of ``|Δ|``.
    relative: ``‖Δ‖ / ‖w_init‖`` (Frobenius norms; IEEE ``inf``/``nan`` when
      ``w_init`` is all zeros).

  >>> import jax.numpy as jnp
  >>> d = weight_deviation(jnp.array([[1.0, -1.0]]), jnp.array([[1.5, -1.5]]))
  >>> type(d).__name__, float(d.mean), float(d.mean_abs)
  ('WeightDeviation', 0.0, 0.5)
  """

  mean: Array
  std: Array
  mean_abs: Array
  max_abs: Array
  relative: Array


def _ranking_distance_one(w_prev: Array, w_cur: Array) -> RankingDistance:
  if w_prev.shape != w_cur.shape:
    raise ValueError(f"w_prev and w_cur must have the same shape, got {w_prev.shape} and {w_cur.shape}.")
  distance = jnp.abs(rankings(w_cur) - rankings(w_prev))
  distance = distance.astype(jnp.promote_types(w_cur.dtype, jnp.float32))
  n_in = distance.shape[1]
  return RankingDistance(distance.mean() / n_in, distance.std() / n_in)


def _weight_deviation_one(w_init: Array, w: Array) -> WeightDeviation:
  if w_init.shape != w.shape:
    raise ValueError(f"params_init and params leaves must have the same shape, got {w_init.shape} and {w.shape}.")
  dtype = jnp.promote_types(jnp.result_type(w_init, w), jnp.float32)
  w_init = w_init.astype(dtype)
  delta = w.astype(dtype) - w_init
  magnitude = jnp.abs(delta)
  return WeightDeviation(
    mean=delta.mean(),
    std=delta.std(),
    mean_abs=magnitude.mean(),
    max_abs=magnitude.max(),
    relative=jnp.linalg.norm(delta.ravel()) / jnp.linalg.norm(w_init.ravel()),
  )


def _per_leaf(fn: Callable[[Array, Array], Any], where: Where | None, first: Any, second: Any, eligible: Where) -> Any:
  """``fn`` on every selected leaf pair; ``None`` at unselected leaves."""
  if isinstance(first, jax.Array) and isinstance(second, jax.Array):
    return fn(first, second)
  selected = select(first, where, eligible=eligible)
  return jax.tree.map(lambda chosen, a, b: fn(a, b) if chosen else None, selected, first, second)


def ranking_distance(w_prev: Any, w_cur: Any, *, where: Where | None = None) -> Any:
  """Mean and SD of the change in rank within each weight vector (§3, Fig. 3).

  The ranking ``R_j`` of weight vector ``w_j`` holds the rank of each entry
  within the vector (ties by position); ``D_j = |R_{j,t} − R_{j,t−1}|``. Over
  all entries of a weight array the mean and population SD of ``D`` are
  returned divided by the weight-vector size ``n_in`` (Fig. 3 plots
  ``D̄_t / 784``). Weight vectors are laid out as by ``as_matrices(w,
  out_axis=-1)``.

  Args:
    w_prev: the weights at the earlier step: an array (ndim ≥ 2) or a tree.
    w_cur: the weights at the later step, same structure and shapes.
    where: for trees, ``(path, leaf) -> bool`` narrows the weight matrices
      measured (default: the dense and convolution kernels; see
      :mod:`parewire_jax.selection`).

  Returns:
    A :class:`RankingDistance` for arrays; for trees, a tree with a
    :class:`RankingDistance` at every selected leaf and ``None`` elsewhere.

  >>> import jax.numpy as jnp
  >>> d = ranking_distance(jnp.array([[1.], [2.], [3.], [4.]]),
  ...                      jnp.array([[4.], [2.], [3.], [1.]]))
  >>> float(d.mean), float(d.std)
  (0.375, 0.375)
  """
  return _per_leaf(_ranking_distance_one, where, w_prev, w_cur, is_weight_matrix)


def weight_deviation(params_init: Any, params: Any, *, where: Where | None = None) -> Any:
  """Per-array distribution summary of ``w − w_init`` (arXiv:2012.02550).

  Large networks trained well stay close to their initial weights; this
  tracks how far, per layer: mean, SD, mean and max of ``|Δ|``, and
  ``‖Δ‖/‖w_init‖``, computed in at least float32. Usable under ``jit`` as a
  metric.

  Args:
    params_init: the initial weights: an array or a tree.
    params: the current weights, same structure and shapes.
    where: for trees, ``(path, leaf) -> bool`` selects among the floating
      leaves (default: the dense and convolution kernels; pass ``lambda
      path, leaf: True`` to include biases; see :mod:`parewire_jax.selection`).

  Returns:
    A :class:`WeightDeviation` for arrays; for trees, a tree with one at every
    selected leaf and ``None`` elsewhere.

  >>> import jax.numpy as jnp
  >>> d = weight_deviation(jnp.array([3., 4.]), jnp.array([6., 8.]))
  >>> float(d.mean), float(d.max_abs), float(d.relative)
  (3.5, 4.0, 1.0)
  """
  return _per_leaf(_weight_deviation_one, where, params_init, params, is_floating_array)
