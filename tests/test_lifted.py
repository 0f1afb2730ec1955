"""rewired() inside lifted transforms: linen nn.scan / nn.vmap, nnx.vmap / nnx.scan, jax.vmap over seeds.

For every stack two things are checked:

* each layer's kernel is a bit-exact permutation of the same layer's kernel
  built with the base initializer (same module, same keys), and differs from it;
* the stack is rewired by one batched scan per pass: in the jaxpr, the number
  of ``scan`` primitives that sort in their body and whose length is a
  column-loop length (``n_out - 1`` for pass "in", ``n_in - 1`` for pass
  "out") is the same for 2 and for 6 layers (``pa_rewire`` has one such scan
  per pass).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_bit_permutation
from jax.nn import initializers as jinit

import parewire_jax as pw

N_IN, N_OUT = 24, 12
COLUMN_LOOP_LENGTHS = (N_OUT - 1, N_IN - 1)  # pass "in", pass "out"
BASE = jinit.lecun_normal()
LAYER_COUNTS = (2, 6)


def _sub_jaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _sorts(jaxpr) -> bool:
  return any(
    eqn.primitive.name == "sort" or any(_sorts(sub) for p in eqn.params.values() for sub in _sub_jaxprs(p))
    for eqn in jaxpr.eqns
  )


def scan_lengths(jaxpr) -> list[int]:
  """The ``length`` of every ``scan`` in ``jaxpr`` that sorts in its body, nested ones included.

  A rewiring scan sorts at every step (the argsort). Scans without a sort are
  left out: e.g. linen's ``nn.scan`` partially evaluates its body, which splits
  the index arithmetic of a rewiring scan into a separate scan of the same
  length.
  """
  lengths = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "scan" and _sorts(eqn.params["jaxpr"].jaxpr):
      lengths.append(eqn.params["length"])
    for param in eqn.params.values():
      for sub in _sub_jaxprs(param):
        lengths.extend(scan_lengths(sub))
  return lengths


def column_loop_scans(fn, *args) -> tuple[int, int]:
  lengths = scan_lengths(jax.make_jaxpr(fn)(*args).jaxpr)
  return tuple(lengths.count(n) for n in COLUMN_LOOP_LENGTHS)


def assert_layerwise_permutation(stack, base_stack):
  stack, base_stack = np.asarray(stack), np.asarray(base_stack)
  assert stack.shape == base_stack.shape
  for layer, base_layer in zip(stack, base_stack, strict=True):
    assert_bit_permutation(layer, base_layer)
    assert not np.array_equal(layer, base_layer)


# --------------------------------------------------------------------------- linen


class _Block(nn.Module):
  kernel_init: jax.nn.initializers.Initializer

  @nn.compact
  def __call__(self, x, _=None):
    return nn.Dense(N_OUT, kernel_init=self.kernel_init)(x[..., :N_IN]).repeat(2, -1), None


def _linen_scan(kernel_init, num_layers):
  return nn.scan(
    _Block,
    variable_axes={"params": 0},
    split_rngs={"params": True},
    length=num_layers,
    metadata_params={nn.PARTITION_NAME: "layers"},
  )(kernel_init)


def _linen_vmap(kernel_init, num_layers):
  return nn.vmap(
    _Block,
    variable_axes={"params": 0},
    split_rngs={"params": True},
    in_axes=None,
    axis_size=num_layers,
    metadata_params={nn.PARTITION_NAME: "layers"},
  )(kernel_init)


@pytest.mark.parametrize("lift", [_linen_scan, _linen_vmap], ids=["nn.scan", "nn.vmap"])
def test_linen_lifted_stack(lift):
  key, x = jax.random.key(0), jnp.ones((2, N_IN))
  kernel_init = nn.with_partitioning(pw.rewired(BASE), (None, "model"))

  def kernel(init, num_layers=4):
    variables = lift(init, num_layers).init(key, x)
    return variables["params"]["Dense_0"]["kernel"]

  boxed = kernel(kernel_init)
  assert isinstance(boxed, nn.Partitioned) and boxed.names == ("layers", None, "model")
  assert_layerwise_permutation(nn.unbox(boxed), kernel(BASE))
  counts = {n: column_loop_scans(lambda k: lift(pw.rewired(BASE), n).init(k, x), key) for n in LAYER_COUNTS}
  assert counts[LAYER_COUNTS[0]] == counts[LAYER_COUNTS[1]] == (1, 1), counts


def test_jax_vmap_over_seeds_of_a_linen_model():
  model = nn.Dense(N_OUT, kernel_init=pw.rewired(BASE))
  x = jnp.ones((1, N_IN))
  keys = jax.random.split(jax.random.key(1), 3)
  batched = jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, x)["params"]["kernel"]
  for k, kernel in zip(keys, batched, strict=True):
    np.testing.assert_array_equal(kernel, model.init(k, x)["params"]["kernel"])
  base = nn.Dense(N_OUT, kernel_init=BASE)
  assert_layerwise_permutation(batched, jax.vmap(base.init, in_axes=(0, None))(keys, x)["params"]["kernel"])
  counts = {
    n: column_loop_scans(jax.vmap(model.init, in_axes=(0, None)), jax.random.split(jax.random.key(1), n), x)
    for n in LAYER_COUNTS
  }
  assert counts[LAYER_COUNTS[0]] == counts[LAYER_COUNTS[1]] == (1, 1), counts


# --------------------------------------------------------------------------- nnx


def _nnx_vmap_stack(kernel_init, num_layers, key=0):
  @nnx.vmap(in_axes=0, out_axes=0)
  def create(rngs):
    return nnx.Linear(N_IN, N_OUT, kernel_init=kernel_init, rngs=rngs)

  return create(nnx.Rngs(key).split(num_layers)).kernel[...]


def _nnx_scan_stack(kernel_init, num_layers, key=0):
  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
  def create(carry, rngs):
    return carry, nnx.Linear(N_IN, N_OUT, kernel_init=kernel_init, rngs=rngs)

  return create(jnp.zeros(()), nnx.Rngs(key).split(num_layers))[1].kernel[...]


@pytest.mark.parametrize("make_stack", [_nnx_vmap_stack, _nnx_scan_stack], ids=["nnx.vmap", "nnx.scan"])
def test_nnx_lifted_stack(make_stack):
  assert_layerwise_permutation(make_stack(pw.rewired(BASE), 4), make_stack(BASE, 4))
  counts = {n: column_loop_scans(lambda k: make_stack(pw.rewired(BASE), n, k), jax.random.key(0)) for n in LAYER_COUNTS}
  assert counts[LAYER_COUNTS[0]] == counts[LAYER_COUNTS[1]] == (1, 1), counts
