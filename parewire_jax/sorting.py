"""Exact sorts of floats through their bit patterns, shared by PA rewiring and LaPerm.

Both algorithms move weights by sorting them, and both must return a
permutation of their input bit for bit. Sorting the floats' bit patterns,
mapped so that integer order equals float order, is exact (no value is ever
computed) and, on XLA:CPU, several times faster than XLA's float comparator
(``benchmarks/profile_step.py``; figures in ``benchmarks/RESULTS.md``).

XLA:CPU sorts a single int32 operand with a fast specialised path, and a
key–index pair (what ``argsort`` lowers to) through a generic comparator,
about 7× slower. So the CPU paths here are built from single-operand sorts:
:func:`stable_rank` needs one, :func:`stable_argsort` two. Other platforms
sort key–index pairs, which their sort kernels do well. Each function
computes the same result on every platform; only the way differs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import DTypeLike


def to_sortable_bits(x: Array) -> Array:
  """Order-preserving map from floats to same-width signed integers.

  Non-negative floats already order like their bit patterns; for negative ones
  the magnitude bits are flipped. The map is an involution on the bits (the
  sign bit is unchanged), so :func:`from_sortable_bits` uses it again. NaNs
  land beyond ±Inf according to their sign bit, which only matters in that
  every value is still moved, never lost.

  >>> import jax.numpy as jnp
  >>> to_sortable_bits(jnp.array([-1.0, -0.0, 0.0, 1.0])).tolist()
  [-1065353217, -1, 0, 1065353216]
  """
  int_dtype = jnp.dtype(f"int{jnp.finfo(x.dtype).bits}")
  bits = lax.bitcast_convert_type(x, int_dtype)
  magnitude = jnp.array(jnp.iinfo(int_dtype).max, int_dtype)
  sign = lax.shift_right_arithmetic(bits, jnp.array(jnp.finfo(x.dtype).bits - 1, int_dtype))
  return bits ^ (sign & magnitude)


def from_sortable_bits(bits: Array, dtype: DTypeLike) -> Array:
  """Inverse of :func:`to_sortable_bits`: the floats of ``dtype``, bit for bit."""
  magnitude = jnp.array(jnp.iinfo(bits.dtype).max, bits.dtype)
  sign = lax.shift_right_arithmetic(bits, jnp.array(jnp.iinfo(bits.dtype).bits - 1, bits.dtype))
  return lax.bitcast_convert_type(bits ^ (sign & magnitude), dtype)


def sort_exact(x: Array) -> Array:
  """Sorts ``x`` ascending along its last axis by bit pattern (exact, fast).

  Orders like ``jnp.sort`` for all non-NaN values (``-0.0`` before ``+0.0``);
  the result is a permutation of ``x`` bit for bit.

  >>> import jax.numpy as jnp
  >>> sort_exact(jnp.array([3.0, -0.0, -2.0, 0.0])).tolist()
  [-2.0, -0.0, 0.0, 3.0]
  """
  return from_sortable_bits(lax.sort(to_sortable_bits(x)), x.dtype)


def stable_argsort_pairs(bits: Array) -> Array:
  """Stable argsort of integer keys along the last axis: one key–index pair sort."""
  iota = lax.broadcasted_iota(jnp.int32, bits.shape, bits.ndim - 1)
  return lax.sort((bits, iota), num_keys=1, is_stable=True)[1]


def stable_argsort_packed(bits: Array) -> Array:
  """Stable argsort of 1-D int32 keys with two single-operand int32 sorts.

  XLA:CPU sorts one int32 operand several times faster than a key–index pair.
  First sort the keys; each key's rank among smaller keys (a binary search)
  fits in ``b = ceil(log2 n)`` bits, so ``rank << b | index`` is a unique int32
  whose sorted order is exactly the stable argsort, read from its low bits.
  Falls back to :func:`stable_argsort_pairs` when ``2b > 31``.
  """
  n = bits.shape[-1]
  b = max(1, (n - 1).bit_length())
  if 2 * b > 31:
    return stable_argsort_pairs(bits)
  rank = jnp.searchsorted(lax.sort(bits), bits, side="left", method="scan")
  iota = lax.broadcasted_iota(jnp.int32, bits.shape, bits.ndim - 1)
  packed = lax.sort(lax.shift_left(rank.astype(jnp.int32), jnp.int32(b)) | iota)
  return packed & jnp.int32((1 << b) - 1)


def stable_rank_by_search(bits: Array) -> Array:
  """Stable ascending rank of 1-D integer keys with one single-operand sort.

  ``rank[i]`` is the position of element ``i`` in the stable ascending order:
  the number of smaller keys (a binary search in the sorted keys) plus, for a
  key that several elements share, the number of earlier elements sharing it.
  Equal keys are rare with continuous noise but do occur (float32 keys of a
  few thousand draws collide now and then), so they are settled exactly, in
  rounds: each round hands the next position of every group of equal keys to
  its lowest-index member still unplaced; a round per extra member of the
  largest group, none when all keys differ. A ``while_loop``, so it stays
  cheap under ``vmap``, where a ``cond`` would run both branches.
  """
  n = bits.shape[-1]
  iota = lax.iota(jnp.int32, n)
  ordered = lax.sort(bits)
  first = jnp.searchsorted(ordered, bits, side="left", method="scan").astype(jnp.int32)
  # ordered[first] == bits, so an element shares its key iff the next position holds it too
  shared = (first + 1 < n) & (ordered[jnp.minimum(first + 1, n - 1)] == bits)

  def place_lowest(state):
    rank, unplaced, round_ = state
    lowest = jnp.full((n,), n, jnp.int32).at[first].min(jnp.where(unplaced, iota, n))
    placed = unplaced & (lowest[first] == iota)
    return jnp.where(placed, first + round_, rank), unplaced & ~placed, round_ + 1

  rank, _, _ = lax.while_loop(lambda state: jnp.any(state[1]), place_lowest, (first, shared, jnp.int32(0)))
  return rank


def _inverse(ranking: Array) -> Array:
  iota = lax.broadcasted_iota(jnp.int32, ranking.shape, ranking.ndim - 1)
  return jnp.put_along_axis(jnp.zeros_like(iota), ranking, iota, axis=-1, inplace=False)


def _rank_from_argsort(bits: Array) -> Array:
  """The inverse permutation of :func:`stable_argsort_pairs`: the same ranks through a pair sort."""
  return _inverse(stable_argsort_pairs(bits))


def _rank_from_packed(bits: Array) -> Array:
  """The inverse permutation of :func:`stable_argsort_packed`: the same ranks through two int32 sorts."""
  return _inverse(stable_argsort_packed(bits))


def stable_rank(x: Array, *, search_on_cpu: bool = True) -> Array:
  """Each element's position in the stable ascending order, by exact bit-pattern order.

  The inverse permutation of :func:`stable_argsort`: ``stable_rank(x)[i] == k``
  exactly when ``stable_argsort(x)[k] == i``, so ``sorted_values[stable_rank(x)]``
  places the k-th smallest value where ``x``'s k-th smallest element is. On the
  CPU it costs one single-operand sort and a binary search
  (:func:`stable_rank_by_search`); elsewhere a key–index pair sort. The result
  is the same on every platform. The search settles equal keys in a
  ``while_loop``, whose condition ``vmap`` reduces over the batch: a caller
  that will be ``vmap``-ed over a sharded axis passes ``search_on_cpu=False``
  for the CPU's two-sort path without control flow (same result, no
  collective).

  >>> import jax.numpy as jnp
  >>> stable_rank(jnp.array([0.5, -1.0, 0.5, 0.0])).tolist()
  [2, 0, 3, 1]
  """
  bits = to_sortable_bits(x.astype(jnp.float32)) if jnp.finfo(x.dtype).bits <= 32 else to_sortable_bits(x)
  on_cpu = stable_rank_by_search if search_on_cpu else _rank_from_packed
  for _ in range(bits.ndim - 1):
    on_cpu = jax.vmap(on_cpu)  # searchsorted is 1-D
  return lax.platform_dependent(bits, cpu=on_cpu, default=_rank_from_argsort)


def stable_argsort(x: Array) -> Array:
  """Stable ascending argsort along the last axis, by exact bit-pattern order.

  Orders like ``numpy.argsort(x, kind="stable")`` for non-NaN values, with
  ``-0.0`` before ``+0.0``. The result is the same on every platform; only the
  way it is computed differs: two int32 sorts on the CPU
  (:func:`stable_argsort_packed`), a key–index pair sort elsewhere.

  >>> import jax.numpy as jnp
  >>> stable_argsort(jnp.array([0.5, -1.0, 0.5, 0.0])).tolist()
  [1, 3, 0, 2]
  """
  if jnp.finfo(x.dtype).bits > 32:
    return stable_argsort_pairs(to_sortable_bits(x))
  bits = to_sortable_bits(x.astype(jnp.float32))  # exact for 16-bit floats
  packed = stable_argsort_packed
  for _ in range(bits.ndim - 1):
    packed = jax.vmap(packed)  # searchsorted is 1-D
  return lax.platform_dependent(bits, cpu=packed, default=stable_argsort_pairs)
