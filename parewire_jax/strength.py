"""Neuron strengths of weight arrays and their statistics (§3.1–3.2, Fig. 1, Fig. 3).

The strength of a neuron is the sum of the weights of its edges (Eq. 1). For a
matrix ``W`` of shape ``(n_in, n_out)`` the input strengths are the row sums and
the output strengths the column sums. Sums accumulate in at least float32.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from parewire_jax.axes import AxisSpec, as_matrices


def strengths(w: Array, *, out_axis: AxisSpec = -1, batch_axis: AxisSpec = ()) -> tuple[Array, Array]:
  """Input and output neuron strengths of ``w`` (Eq. 1).

  Returns:
    ``(input_strengths, output_strengths)`` of shapes ``batch_shape + (n_in,)``
    and ``batch_shape + (n_out,)``, in ``promote_types(w.dtype, float32)``.

  >>> import jax.numpy as jnp
  >>> s_in, s_out = strengths(jnp.array([[1., 2.], [3., -4.]]))
  >>> s_in.tolist(), s_out.tolist()
  ([3.0, -1.0], [4.0, -2.0])
  """
  matrices, layout = as_matrices(w, out_axis, batch_axis)
  matrices = matrices.astype(jnp.promote_types(w.dtype, jnp.float32))
  batch_shape = layout.batch_shape
  return (
    matrices.sum(axis=2).reshape(batch_shape + (layout.n_in,)),
    matrices.sum(axis=1).reshape(batch_shape + (layout.n_out,)),
  )


class StrengthStats(NamedTuple):
  """Strength-distribution statistics of one matrix (or a stack of them).

  Each field has shape ``batch_shape`` (scalars without batch axes).
  ``*_variance`` is the population variance σ²(s), ``*_fourth_moment`` the
  fourth central moment μ₄(s) (the non-normalised kurtosis of Fig. 3), and
  ``*_max_abs`` the largest ``|s|`` (Fig. 1c).

  >>> import jax.numpy as jnp
  >>> stats = strength_stats(jnp.array([[1., 2.], [3., -4.]]))
  >>> stats.in_variance.item(), stats.out_variance.item(), stats.mean_variance.item()
  (4.0, 9.0, 6.5)
  """

  in_variance: Array
  in_fourth_moment: Array
  in_max_abs: Array
  out_variance: Array
  out_fourth_moment: Array
  out_max_abs: Array

  @property
  def mean_variance(self) -> Array:
    """Mean of input and output strength variance, the random-search score (§4.2)."""
    return (self.in_variance + self.out_variance) / 2


def _moments(s: Array) -> tuple[Array, Array, Array]:
  centred = s - s.mean(axis=-1, keepdims=True)
  return (
    jnp.mean(centred**2, axis=-1),
    jnp.mean(centred**4, axis=-1),
    jnp.max(jnp.abs(s), axis=-1),
  )


def strength_stats(w: Array, *, out_axis: AxisSpec = -1, batch_axis: AxisSpec = ()) -> StrengthStats:
  """Variance, fourth central moment and max ``|s|`` of input and output strengths.

  >>> import jax, jax.numpy as jnp
  >>> stats = strength_stats(jnp.array([[1., 2.], [3., -4.]]))
  >>> float(stats.in_variance), float(stats.out_max_abs)
  (4.0, 4.0)
  """
  s_in, s_out = strengths(w, out_axis=out_axis, batch_axis=batch_axis)
  return StrengthStats(*_moments(s_in), *_moments(s_out))
