"""Preferential-attachment (PA) rewiring, Algorithm 1 of Scabini et al. (2022).

The algorithm lives here, once. Everything else (initializers, whole-tree
rewiring, experiments) calls :func:`pa_rewire` or :func:`rewire`.

Algorithm 1 (§3.3) on a matrix ``W`` of shape ``(n_in, n_out)``: column 0 keeps
its order; for each later column ``t`` the running input strengths
``s = W[:, :t].sum(1)`` (already rewired, Eq. 6) give the PA probabilities

    P(i) ∝ s_i + |min s| + offset                                  (Eq. 5)

a ranking of the inputs is drawn by weighted sampling without replacement, and
the k-th smallest weight of column ``t`` moves to the k-th drawn input. Inputs
with a high strength tend to be drawn first and so receive the most negative
weights, which pulls every input strength towards zero. That is pass ``"in"``;
pass ``"out"`` is the same on the transpose (rows rewired among outputs, so the
output strengths shrink), and the paper applies both (§3.3, Fig. 2).

Implementation notes (why it is shaped like this):

* Weighted sampling without replacement is done with the Gumbel-top-k trick:
  ordering ``log P(i) + G_i`` (``G_i`` i.i.d. standard Gumbel) decreasingly gives
  exactly the sequential draw of ``numpy.random.choice(n, n, replace=False,
  p=P)`` (a Plackett–Luce sample), but in one sort and without host syncs.
* Only the strengths are sequential. Sorting every column is hoisted out of
  the ``lax.scan``; each step then does one O(n log n) argsort, a scatter and a
  strength update. The scan carries the sorted copy and overwrites one column
  per step in place, so a pass needs one working buffer the size of the matrix
  (two during the transpose between passes; XLA:CPU's memory analysis of
  both passes: temporaries = 2× the matrix, 3× before this layout).
* All sorts run on integer bit patterns (an order-preserving bit-cast), which
  is exact and, on the CPU, several times faster than XLA's float comparator.
  On the CPU the per-step argsort is two single-operand int32 sorts (see
  :func:`_stable_argsort_packed`); elsewhere a key–index pair sort. Both return
  the same stable argsort, so results do not depend on the platform.
* The output is assembled by scattering each sorted column into the drawn
  positions, so it is a permutation of the input bit for bit; NaN, Inf and
  signed zeros are moved like any other value, never produced or dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from parewire_jax.axes import AxisSpec, as_matrices, from_matrices

PASSES = ("in", "out")


def check_passes(passes: Sequence[str]) -> tuple[str, ...]:
  """Validates a sequence of pass names and returns it as a tuple."""
  if isinstance(passes, str):
    raise ValueError(
      f"passes must be a sequence of pass names, got the string {passes!r}; write ({passes!r},) for a single pass."
    )
  passes = tuple(passes)
  unknown = [p for p in passes if p not in PASSES]
  if unknown:
    raise ValueError(f"passes={passes!r} contains unknown pass name(s) {unknown}; each pass must be one of {PASSES}.")
  return passes


def check_offset(offset: float) -> float:
  """Validates Eq. 5's additive constant (the paper uses 1)."""
  try:
    value = float(offset)
  except (TypeError, jax.errors.ConcretizationTypeError) as e:
    raise ValueError(f"offset must be a positive Python number, got {offset!r}.") from e
  if not value > 0 or value != value or value == float("inf"):
    raise ValueError(f"offset must be a finite number > 0, got {offset!r}.")
  return value


def check_floating(dtype, name: str = "dtype") -> None:
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
      f"{name} must be a real floating dtype (float16, bfloat16, float32, float64), got {jnp.dtype(dtype).name}."
    )


def as_typed_key(key) -> Array:
  """Validates a single PRNG key; a legacy raw key becomes the typed key with the same bits.

  Accepts a typed key (``jax.random.key``) or a legacy ``uint32`` key
  (``jax.random.PRNGKey``). Typed keys let legacy-key calls share compiled code
  with typed-key calls; every derived key (splits, folds) has the same bits
  either way.
  """
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape == ():
      return key
  elif isinstance(key, (jax.Array, np.ndarray)) and key.dtype == jnp.uint32 and key.ndim == 1:
    try:
      return jax.random.wrap_key_data(key)  # e.g. jax.random.PRNGKey(0)
    except (TypeError, ValueError):
      pass  # not the default implementation's key shape
  raise ValueError(
    "key must be a single PRNG key (jax.random.key(seed) or a legacy jax.random.PRNGKey(seed)), "
    f"got {type(key).__name__} with shape {getattr(key, 'shape', None)} and dtype {getattr(key, 'dtype', None)}."
  )


def check_array(x, name: str) -> None:
  if not (hasattr(x, "shape") and hasattr(x, "dtype")):
    raise ValueError(f"{name} must be a JAX or NumPy array, got {type(x).__name__}.")


def explicit_sharding(x):
  """``x``'s sharding if its type carries one (mesh axes of type Explicit), else None."""
  sharding = getattr(jax.typeof(x), "sharding", None)
  spec = getattr(sharding, "spec", ())
  return sharding if any(s is not None for s in spec) else None


def _sortable_bits(x: Array) -> Array:
  """Order-preserving map from floats to same-width signed integers.

  Non-negative floats already order like their bit patterns; for negative ones
  the magnitude bits are flipped. The map is an involution on the bits (the
  sign bit is unchanged), so :func:`_from_sortable_bits` uses it again. NaNs
  land beyond ±Inf according to their sign bit, which only matters in that
  every value is still moved, never lost.
  """
  int_dtype = jnp.dtype(f"int{jnp.finfo(x.dtype).bits}")
  bits = lax.bitcast_convert_type(x, int_dtype)
  magnitude = jnp.array(jnp.iinfo(int_dtype).max, int_dtype)
  sign = lax.shift_right_arithmetic(bits, jnp.array(jnp.finfo(x.dtype).bits - 1, int_dtype))
  return bits ^ (sign & magnitude)


def _from_sortable_bits(bits: Array, dtype) -> Array:
  magnitude = jnp.array(jnp.iinfo(bits.dtype).max, bits.dtype)
  sign = lax.shift_right_arithmetic(bits, jnp.array(jnp.iinfo(bits.dtype).bits - 1, bits.dtype))
  return lax.bitcast_convert_type(bits ^ (sign & magnitude), dtype)


def sort_exact(x: Array) -> Array:
  """Sorts ``x`` ascending along its last axis by bit pattern (exact, fast).

  Orders like ``jnp.sort`` for all non-NaN values (``-0.0`` before ``+0.0``);
  the result is a permutation of ``x`` bit for bit.
  """
  return _from_sortable_bits(lax.sort(_sortable_bits(x)), x.dtype)


def _stable_argsort_pairs(bits: Array) -> Array:
  iota = lax.broadcasted_iota(jnp.int32, bits.shape, bits.ndim - 1)
  return lax.sort((bits, iota), num_keys=1, is_stable=True)[1]


def _stable_argsort_packed(bits: Array) -> Array:
  """Stable argsort of int32 keys with two single-operand int32 sorts.

  XLA:CPU sorts one int32 operand several times faster than a key–index pair.
  First sort the keys; each key's rank among smaller keys (a binary search)
  fits in ``b = ceil(log2 n)`` bits, so ``rank << b | index`` is a unique int32
  whose sorted order is exactly the stable argsort, read from its low bits.
  """
  n = bits.shape[-1]
  b = max(1, (n - 1).bit_length())
  if 2 * b > 31:
    return _stable_argsort_pairs(bits)
  rank = jnp.searchsorted(lax.sort(bits), bits, side="left", method="scan")
  iota = lax.broadcasted_iota(jnp.int32, bits.shape, bits.ndim - 1)
  packed = lax.sort(lax.shift_left(rank.astype(jnp.int32), jnp.int32(b)) | iota)
  return packed & jnp.int32((1 << b) - 1)


def stable_argsort(x: Array) -> Array:
  """Stable ascending argsort along the last axis, by exact bit-pattern order.

  Orders like ``numpy.argsort(x, kind="stable")`` for non-NaN values, with
  ``-0.0`` before ``+0.0``. The result is the same on every platform; only the
  way it is computed differs (see :func:`_stable_argsort_packed`).
  """
  if jnp.finfo(x.dtype).bits > 32:
    return _stable_argsort_pairs(_sortable_bits(x))
  bits = _sortable_bits(x.astype(jnp.float32))  # exact for 16-bit floats
  packed = _stable_argsort_packed
  for _ in range(bits.ndim - 1):
    packed = jax.vmap(packed)  # searchsorted is 1-D
  return lax.platform_dependent(bits, cpu=packed, default=_stable_argsort_pairs)


def _rewire_rows(key: Array, rows: Array, dtype, offset: float) -> Array:
  """Pass "in" of Algorithm 1 with the matrix's columns as the rows of ``rows``.

  ``rows[t]`` holds the weights of output neuron ``t`` over the inputs, as
  sortable bits (:func:`_sortable_bits`). Row 0 keeps its order; every later
  row is sorted once, outside the scan, and then rewired in place: the scan
  carries the whole matrix and overwrites row ``t`` at step ``t``, so the only
  working buffer is the sorted copy (no stacked scan output, no concatenation).
  Weights become floats only for the strengths: XLA:CPU computes some 16-bit
  float data movement in float32, which would canonicalise NaN payloads.
  """
  n_rows, n_in = rows.shape
  if n_in < 2 or n_rows < 2:
    return rows  # one input or one column: every ranking leaves w as it is
  acc_dtype = jnp.promote_types(dtype, jnp.float32)

  def values(row_bits):
    return _from_sortable_bits(row_bits, dtype).astype(acc_dtype)

  first = rows[0]
  working = lax.sort(rows).at[0].set(first)  # every later row ascending; hoisted out of the scan
  step_keys = jax.random.split(key, n_rows - 1)

  def step(carry, inputs):
    strength, working = carry
    t, step_key = inputs
    row_sorted = lax.dynamic_index_in_dim(working, t, keepdims=False)
    log_p = jnp.log(strength + jnp.abs(jnp.min(strength)) + offset)  # Eq. 5
    gumbel = jax.random.gumbel(step_key, strength.shape, jnp.float32)
    ranking = stable_argsort(-(log_p.astype(jnp.float32) + gumbel))
    row = jnp.zeros_like(row_sorted).at[ranking].set(row_sorted, unique_indices=True)
    working = lax.dynamic_update_index_in_dim(working, row, t, 0)
    return (strength + values(row), working), None  # Eq. 6

  steps = jnp.arange(1, n_rows, dtype=jnp.int32)
  (_, working), _ = lax.scan(step, (values(first), working), (steps, step_keys))
  return working


def pa_rewire(
  key: Array,
  matrix: Array,
  *,
  passes: Sequence[str] = PASSES,
  offset: float = 1.0,
) -> Array:
  """PA-rewires a ``(n_in, n_out)`` weight matrix (Algorithm 1, §3.3).

  Args:
    key: a PRNG key (typed ``jax.random.key`` or legacy ``uint32[2]``). Pass
      ``j`` uses ``jax.random.split(key, len(passes))[j]`` and, within it, the
      draw for column ``t`` uses ``split(pass_key, n - 1)[t - 1]``.
    matrix: a floating ``(n_in, n_out)`` matrix in Flax orientation: column
      ``x`` holds the incoming weights of output neuron ``x``.
    passes: the passes to apply, in order. ``"in"`` rewires every column among
      the inputs so that input strengths (row sums) shrink (Algorithm 1);
      ``"out"`` does the same on the transpose, shrinking output strengths
      (column sums). The paper applies ``("in", "out")`` (§3.3, Fig. 1b–c).
    offset: the constant added in Eq. 5 so no input has zero probability (the
      paper's 1). Must be > 0.

  Returns:
    An array of the same shape and dtype whose every column (pass ``"in"``) or
    row (pass ``"out"``) is a permutation of the corresponding one of the
    input; overall a bit-exact permutation of ``matrix``. NaN or Inf weights
    are moved like any other weight, so nothing is lost, but they make the
    strengths non-finite and the subsequent draws uniform-by-index.

  >>> import jax, jax.numpy as jnp
  >>> w = jax.random.normal(jax.random.key(0), (256, 256))
  >>> r = pa_rewire(jax.random.key(1), w)
  >>> bool((jnp.sort(r.ravel()) == jnp.sort(w.ravel())).all())
  True
  >>> bool(r.sum(1).var() < w.sum(1).var() / 10)
  True
  """
  passes = check_passes(passes)
  offset = check_offset(offset)
  key = as_typed_key(key)
  check_array(matrix, "matrix")
  if jnp.ndim(matrix) != 2:
    raise ValueError(
      f"matrix must be 2-D (n_in, n_out), got shape {jnp.shape(matrix)}; use rewire() or rewired() for other ranks."
    )
  check_floating(matrix.dtype, "matrix.dtype")
  if matrix.size == 0 or not passes:
    return matrix
  sharding = explicit_sharding(matrix)
  if sharding is not None:
    # Explicit mesh axes type every intermediate, and sorting along a sharded
    # axis is then an error: let the SPMD partitioner place the work.
    return jax.sharding.auto_axes(lambda k, m: _pa_rewire(k, m, passes, offset), out_sharding=sharding)(key, matrix)
  return _pa_rewire(key, matrix, passes, offset)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _pa_rewire(key: Array, w: Array, passes: tuple[str, ...], offset: float) -> Array:
  # jit so that eager calls (e.g. nnx modules built outside jit) compile once per shape.
  # Pass "in" permutes the columns of w, pass "out" its rows; _rewire_rows works
  # on rows, so w is transposed only when the next pass needs the other view.
  bits, transposed = _sortable_bits(w), False
  for pass_key, name in zip(jax.random.split(key, len(passes)), passes):
    if transposed != (name == "in"):
      bits, transposed = bits.T, not transposed
    bits = _rewire_rows(pass_key, bits, w.dtype, offset)
  return _from_sortable_bits(bits.T if transposed else bits, w.dtype)


def rewire(
  key: Array,
  x: Array,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  passes: Sequence[str] = PASSES,
  offset: float = 1.0,
) -> Array:
  """PA-rewires an array of any rank ≥ 2, viewed as matrices (§3.1).

  Inputs are all axes that are neither ``out_axis`` nor ``batch_axis``, so a
  convolution kernel ``(kh, kw, c_in, c_out)`` has ``kh·kw·c_in`` inputs. Each
  ``batch_axis`` index is an independent matrix; all of them are rewired
  together in one batched (``vmap``-ed) scan. Without batch axes the matrix
  uses ``key`` itself, so ``rewire(k, w)`` equals ``pa_rewire(k, w)`` for 2-D
  ``w``; with batch axes matrix ``b`` (row-major over the batch axes) uses
  ``jax.random.split(key, num_matrices)[b]``.

  >>> import jax
  >>> kernel = jax.random.normal(jax.random.key(0), (3, 3, 8, 16))
  >>> rewire(jax.random.key(1), kernel).shape
  (3, 3, 8, 16)
  """
  passes = check_passes(passes)
  offset = check_offset(offset)
  key = as_typed_key(key)
  check_array(x, "x")
  sharding = explicit_sharding(x)
  if sharding is not None:
    # As in pa_rewire: reshapes, sorts and the vmap over matrices run on auto
    # axes; the result keeps x's sharding.
    return jax.sharding.auto_axes(
      functools.partial(rewire, out_axis=out_axis, batch_axis=batch_axis, passes=passes, offset=offset),
      out_sharding=sharding,
    )(key, x)
  matrices, layout = as_matrices(x, out_axis, batch_axis)
  check_floating(x.dtype, "x.dtype")
  if x.size == 0:
    return x

  def rewire_one(k, m):
    return pa_rewire(k, m, passes=passes, offset=offset)

  if not layout.batch_axes:
    rewired = rewire_one(key, matrices[0])[None]
  else:
    rewired = jax.vmap(rewire_one)(jax.random.split(key, layout.num_matrices), matrices)
  return from_matrices(rewired, layout)
