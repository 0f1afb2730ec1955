# pyright: reportMissingImports=false
# (the ecosystem this adapter serves is an optional dependency: the `zoo` extra installs it)
"""penzai: a rewired weight initializer that reads each layer's named axes.

An optional adapter: ``import parewire_jax`` never loads it (nor penzai).
penzai's arrays carry axis names, not a layout convention, and its linear
layers say which names are inputs, outputs and parallel (per-head) axes. The
tree functions of parewire_jax work on positions, so they refuse penzai's
named arrays (:func:`parewire_jax.selection.refuse_named_axes`); rewire a
penzai model where its weights are drawn instead::

    pz.nn.Linear.from_config(name="mlp", init_base_rng=key, input_axes={"embedding": 64},
                             output_axes={"neurons": 256}, initializer=pwpz.rewired())

Every named axis keeps its role: ``input_axes`` (and convolution spatial
axes) are the input neurons, ``output_axes`` the output neurons, and each
slice of the ``parallel_axes`` is its own matrix (a batch axis).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
from jax import Array
from penzai import pz

from parewire_jax._checks import PASSES, Pass, check_offset, check_passes
from parewire_jax.initializers import rewiring_key
from parewire_jax.rewiring import rewire

__all__ = ["rewired"]

_DEFAULT_BASE = functools.partial(pz.nn.variance_scaling_initializer, scale=1.0, mode="fan_avg", distribution="uniform")


def rewired(base: Any = _DEFAULT_BASE, *, passes: Sequence[Pass] = PASSES, offset: float = 1.0) -> Any:
  """A penzai ``LinearOperatorWeightInitializer`` that PA-rewires what ``base`` draws (§3.3).

  ``rewired(base)(key, input_axes=..., output_axes=..., ...)`` is a bit-exact
  permutation of ``base`` with the same arguments, as a ``NamedArray`` with
  the same axis names; rewiring uses :func:`parewire_jax.rewiring_key`
  ``(key)``.

  Args:
    base: a penzai weight initializer; default ``pz.nn.Linear``'s own
      (``variance_scaling_initializer``, fan_avg, uniform).
    passes, offset: as in :func:`parewire_jax.pa_rewire`.
  """
  passes = check_passes(passes)
  offset = check_offset(offset)

  def init(
    key: Array,
    *,
    input_axes: dict[str, int],
    output_axes: dict[str, int],
    parallel_axes: dict[str, int],
    convolution_spatial_axes: dict[str, int],
    dtype: Any,
  ) -> Any:
    w = base(
      key,
      input_axes=input_axes,
      output_axes=output_axes,
      parallel_axes=parallel_axes,
      convolution_spatial_axes=convolution_spatial_axes,
      dtype=dtype,
    )
    named = w if isinstance(w, pz.nx.NamedArray) else pz.nx.wrap(jax.numpy.asarray(w))
    if not isinstance(w, pz.nx.NamedArray):
      raise ValueError(f"base returned {type(w).__name__}; a penzai initializer returns a NamedArray.")
    names = list(named.named_axes)
    if named.positional_shape:
      raise ValueError(f"base returned positional axes {named.positional_shape}; expected named axes only.")
    data = named.unwrap(*names)
    out = tuple(names.index(n) for n in output_axes)
    batch = tuple(names.index(n) for n in parallel_axes)
    new = rewire(rewiring_key(key), data, out_axis=out, batch_axis=batch, passes=passes, offset=offset)
    return pz.nx.wrap(new, *names)

  return init
