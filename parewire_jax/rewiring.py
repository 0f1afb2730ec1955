"""Preferential-attachment (PA) rewiring, Algorithm 1 of Scabini et al. (2022).

The algorithm lives here, once: :func:`rewire_stack` rewires a stack of
matrices with their keys, and every entry point (:func:`pa_rewire`,
:func:`rewire`, :func:`parewire_jax.rewired`, :func:`parewire_jax.rewire_params`)
validates its arguments once and calls it.

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
  (two during the transpose between passes; ``tests/test_rewiring.py`` pins
  this down on XLA's memory analysis).
* All sorts run on integer bit patterns (:mod:`parewire_jax.sorting`), which
  is exact and, on the CPU, faster than XLA's float comparator. The per-step
  argsort computes the same stable argsort on every platform, so results do
  not depend on it.
* The output is assembled by scattering each sorted column into the drawn
  positions, so it is a permutation of the input bit for bit; NaN, Inf and
  signed zeros are moved like any other value, never produced or dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.extend as jex
import jax.numpy as jnp
from jax import Array, lax
from jax.sharding import Sharding

from parewire_jax._checks import (
  PASSES,
  Pass,
  as_typed_key,
  check_array,
  check_bool,
  check_floating,
  check_offset,
  check_passes,
)
from parewire_jax.axes import AxisSpec, as_matrices, from_matrices, matrix_layout
from parewire_jax.sorting import from_sortable_bits, stable_rank, to_sortable_bits


def explicit_sharding(x: Array) -> Sharding | None:
  """``x``'s sharding if its type carries one (mesh axes of type Explicit), else None."""
  sharding = getattr(jax.typeof(x), "sharding", None)
  spec = getattr(sharding, "spec", ())
  return sharding if any(s is not None for s in spec) else None


def _keeping_explicit_sharding(fn: Callable[[Array, Array], Array], key: Array, x: Array) -> Array:
  """``fn(key, x)``; on auto axes when ``x`` is typed with Explicit mesh axes.

  Explicit mesh axes type every intermediate, and sorting along a sharded axis
  is then an error: the SPMD partitioner places the work instead, and the
  result keeps ``x``'s sharding.
  """
  sharding = explicit_sharding(x)
  if sharding is None:
    return fn(key, x)
  return jax.sharding.auto_axes(fn, out_sharding=sharding)(key, x)  # pyright: ignore[reportCallIssue]


def _rewire_rows(key: Array, rows: Array, dtype: jnp.dtype, offset: float, scale: Array | None, batched: bool) -> Array:
  """Pass "in" of Algorithm 1 with the matrix's columns as the rows of ``rows``.

  ``rows[t]`` holds the weights of output neuron ``t`` over the inputs, as
  sortable bits (:func:`parewire_jax.sorting.to_sortable_bits`). Row 0 keeps
  its order; every later row is sorted once, outside the scan, and then
  rewired in place: the scan carries the whole matrix and overwrites row
  ``t`` at step ``t``, so the only working buffer is the sorted copy (no
  stacked scan output, no concatenation). The sorts of the rows and the step
  keys are outside the loop; a step is Eq. 5, its Gumbel noise, one stable
  rank (:func:`parewire_jax.sorting.stable_rank`: one single-operand sort on
  the CPU), a gather and Eq. 6. The noise stays in the loop on purpose: drawn
  for all steps at once, threefry's intermediates took three more
  matrix-sized float32 buffers per pass (XLA:CPU's memory analysis).
  Weights become floats only for the strengths: XLA:CPU computes some 16-bit
  float data movement in float32, which would canonicalise NaN payloads.
  ``scale`` (or None) multiplies the weights in the strengths only.
  ``batched``: the caller ``vmap``s this over a stack that may be sharded, so
  the CPU's rank avoids control flow (:func:`parewire_jax.sorting.stable_rank`).
  """
  n_rows, n_in = rows.shape
  if n_in < 2 or n_rows < 2:
    return rows  # one input or one column: every ranking leaves w as it is
  acc_dtype = jnp.promote_types(dtype, jnp.float32)

  def values(row_bits):
    v = from_sortable_bits(row_bits, dtype).astype(acc_dtype)
    return v if scale is None else v * scale.astype(acc_dtype)

  first = rows[0]
  working = lax.sort(rows).at[0].set(first)  # every later row ascending
  step_keys = jax.random.split(key, n_rows - 1)

  def step(carry, inputs):
    strength, working = carry
    t, step_key = inputs
    gumbel = jax.random.gumbel(step_key, (n_in,), jnp.float32)
    row_sorted = lax.dynamic_index_in_dim(working, t, keepdims=False)
    log_p = jnp.log(strength + jnp.abs(jnp.min(strength)) + offset)  # Eq. 5
    # The k-th smallest weight goes to the k-th input of the Gumbel-top-k draw.
    row = row_sorted[stable_rank(-(log_p.astype(jnp.float32) + gumbel), search_on_cpu=not batched)]
    working = lax.dynamic_update_index_in_dim(working, row, t, 0)
    return (strength + values(row), working), None  # Eq. 6

  steps = jnp.arange(1, n_rows, dtype=jnp.int32)
  (_, working), _ = lax.scan(step, (values(first), working), (steps, step_keys))
  return working


def kaiming_scale(w: Array) -> Array:
  """The factor that gives ``w`` the Kaiming-normal std ``sqrt(2 / n_in)`` (1 where ``w`` has none).

  ``w`` is an ``(n_in, n_out)`` matrix; its std is computed in float32 (or
  float64). An all-equal or non-finite matrix has no usable scale and gets 1.
  """
  acc_dtype = jnp.promote_types(w.dtype, jnp.float32)
  std = jnp.std(w.astype(acc_dtype))
  target = jnp.sqrt(jnp.asarray(2.0 / w.shape[0], acc_dtype))
  usable = jnp.isfinite(std) & (std > 0)
  return jnp.where(usable, target / jnp.where(usable, std, 1), 1).astype(acc_dtype)


def _rewire_matrix(
  key: Array, w: Array, passes: tuple[Pass, ...], offset: float, scale_free: bool, batched: bool = False
) -> Array:
  """The passes of Algorithm 1 on one ``(n_in, n_out)`` matrix, with its key.

  Pass ``"in"`` permutes the columns of ``w``, pass ``"out"`` its rows;
  :func:`_rewire_rows` works on rows, so ``w`` is transposed only when the
  next pass needs the other view. With ``scale_free`` every pass computes
  its strengths from ``w`` rescaled by :func:`kaiming_scale` (the weights
  moved are still ``w``'s own bits).
  """
  scale = kaiming_scale(w) if scale_free else None
  bits, transposed = to_sortable_bits(w), False
  for pass_key, name in zip(jax.random.split(key, len(passes)), passes, strict=True):
    if transposed != (name == "in"):
      bits, transposed = bits.T, not transposed
    bits = _rewire_rows(pass_key, bits, w.dtype, offset, scale, batched)
  return from_sortable_bits(bits.T if transposed else bits, w.dtype)


@functools.partial(jax.jit, static_argnames=("passes", "offset", "scale_free", "loop_on_cpu"))
def rewire_stack(
  keys: Array,
  matrices: Array,
  *,
  passes: tuple[Pass, ...],
  offset: float,
  scale_free: bool = False,
  loop_on_cpu: bool = False,
) -> Array:
  """The engine behind every entry point: rewires a ``(batch, n_in, n_out)`` stack.

  Matrix ``b`` is rewired with ``keys[b]`` (a typed key array of shape
  ``(batch,)``); pass ``j`` uses ``jax.random.split(keys[b], len(passes))[j]``.
  A stack of several matrices runs as one ``vmap``-ed scan per pass; with
  ``loop_on_cpu``, as a loop around the one scan on the CPU
  (:func:`over_stack`), for stacks the library builds from separate leaves
  (:func:`parewire_jax.rewire_params`). A user's stack keeps ``vmap``
  everywhere: sharded over its layer axis, each device then rewires its own
  layers without communication, where a loop would gather them. Internal:
  arguments are not validated here; :func:`pa_rewire`, :func:`rewire` and
  :func:`parewire_jax.rewire_params` check them once and call this. Jitted, so
  eager callers (e.g. nnx modules built outside ``jit``) compile once per
  shape.
  """
  if matrices.size == 0 or not passes:
    return matrices
  if matrices.shape[0] == 1:
    return _rewire_matrix(keys[0], matrices[0], passes, offset, scale_free)[None]
  rewire_one = functools.partial(_rewire_matrix, passes=passes, offset=offset, scale_free=scale_free)
  if loop_on_cpu:
    return over_stack(rewire_one)(keys, matrices)
  return jax.vmap(functools.partial(rewire_one, batched=True))(keys, matrices)


def over_stack(fn: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
  """``fn(key, matrix)`` over a stack ``(keys, matrices)``: a loop on the CPU, ``vmap`` elsewhere.

  Each matrix is computed exactly as alone either way, so the results do not
  depend on the platform. On a GPU or TPU a step of many matrices costs about
  what one costs, so they run together (``vmap``). XLA:CPU is bound by the
  work of the sorts, not by latency, and compiles a ``vmap``-ed scan slower
  than a loop around the plain one, which also runs no slower
  (``benchmarks/RESULTS.md``). The loop rewires the stack in place, one
  matrix at a time, so it needs one matrix of working memory beyond the
  stack. ``fn`` is traced once, for both.
  """

  def stacked(keys: Array, matrices: Array) -> Array:
    one = jax.make_jaxpr(fn)(keys[0], matrices[0])
    rewire_one = lambda k, m: jex.core.jaxpr_as_fun(one)(k, m)[0]  # noqa: E731

    def looped(keys, matrices):
      def body(b, stack):
        return lax.dynamic_update_index_in_dim(stack, rewire_one(keys[b], stack[b]), b, 0)

      return lax.fori_loop(0, matrices.shape[0], body, matrices)

    return lax.platform_dependent(keys, matrices, cpu=looped, default=jax.vmap(rewire_one))

  return stacked


def pa_rewire(
  key: Array,
  matrix: Array,
  *,
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
  scale_free: bool = False,
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
    scale_free: compute the strengths of Eq. 5–6 as if ``matrix`` had the
      Kaiming-normal std ``sqrt(2 / n_in)`` the paper's experiments used
      (§4.1), i.e. from ``matrix * kaiming_scale(matrix)``; the weights moved
      are still ``matrix``'s own bits. Eq. 5's additive ``offset`` is not
      scale-free: next to it the strengths of a std-0.02 kernel (BERT, GPT,
      LLaMA inits) are small and the draws nearly uniform, so such kernels
      lose much less strength variance than Kaiming-scale ones. Default
      ``False``: the paper's Algorithm 1 unchanged.

  Returns:
    An array of the same shape and dtype whose every column (pass ``"in"``) or
    row (pass ``"out"``) is a permutation of the corresponding one of the
    input; overall a bit-exact permutation of ``matrix``. NaN or Inf weights
    are moved like any other weight, so nothing is lost, but they make the
    strengths non-finite and the subsequent draws uniform-by-index.

  Raises:
    ValueError: for a bad ``key``, ``passes`` or ``offset``, or a ``matrix``
      that is not a 2-D floating array.

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
  scale_free = check_bool(scale_free, "scale_free")
  key = as_typed_key(key)
  check_array(matrix, "matrix")
  if jnp.ndim(matrix) != 2:
    raise ValueError(
      f"matrix must be 2-D (n_in, n_out), got shape {jnp.shape(matrix)}; use rewire() or rewired() for other ranks."
    )
  check_floating(matrix.dtype, "matrix.dtype")
  if matrix.size == 0 or not passes:
    return matrix

  def run(k: Array, m: Array) -> Array:
    return rewire_stack(k[None], m[None], passes=passes, offset=offset, scale_free=scale_free)[0]

  return _keeping_explicit_sharding(run, key, matrix)


def rewire(
  key: Array,
  x: Array,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
  scale_free: bool = False,
) -> Array:
  """PA-rewires an array of any rank ≥ 2, viewed as matrices (§3.1).

  Inputs are all axes that are neither ``out_axis`` nor ``batch_axis``, so a
  convolution kernel ``(kh, kw, c_in, c_out)`` has ``kh·kw·c_in`` inputs. Each
  ``batch_axis`` index is an independent matrix; all of them are rewired
  together in one batched (``vmap``-ed) scan. Without batch axes the matrix
  uses ``key`` itself, so ``rewire(k, w)`` equals ``pa_rewire(k, w)`` for 2-D
  ``w``; with batch axes matrix ``b`` (row-major over the batch axes) uses
  ``jax.random.split(key, num_matrices)[b]``.

  Args:
    key: a PRNG key, as in :func:`pa_rewire`.
    x: a floating array of rank ≥ 2.
    out_axis: axis or axes of the output neurons (Flax kernels: ``-1``).
    batch_axis: axes indexing independent matrices (stacked layers).
    passes, offset, scale_free: as in :func:`pa_rewire` (``scale_free`` uses
      each matrix's own ``n_in``: ``kh·kw·c_in`` for a convolution kernel).

  Returns:
    A bit-exact permutation of ``x`` with the same shape, dtype and sharding.

  Raises:
    ValueError: as :func:`pa_rewire`, and for axes that do not fit ``x``
      (see :func:`parewire_jax.matrix_layout`).

  >>> import jax
  >>> kernel = jax.random.normal(jax.random.key(0), (3, 3, 8, 16))
  >>> rewire(jax.random.key(1), kernel).shape
  (3, 3, 8, 16)
  """
  passes = check_passes(passes)
  offset = check_offset(offset)
  scale_free = check_bool(scale_free, "scale_free")
  key = as_typed_key(key)
  check_array(x, "x")
  matrix_layout(x.shape, out_axis, batch_axis)
  check_floating(x.dtype, "x.dtype")
  if x.size == 0 or not passes:
    return x

  def run(k: Array, x: Array) -> Array:
    matrices, layout = as_matrices(x, out_axis, batch_axis)
    keys = jax.random.split(k, layout.num_matrices) if layout.batch_axes else k[None]
    rewired = rewire_stack(keys, matrices, passes=passes, offset=offset, scale_free=scale_free)
    return from_matrices(rewired, layout)

  return _keeping_explicit_sharding(run, key, x)
