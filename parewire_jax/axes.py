"""The one place that knows how a weight array maps onto neuron matrices.

The paper (§3.1, Eq. 2–3) models a layer as a bipartite graph whose edges are a
matrix ``W`` of shape ``(n_in, n_out)``; a convolution kernel ``(kh, kw, c_in,
c_out)`` is the matrix ``(kh·kw·c_in, c_out)``. Here an array of any rank is
viewed as a stack of such matrices:

* ``out_axis`` (an axis or a sequence of axes) holds the output neurons;
* ``batch_axis`` axes index independent matrices (stacked or scanned layers);
* every remaining axis is flattened, in order, into the input neurons.

:func:`as_matrices` gives ``(batch, n_in, n_out)`` and :func:`from_matrices`
undoes it exactly. Everything else in the package goes through these two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

AxisSpec = int | Sequence[int]


class MatrixLayout(NamedTuple):
  """How an array of ``shape`` is laid out as ``(batch, n_in, n_out)``.

  Attributes:
    shape: the original array shape.
    batch_axes: normalised (non-negative) batch axes, in the given order.
    in_axes: the input axes, in increasing order.
    out_axes: normalised output axes, in the given order.

  >>> layout = matrix_layout((4, 3, 3, 8, 16), out_axis=-1, batch_axis=0)
  >>> layout.num_matrices, layout.n_in, layout.n_out, layout.permutation
  (4, 72, 16, (0, 1, 2, 3, 4))
  """

  shape: tuple[int, ...]
  batch_axes: tuple[int, ...]
  in_axes: tuple[int, ...]
  out_axes: tuple[int, ...]

  @property
  def batch_shape(self) -> tuple[int, ...]:
    return tuple(self.shape[a] for a in self.batch_axes)

  @property
  def num_matrices(self) -> int:
    return math.prod(self.batch_shape)

  @property
  def n_in(self) -> int:
    return math.prod(self.shape[a] for a in self.in_axes)

  @property
  def n_out(self) -> int:
    return math.prod(self.shape[a] for a in self.out_axes)

  @property
  def permutation(self) -> tuple[int, ...]:
    return self.batch_axes + self.in_axes + self.out_axes


def _normalize_axes(axes: AxisSpec, ndim: int, name: str) -> tuple[int, ...]:
  if isinstance(axes, Sequence) and not isinstance(axes, str):
    seq = tuple(axes)
  else:
    seq = (axes,)
  out = []
  for a in seq:
    if not isinstance(a, int) or isinstance(a, bool):
      raise ValueError(f"{name} must be an int or a sequence of ints, got {axes!r}.")
    if not -ndim <= a < ndim:
      raise ValueError(
        f"{name}={axes!r} is out of range for an array of rank {ndim}; expected axes in [{-ndim}, {ndim})."
      )
    out.append(a % ndim)
  if len(set(out)) != len(out):
    raise ValueError(f"{name}={axes!r} names the same axis twice.")
  return tuple(out)


def matrix_layout(shape: Sequence[int], out_axis: AxisSpec = -1, batch_axis: AxisSpec = ()) -> MatrixLayout:
  """Validates the axes for ``shape`` and returns its :class:`MatrixLayout`.

  Raises:
    ValueError: if the shape has rank < 2, an axis is out of range, the output
      and batch axes overlap, or no axis is left for the input neurons.

  >>> matrix_layout((3, 3, 16, 32)).n_in
  144
  >>> matrix_layout((4, 8, 16), batch_axis=0)[1:]
  ((0,), (1,), (2,))
  """
  shape = tuple(int(d) for d in shape)
  ndim = len(shape)
  if ndim < 2:
    raise ValueError(f"shape must have rank >= 2 (inputs and outputs), got shape {shape}.")
  out_axes = _normalize_axes(out_axis, ndim, "out_axis")
  batch_axes = _normalize_axes(batch_axis, ndim, "batch_axis")
  if not out_axes:
    raise ValueError("out_axis must name at least one axis.")
  overlap = set(out_axes) & set(batch_axes)
  if overlap:
    raise ValueError(
      f"out_axis={out_axis!r} and batch_axis={batch_axis!r} overlap on axes {sorted(overlap)}; they must be disjoint."
    )
  in_axes = tuple(a for a in range(ndim) if a not in out_axes and a not in batch_axes)
  if not in_axes:
    raise ValueError(
      f"no input axis is left in shape {shape} with out_axis={out_axis!r} and "
      f"batch_axis={batch_axis!r}; at least one axis must hold input neurons."
    )
  return MatrixLayout(shape, batch_axes, in_axes, out_axes)


def as_matrices(x: Array, out_axis: AxisSpec = -1, batch_axis: AxisSpec = ()) -> tuple[Array, MatrixLayout]:
  """Views ``x`` as a stack of ``(n_in, n_out)`` matrices.

  Returns:
    ``(matrices, layout)`` where ``matrices`` has shape ``(batch, n_in, n_out)``
    (``batch`` is 1 without batch axes) and ``layout`` feeds
    :func:`from_matrices`.

  >>> import jax.numpy as jnp
  >>> m, layout = as_matrices(jnp.zeros((3, 3, 2, 5)))
  >>> m.shape
  (1, 18, 5)
  """
  layout = matrix_layout(x.shape, out_axis, batch_axis)
  matrices = jnp.transpose(x, layout.permutation).reshape(layout.num_matrices, layout.n_in, layout.n_out)
  return matrices, layout


def from_matrices(matrices: Array, layout: MatrixLayout) -> Array:
  """Inverse of :func:`as_matrices`: back to ``layout.shape``, bit for bit.

  >>> import jax.numpy as jnp
  >>> x = jnp.arange(24.0).reshape(2, 3, 4)
  >>> m, layout = as_matrices(x, out_axis=0)
  >>> m.shape, bool((from_matrices(m, layout) == x).all())
  ((1, 12, 2), True)
  """
  permuted_shape = tuple(layout.shape[a] for a in layout.permutation)
  inverse = tuple(layout.permutation.index(a) for a in range(len(layout.shape)))
  return jnp.transpose(matrices.reshape(permuted_shape), inverse)


def einsum_kernel_axes(equation: str, operand: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """The output and batch axes of the kernel of a two-operand einsum, read from its equation.

  A kernel axis that also appears in the output but not in the other operand
  holds output neurons; one contracted with the other operand (absent from
  the output) holds input neurons; one in both the other operand and the
  output indexes independent matrices (a batch axis, e.g. per-head weights).
  This is how Keras's ``EinsumDense`` and nnx's ``Einsum`` lay out their
  kernels (the kernel is operand 1 of ``"input,kernel->output"``).

  Args:
    equation: e.g. ``"abc,cde->abde"`` (an attention query projection).
    operand: which operand is the kernel, 0 or 1.

  Returns:
    ``(out_axes, batch_axes)`` of the kernel, in the kernel's axis order.

  Raises:
    ValueError: for an equation that is not ``"x,y->z"``, a kernel with an
      ellipsis or a repeated letter, a kernel axis summed away (in neither the
      other operand nor the output), or a kernel with no input or no output
      axis.

  >>> einsum_kernel_axes("abc,cde->abde")  # (hidden, heads, head_dim)
  ((1, 2), ())
  >>> einsum_kernel_axes("abcd,cde->abe")  # (heads, head_dim, hidden)
  ((2,), ())
  >>> einsum_kernel_axes("btnh,nhd->btnd")  # per-head (head_dim, out): heads is a batch axis
  ((2,), (0,))
  """
  text = equation.replace(" ", "")
  if text.count("->") != 1 or text.split("->")[0].count(",") != 1 or operand not in (0, 1):
    raise ValueError(f"expected a two-operand einsum equation 'x,y->z' and operand 0 or 1, got {equation!r}.")
  inputs, output = text.split("->")
  specs = inputs.split(",")
  kernel, other = specs[operand], specs[1 - operand]
  if "." in kernel or len(set(kernel)) != len(kernel):
    raise ValueError(f"the kernel {kernel!r} of einsum {equation!r} has an ellipsis or a repeated axis.")
  out, batch, inputs_found = [], [], False
  for axis, letter in enumerate(kernel):
    in_other, in_output = letter in other, letter in output
    if in_output and in_other:
      batch.append(axis)
    elif in_output:
      out.append(axis)
    elif in_other:
      inputs_found = True
    else:
      raise ValueError(f"axis {letter!r} of the kernel {kernel!r} of einsum {equation!r} is summed away.")
  if not out or not inputs_found:
    raise ValueError(f"the kernel {kernel!r} of einsum {equation!r} needs an input and an output axis.")
  return tuple(out), tuple(batch)
