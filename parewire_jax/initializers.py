"""Initializer combinators: PA rewiring and the random-search baselines.

Every function here takes an initializer and returns one, conforming to
:class:`jax.nn.initializers.Initializer` (``init(key, shape, dtype=None,
out_sharding=None)``), so they drop into ``flax.linen`` (``nn.Dense(...,
kernel_init=rewired(orthogonal()))``) and ``flax.nnx`` alike, and compose:
``rewired(min_strength_variance(base))`` is the reference repository's "both
operations, in this order".

Keys: the base initializer always receives ``key`` itself, so a combinator's
output is built from exactly the array ``base_init(key, shape, dtype)`` (the
paired "same seeds" comparison of §4.1). Rewiring uses
:func:`rewiring_key` ``(key)``; the random search draws candidate ``d`` with
``jax.random.split(key, num_draws)[d]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import DTypeLike

from parewire_jax._checks import (
  PASSES,
  Pass,
  as_typed_key,
  check_bool,
  check_floating,
  check_int,
  check_offset,
  check_passes,
)
from parewire_jax.axes import AxisSpec, as_matrices, from_matrices, matrix_layout
from parewire_jax.rewiring import explicit_sharding, rewire
from parewire_jax.strength import strength_stats

Initializer = jax.nn.initializers.Initializer

# fold_in data for the rewiring key ("PARW"); a constant so results are reproducible.
_REWIRING_SALT = 0x50415257


def rewiring_key(key: Array) -> Array:
  """The key :func:`rewired` uses for rewiring, derived from the init ``key``.

  ``rewired(b)(key, shape)`` equals ``rewire(rewiring_key(key), b(key, shape))``:

  >>> import jax
  >>> from jax.nn.initializers import he_normal
  >>> from parewire_jax import rewire
  >>> key = jax.random.key(0)
  >>> w = rewired(he_normal())(key, (16, 8))
  >>> bool((w == rewire(rewiring_key(key), he_normal()(key, (16, 8)))).all())
  True
  """
  return jax.random.fold_in(key, _REWIRING_SALT)


def _call_base(
  base_init: Initializer, key: Array, shape: Sequence[int], dtype: DTypeLike | None, out_sharding: Any
) -> Array:
  kwargs = {} if out_sharding is None else {"out_sharding": out_sharding}
  if dtype is None:
    return base_init(key, shape, **kwargs)  # keep the base initializer's own default dtype
  return base_init(key, shape, dtype, **kwargs)


def _check_base_output(w: Any, shape: Sequence[int]) -> None:
  if tuple(w.shape) != tuple(shape):
    raise ValueError(f"base_init returned shape {tuple(w.shape)} for requested shape {tuple(shape)}.")
  check_floating(w.dtype)


def rewired(
  base_init: Initializer,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
  scale_free: bool = False,
) -> Initializer:
  """An initializer that PA-rewires the output of ``base_init`` (§3.3).

  ``rewired(b)(key, shape, dtype)`` is a permutation of ``b(key, shape, dtype)``
  in which every neuron's incoming and outgoing weights were reorganised by
  preferential attachment so that neuron strengths shrink towards zero (see
  :func:`parewire_jax.pa_rewire`). Weight values, and so the weight
  distribution, are untouched.

  Args:
    base_init: any initializer, e.g. ``jax.nn.initializers.orthogonal()``.
    out_axis: axis or axes of the output neurons (Flax kernels: ``-1``).
    batch_axis: axes indexing independent matrices (stacked layers); they are
      rewired together in one batched scan.
    passes: ``("in", "out")`` as in the paper, or one of them.
    offset: Eq. 5's additive constant (the paper's 1); must be > 0.
    scale_free: draw as if the kernel had Kaiming-normal scale (see
      :func:`parewire_jax.pa_rewire`); for std-0.02 transformer inits.

  Returns:
    An initializer ``init(key, shape, dtype=None, out_sharding=None)``.

  Raises:
    ValueError: for unknown passes or ``offset <= 0`` (at construction), and
      for shapes of rank < 2, bad axes or non-floating dtypes (at call).

  >>> import jax, jax.numpy as jnp
  >>> from jax.nn.initializers import orthogonal
  >>> init = rewired(orthogonal())
  >>> w = init(jax.random.key(0), (64, 32), jnp.float32)
  >>> base = orthogonal()(jax.random.key(0), (64, 32), jnp.float32)
  >>> bool((jnp.sort(w.ravel()) == jnp.sort(base.ravel())).all())
  True
  """
  passes = check_passes(passes)
  offset = check_offset(offset)
  scale_free = check_bool(scale_free, "scale_free")

  def init(key: Array, shape: Sequence[int], dtype: DTypeLike | None = None, out_sharding: Any = None) -> Array:
    as_typed_key(key)  # fail on a bad key before drawing; base_init still gets key itself
    matrix_layout(shape, out_axis, batch_axis)
    w = _call_base(base_init, key, shape, dtype, out_sharding)
    _check_base_output(w, shape)
    w = rewire(
      rewiring_key(key),
      w,
      out_axis=out_axis,
      batch_axis=batch_axis,
      passes=passes,
      offset=offset,
      scale_free=scale_free,
    )
    if out_sharding is not None and explicit_sharding(w) is None:
      # Auto axes: pin the result's layout (under Explicit axes w's type already carries it).
      w = lax.with_sharding_constraint(w, out_sharding)
    return w

  return init


def _strength_variance_search(
  base_init: Initializer,
  num_draws: int,
  out_axis: AxisSpec,
  batch_axis: AxisSpec,
  draw_batch_size: int | None,
  maximize: bool,
) -> Initializer:
  check_int(num_draws, "num_draws")
  check_int(draw_batch_size, "draw_batch_size", allow_none=True)

  def init(key: Array, shape: Sequence[int], dtype: DTypeLike | None = None, out_sharding: Any = None) -> Array:
    as_typed_key(key)
    layout = matrix_layout(shape, out_axis, batch_axis)
    keys = jax.random.split(key, num_draws)

    def draw(k):
      return _call_base(base_init, k, shape, dtype, out_sharding)

    _check_base_output(jax.eval_shape(draw, keys[0]), shape)

    def score(k):
      stats = strength_stats(draw(k), out_axis=out_axis, batch_axis=batch_axis)
      return stats.mean_variance.reshape(layout.num_matrices)

    # Scores only, draws vmapped in groups: memory stays at one group of draws.
    scores = lax.map(score, keys, batch_size=draw_batch_size or num_draws)  # (num_draws, num_matrices)
    best = jnp.argmax(scores, axis=0) if maximize else jnp.argmin(scores, axis=0)
    if not layout.batch_axes:
      return draw(keys[best[0]])

    # Matrix b of the result is matrix b of draw best[b]: redraw the winners.
    def winner(b):
      return as_matrices(draw(keys[best[b]]), out_axis, batch_axis)[0][b]

    matrices = lax.map(winner, jnp.arange(layout.num_matrices))
    return from_matrices(matrices, layout)

  return init


_SEARCH_DOC = """Random-search baseline: the {which} strength variance of ``num_draws`` draws (§4.2).

  Draws ``num_draws`` candidates of ``base_init`` (candidate ``d`` with key
  ``jax.random.split(key, num_draws)[d]``) and keeps, for every matrix
  independently (per layer, as in the paper; per ``batch_axis`` index for
  stacked layers), the candidate with the {which} mean of input and output
  strength variance (:attr:`StrengthStats.mean_variance`). This is Table 1's
  {row} row and the reference repository's ``stabilize_strength``.

  Args:
    base_init: the initializer to draw from.
    num_draws: number of candidates (the paper's K; 100 in the reference code).
    out_axis, batch_axis: as in :func:`rewired`.
    draw_batch_size: candidates scored at once with ``vmap`` (``None``: all
      ``num_draws`` of them; ``1``: one after the other). Only scores are
      kept, then the winner is redrawn, so memory is ``draw_batch_size``
      candidates rather than ``num_draws``.

  >>> import jax, jax.numpy as jnp
  >>> from jax.nn.initializers import he_normal
  >>> init = {name}(he_normal(), num_draws=8)
  >>> init(jax.random.key(0), (32, 16), jnp.float32).shape
  (32, 16)
  """


def min_strength_variance(
  base_init: Initializer,
  num_draws: int = 100,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  draw_batch_size: int | None = None,
) -> Initializer:
  return _strength_variance_search(base_init, num_draws, out_axis, batch_axis, draw_batch_size, maximize=False)


def max_strength_variance(
  base_init: Initializer,
  num_draws: int = 100,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  draw_batch_size: int | None = None,
) -> Initializer:
  return _strength_variance_search(base_init, num_draws, out_axis, batch_axis, draw_batch_size, maximize=True)


min_strength_variance.__doc__ = _SEARCH_DOC.format(which="lowest", row="min σ²(s)", name="min_strength_variance")
max_strength_variance.__doc__ = _SEARCH_DOC.format(which="highest", row="max σ²(s)", name="max_strength_variance")
