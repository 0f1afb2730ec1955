# pyright: reportMissingImports=false
# (the ecosystem this adapter serves is an optional dependency: the `zoo` extra installs it)
"""Haiku: a rewired initializer that draws its key the Haiku way.

An optional adapter: ``import parewire_jax`` never loads it (nor Haiku).
Haiku initializers are called as ``init(shape, dtype)`` and draw their
randomness from ``hk.next_rng_key()`` inside ``hk.transform``;
:func:`rewired` wraps one so, for modules that take ``w_init``::

    hk.Linear(256, w_init=pwhk.rewired(hk.initializers.VarianceScaling(2.0)))

For modules that do not take one (``hk.nets.ResNet18``'s convolutions), rewire
the initialised params instead: ``parewire_jax.rewire_params(key, params)``
selects Haiku's ``w`` kernels of ``Linear`` and ``ConvND`` modules and leaves
``embed``/``embeddings`` tables and the ``scale``/``offset`` of norms alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
from jax import Array

from parewire_jax._checks import PASSES, Pass, check_floating, check_offset, check_passes
from parewire_jax.axes import AxisSpec, matrix_layout
from parewire_jax.rewiring import rewire

__all__ = ["rewired"]

HaikuInitializer = Callable[[Sequence[int], Any], Array]


def rewired(
  base_init: HaikuInitializer | None = None,
  *,
  out_axis: AxisSpec = -1,
  batch_axis: AxisSpec = (),
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
) -> HaikuInitializer:
  """A Haiku initializer ``init(shape, dtype)`` that PA-rewires what ``base_init`` draws (§3.3).

  The result is a bit-exact permutation of ``base_init(shape, dtype)``. Inside
  ``hk.transform`` the base draws its own ``hk.next_rng_key()`` first, then
  the rewiring draws the next one: the kernel is a permutation of what the
  base would draw in the same place, but every later draw of the model moves
  one key along. For base and rewired models paired key for key (§4.1),
  initialise with the base and rewire the params with
  :func:`parewire_jax.rewire_params`.

  Args:
    base_init: a Haiku initializer; ``None`` is ``hk.Linear``'s default,
      ``TruncatedNormal(1 / sqrt(fan_in))``, which needs the shape, so it is
      built at call time as Haiku does.
    out_axis: the output axis or axes. ``-1`` is Haiku's ``Linear`` ``(in,
      out)`` and ``ConvND`` ``(*kernel, in, out)``; ``-2`` its
      ``ConvNDTranspose`` ``(*kernel, out, in)``.
    batch_axis: axes indexing independent matrices.
    passes, offset: as in :func:`parewire_jax.pa_rewire`.

  Raises:
    ValueError: for bad ``passes``/``offset`` (at construction); when called
      outside ``hk.transform`` (no ``hk.next_rng_key()``), for axes that do not
      fit the shape, or a base that returns another shape or a non-floating
      dtype (at call).
  """
  passes = check_passes(passes)
  offset = check_offset(offset)

  def init(shape: Sequence[int], dtype: Any) -> Array:
    matrix_layout(shape, out_axis, batch_axis)
    base = base_init
    if base is None:
      fan_in = 1
      for d in shape[:-1]:
        fan_in *= int(d)
      base = hk.initializers.TruncatedNormal(stddev=1.0 / fan_in**0.5)
    try:
      w = base(shape, dtype)
      key = hk.next_rng_key()
    except ValueError as e:
      if "hk.transform" not in str(e):
        raise
      raise ValueError(
        "parewire_jax.haiku_adapter.rewired draws its key with hk.next_rng_key(), so it must be called inside "
        "hk.transform (as a module's w_init), not on its own."
      ) from e
    if tuple(w.shape) != tuple(shape):
      raise ValueError(f"base_init returned shape {tuple(w.shape)} for requested shape {tuple(shape)}.")
    check_floating(w.dtype)
    return rewire(key, w, out_axis=out_axis, batch_axis=batch_axis, passes=passes, offset=offset)

  return init
