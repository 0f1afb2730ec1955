"""Helpers shared by the test modules: bit-exact comparisons and a tiny dataset.

Rewiring and LaPerm only move values, so their tests compare raw bit patterns
(``-0.0`` differs from ``0.0``, every NaN payload counts) rather than float
values.
"""

from __future__ import annotations

import jax
import numpy as np


def enable_x64(new_val: bool = True):
  """``jax.enable_x64`` (jax >= 0.8), or ``jax.experimental.enable_x64`` on the older jax the floors allow."""
  if hasattr(jax, "enable_x64"):
    return jax.enable_x64(new_val)
  from jax.experimental import enable_x64 as experimental_enable_x64

  return experimental_enable_x64(new_val)


def set_mesh(mesh):
  """``jax.set_mesh`` (jax >= 0.7.1), or ``jax.sharding.use_mesh`` on jax 0.7.0, the floor: the context manager."""
  if hasattr(jax, "set_mesh"):
    return jax.set_mesh(mesh)
  return jax.sharding.use_mesh(mesh)


def bits(x) -> np.ndarray:
  """``x``'s raw bit patterns as unsigned integers of the same width and shape."""
  a = np.asarray(x)
  return a.view(f"uint{a.dtype.itemsize * 8}")


def bits_multiset(x) -> np.ndarray:
  """The sorted raw bit patterns of ``x``: equal iff the values are a bit-exact permutation."""
  return np.sort(bits(x).reshape(-1))


def assert_bits_equal(actual, expected) -> None:
  """Same dtype, shape and bits, leaf by leaf for pytrees of arrays."""
  actual_leaves, actual_tree = jax.tree.flatten(actual)
  expected_leaves, expected_tree = jax.tree.flatten(expected)
  assert actual_tree == expected_tree, (actual_tree, expected_tree)
  for a, e in zip(actual_leaves, expected_leaves, strict=True):
    a, e = np.asarray(a), np.asarray(e)
    assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
    np.testing.assert_array_equal(bits(a), bits(e))


def assert_bit_permutation(actual, expected) -> None:
  """``actual`` holds exactly the values of ``expected``, bit for bit, in some order."""
  a, e = np.asarray(actual), np.asarray(expected)
  assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
  np.testing.assert_array_equal(bits_multiset(a), bits_multiset(e))


def assert_columnwise_permutation(actual, expected) -> None:
  """Every weight vector (column over all leading axes) of ``actual`` is a bit-exact permutation of ``expected``'s."""
  a, e = np.asarray(actual), np.asarray(expected)
  assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)

  def sorted_columns(x: np.ndarray) -> np.ndarray:
    return np.sort(bits(x).reshape(-1, x.shape[-1]), axis=0)

  np.testing.assert_array_equal(sorted_columns(a), sorted_columns(e))


def train_result(seeds, *, epochs: int = 1, segments: int = 1, layer_names=(), value: float = 0.0):
  """A :class:`~parewire_jax.experiments.train.TrainResult` of constant records, for tests of its handling."""
  from parewire_jax.experiments.train import TrainResult

  seeds = np.asarray(seeds)
  curve = np.full((len(seeds), epochs), value)
  within = np.full((len(seeds), epochs, segments), value)
  return TrainResult(
    seeds=seeds,
    train_loss=curve,
    train_acc=curve,
    val_loss=curve,
    val_acc=curve,
    test_loss=curve,
    test_acc=curve,
    grad_abs=None,
    layer_names=tuple(layer_names),
    init_mean_variance=np.ones(len(seeds)),
    init_mean_fourth_moment=np.ones(len(seeds)),
    train_curve_loss=within,
    train_curve_acc=within,
  )


def small_mlp(variant: str = "base", init: str = "kaiming_normal", hidden=(16,)):
  """An MLP for the 3 classes of :func:`tiny_dataset`, its kernels drawn by ``init`` in ``variant``."""
  from parewire_jax.experiments import models

  return models.build_model("mlp", 3, models.kernel_initializer(init, variant, num_draws=4), mlp_hidden=hidden)


def markdown_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
  """The first markdown table in ``text``: its header cells after the first, and its rows keyed by first cell."""
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("|"))
  end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
  cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[start:end] if not line.startswith("|---")]
  return cells[0][1:], {row[0]: row[1:] for row in cells[1:]}


def tiny_dataset(num_train: int):
  """3 classes of noisy 6×6 prototypes (64 validation, 48 test images): learnable in one epoch by a small MLP."""
  from parewire_jax.experiments.data import Dataset

  rng = np.random.default_rng(0)
  centers = rng.uniform(0, 1, (3, 6, 6, 1))

  def blobs(n):
    y = rng.integers(0, len(centers), n).astype(np.int32)
    x = centers[y] + 0.3 * rng.standard_normal((n,) + centers.shape[1:])
    return np.clip(x, 0, 1).astype(np.float32), y

  return Dataset("tiny", *blobs(num_train), *blobs(64), *blobs(48), 3)


def random_images(num_train: int, side: int = 16):
  """Noise images ``(side, side, 1)`` in 3 classes (64 validation and test images): big enough for LeNet."""
  from parewire_jax.experiments.data import Dataset

  rng = np.random.default_rng(0)
  x = rng.normal(size=(num_train + 64, side, side, 1)).astype(np.float32)
  y = rng.integers(0, 3, num_train + 64).astype(np.int32)
  return Dataset(
    f"images{side}", x[:num_train], y[:num_train], x[num_train:], y[num_train:], x[num_train:], y[num_train:], 3
  )
