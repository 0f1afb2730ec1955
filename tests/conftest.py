"""Shared test helpers."""

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


@pytest.fixture
def assert_permutation():
  return assert_bit_permutation
