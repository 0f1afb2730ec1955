"""batch_rewiring: the same bits as the plain function, one compiled rewiring per shape."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.nn.initializers import he_normal, lecun_normal

import parewire_jax as pw
from parewire_jax import rewiring

REWIRED = pw.rewired(he_normal())


class MLP(nn.Module):
  """Three 32×32 kernels (one shape, one group) and a 32×8 head (a group of one)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    for _ in range(3):
      x = nn.relu(nn.Dense(32, kernel_init=REWIRED)(x))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(8, kernel_init=REWIRED)(x)


class Net(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.layers = nnx.List([nnx.Linear(32, 32, kernel_init=REWIRED, rngs=rngs) for _ in range(3)])
    self.head = nnx.Linear(32, 8, kernel_init=REWIRED, rngs=rngs)


def assert_trees_bit_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b, strict=True):
    assert jnp.dtype(x.dtype) == jnp.dtype(y.dtype)
    np.testing.assert_array_equal(np.asarray(x).view(np.uint8), np.asarray(y).view(np.uint8))


def compiled_sorts(fn, *args) -> int:
  """The sort instructions of ``fn``'s optimised, compiled program (XLA inlines every call)."""
  return len(re.findall(r"= \S+ sort\(", jax.jit(fn).lower(*args).compile().as_text()))


@pytest.fixture(scope="module")
def linen_case():
  model, x = MLP(), jnp.ones((2, 32))
  return model, x, jax.jit(model.init)(jax.random.key(0), x)


def test_linen_init_under_jit_equals_the_plain_init(linen_case):
  model, x, plain = linen_case
  assert_trees_bit_equal(jax.jit(pw.batch_rewiring(model.init))(jax.random.key(0), x), plain)


def test_linen_init_eagerly_with_a_static_keyword(linen_case):
  model, x, plain = linen_case
  # train=True is a Python bool: passed through, not traced (Dropout branches on it)
  batched = pw.batch_rewiring(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, train=True)
  assert_trees_bit_equal(batched, plain)


def test_same_shaped_kernels_compile_one_rewiring(linen_case):
  """Checked on the compiled program: its sorts (the base draw has none) are one rewiring per kernel shape."""
  model, x, _ = linen_case
  key = jax.random.key(0)
  per_shape = {}
  for shape in [(32, 32), (32, 8)]:
    stack = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    keys = jax.ShapeDtypeStruct((1,), key.dtype)
    per_shape[shape] = compiled_sorts(
      functools.partial(rewiring.rewire_stack, passes=("in", "out"), offset=1.0), keys, stack
    )
  assert per_shape[(32, 32)] > 0
  assert compiled_sorts(model.init, key, x) == 3 * per_shape[(32, 32)] + per_shape[(32, 8)]
  assert compiled_sorts(pw.batch_rewiring(model.init), key, x) == per_shape[(32, 32)] + per_shape[(32, 8)]


def test_nnx_module_eagerly_and_under_nnx_jit():
  plain = Net(nnx.Rngs(0))
  eager = pw.batch_rewiring(lambda: Net(nnx.Rngs(0)))()
  jitted = nnx.jit(pw.batch_rewiring(lambda: Net(nnx.Rngs(0))))()
  for built in (eager, jitted):
    assert isinstance(built, Net)
    assert_trees_bit_equal(nnx.state(built, nnx.Param), nnx.state(plain, nnx.Param))


def test_dependent_calls_run_in_stages():
  """A rewiring of a rewired matrix waits for it; independent calls of its shape still share a stage."""

  def fn(key, w):
    k1, k2, k3 = jax.random.split(key, 3)
    a = pw.rewire(k1, w)
    b = pw.rewire(k2, a * 2.0)  # depends on a: stage 1
    c = pw.rewire(k3, w)  # independent of a: stage 0, batched with a
    return a, b, c

  key, w = jax.random.key(3), jax.random.normal(jax.random.key(4), (12, 8))
  assert_trees_bit_equal(jax.jit(pw.batch_rewiring(fn))(key, w), jax.jit(fn)(key, w))


def test_nested_jit_vmap_scan_and_chunks():
  """Calls inside a nested jit are batched; vmapped calls too; calls in a scan body stay put; any chunking."""
  init = pw.rewired(lecun_normal())

  @jax.jit
  def layer(key):
    return init(key, (8, 6))

  def fn(key):
    keys = jax.random.split(key, 4)
    loose = [layer(k) for k in keys[:2]]
    vmapped = jax.vmap(lambda k: init(k, (8, 6)))(keys[2:])
    scanned = jax.lax.scan(lambda c, k: (c, init(k, (8, 6))), 0, keys)[1]
    return loose, vmapped, scanned

  key = jax.random.key(5)
  expected = jax.jit(fn)(key)
  for max_group_bytes in (None, 8 * 6 * 4):  # one chunk of both loose calls; a chunk per call
    assert_trees_bit_equal(jax.jit(pw.batch_rewiring(fn, max_group_bytes=max_group_bytes))(key), expected)


def test_functions_without_rewiring_or_with_effects_are_called_as_they_are():
  calls = []

  def fn(x):
    calls.append(1)
    return {"y": x * 2}

  assert_trees_bit_equal(pw.batch_rewiring(fn)(jnp.arange(3.0)), {"y": jnp.arange(3.0) * 2})

  def with_print(key):
    jax.debug.print("drawn")
    return REWIRED(key, (8, 8))

  assert_trees_bit_equal(pw.batch_rewiring(with_print)(jax.random.key(0)), REWIRED(jax.random.key(0), (8, 8)))


@pytest.mark.parametrize(
  "kwargs, match",
  [({"fn": 3}, "fn must be callable"), ({"fn": len, "max_group_bytes": 0}, "max_group_bytes")],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    pw.batch_rewiring(**kwargs)
