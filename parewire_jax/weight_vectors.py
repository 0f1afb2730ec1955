"""The weight-vector layout shared by LaPerm, pruning and the ranking diagnostics.

A *weight vector* is the incoming weights of one output neuron: a column of a
Flax ``(n_in, n_out)`` kernel, or the ``kh·kw·c_in`` weights of one output
channel of a convolution kernel (LaPerm §4, Qiu & Suda 2020). The layout comes
from :func:`parewire_jax.as_matrices` with ``out_axis=-1``, the one place that
knows about axes; here a leaf is seen as ``(n_out, n_in)`` rows, one weight
vector per row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from parewire_jax.axes import MatrixLayout, as_matrices, from_matrices
from parewire_jax.sorting import sort_exact, stable_argsort


def as_rows(x: Array) -> tuple[Array, MatrixLayout]:
  """``(n_out, n_in)``: row ``j`` is the weight vector of output neuron ``j``."""
  matrices, layout = as_matrices(x, out_axis=-1)
  return matrices[0].T, layout


def from_rows(rows: Array, layout: MatrixLayout) -> Array:
  """Inverse of :func:`as_rows`, bit for bit."""
  return from_matrices(rows.T[None], layout)


def sort_weight_vectors(x: Array) -> Array:
  """Every weight vector of ``x`` sorted ascending (exactly), in ``x``'s own shape."""
  rows, layout = as_rows(x)
  return from_rows(sort_exact(rows), layout)


def scatter_rows(indices: Array, values: Array) -> Array:
  """``out[r, indices[r, k]] = values[r, k]``; a permutation of each row."""
  return jax.vmap(lambda i, v: jnp.zeros_like(v).at[i].set(v, unique_indices=True))(indices, values)


def permute_to_ranking(sorted_vectors: Array, reference: Array) -> Array:
  """Each weight vector of ``sorted_vectors`` permuted to the ranking of ``reference``.

  The k-th smallest value goes where ``reference`` holds its k-th smallest
  (ties by position), so the result is a bit-exact permutation per vector:
  LaPerm's synchronisation ``σ_θ(θ_sorted)`` (LaPerm §4).
  """
  if reference.shape != sorted_vectors.shape:
    raise ValueError(
      f"params leaf has shape {reference.shape} but the LaPerm state holds weight vectors of shape "
      f"{sorted_vectors.shape}."
    )
  if sorted_vectors.size == 0:
    return sorted_vectors
  sorted_rows, layout = as_rows(sorted_vectors)
  order = stable_argsort(as_rows(reference)[0])
  return from_rows(scatter_rows(order, sorted_rows), layout)


def rankings(x: Array) -> Array:
  """``(n_out, n_in)`` rankings ``R_j`` (LaPerm §3): the rank of each entry within its weight vector."""
  rows, _ = as_rows(x)
  order = stable_argsort(rows)
  positions = jnp.broadcast_to(jnp.arange(rows.shape[1], dtype=jnp.int32), order.shape)
  return scatter_rows(order, positions)
