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


@pytest.fixture
def assert_permutation():
  return assert_bit_permutation
