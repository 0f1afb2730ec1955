"""Shared test set-up and helpers.

The sharding tests (tests/test_sharding.py) need 8 devices; on the CPU that
means XLA's virtual host devices, which must be requested before the first
JAX backend starts. pytest loads this file (an initial conftest of the
``tests`` testpath) before collecting any test module or doctest, so the flag
set here is in place when JAX first creates a backend. An explicit device
count already in ``XLA_FLAGS`` wins. If a backend started earlier anyway,
tests/test_sharding.py notices and reruns itself in a subprocess with the flag.
"""

import os

SHARDING_TEST_DEVICES = 8
_FLAG = "--xla_force_host_platform_device_count"

if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}={SHARDING_TEST_DEVICES}".strip()

import numpy as np
import pytest


def bits_multiset(x) -> np.ndarray:
  """The sorted raw bit patterns of ``x``: equal iff the values are a bit-exact permutation."""
  a = np.asarray(x)
  return np.sort(a.reshape(-1).view(f"uint{a.dtype.itemsize * 8}"))


def assert_bit_permutation(actual, expected) -> None:
  a, e = np.asarray(actual), np.asarray(expected)
  assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
  np.testing.assert_array_equal(bits_multiset(a), bits_multiset(e))


def enable_x64(new_val: bool = True):
  """``jax.enable_x64`` (jax >= 0.8), or ``jax.experimental.enable_x64`` on the older jax the floors allow."""
  import jax

  if hasattr(jax, "enable_x64"):
    return jax.enable_x64(new_val)
  from jax.experimental import enable_x64 as experimental_enable_x64

  return experimental_enable_x64(new_val)


def set_mesh(mesh):
  """``jax.set_mesh`` (jax >= 0.7.1), or ``jax.sharding.use_mesh`` on jax 0.7.0, the floor: the context manager."""
  import jax

  if hasattr(jax, "set_mesh"):
    return jax.set_mesh(mesh)
  return jax.sharding.use_mesh(mesh)


@pytest.fixture
def assert_permutation():
  return assert_bit_permutation


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
