"""The fast LeNet of the experiments against its plain ``nn.Conv`` reference (§4.2).

Both compute the same function from the same parameters; only the float32
summation order differs (patch matrix products instead of XLA convolutions,
pooling before bias and ReLU). The largest differences seen are ~2e-6 of the
largest logit and ~6e-7 of the largest gradient entry of a leaf, from sums of
up to 800 float32 products taken in another order; the tolerance, 1e-5 of the
largest value of each array, leaves an order of magnitude of room and would
still catch a wrong index, a missing term or a misrouted gradient, which
change entries by O(1) of their size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from parewire_jax.experiments import lenet, models
from parewire_jax.experiments.seeds import seed_keys

RELATIVE_TOLERANCE = 1e-5


def _as_reference(params: dict) -> dict:
  """LeNet's parameter names mapped onto ConvLeNet's (same shapes and meaning)."""
  names = {"PatchConv_0": "Conv_0", "PatchConv_1": "Conv_1", "Dense_0": "Dense_0", "Dense_1": "Dense_1"}
  return {names[k]: v for k, v in params.items()}


def _assert_close(actual, expected) -> None:
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    a, e = np.asarray(a), np.asarray(e)
    assert a.shape == e.shape and a.dtype == e.dtype
    np.testing.assert_allclose(a, e, rtol=0, atol=RELATIVE_TOLERANCE * np.abs(e).max())


def _loss(model, params, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": params}, x), y).mean()


@pytest.mark.parametrize("shape", [(8, 28, 28, 1), (4, 32, 32, 3), (3, 17, 19, 1)])
def test_lenet_equals_the_nn_conv_reference(shape):
  # 28×28 gray (MNIST), 32×32 RGB (CIFAR-10), odd sizes (pooling drops the last row / column).
  init = models.kernel_initializer("kaiming_normal")
  fast, reference = lenet.LeNet(10, init), lenet.ConvLeNet(10, init)
  x = jax.random.uniform(jax.random.key(0), shape)
  y = jax.random.randint(jax.random.key(1), shape[:1], 0, 10)
  # Jitted, as the experiments run them (op by op, the same checks take several times longer).
  params = jax.jit(fast.init)(jax.random.key(2), x)["params"]
  assert jax.tree.map(jnp.shape, _as_reference(params)) == jax.tree.map(
    jnp.shape, jax.eval_shape(reference.init, jax.random.key(2), x)["params"]
  )
  _assert_close(
    jax.jit(fast.apply)({"params": params}, x), jax.jit(reference.apply)({"params": _as_reference(params)}, x)
  )
  loss, grads = jax.jit(jax.value_and_grad(lambda p: _loss(fast, p, x, y)))(params)
  loss_ref, grads_ref = jax.jit(jax.value_and_grad(lambda p: _loss(reference, p, x, y)))(_as_reference(params))
  _assert_close(loss, loss_ref)
  _assert_close(_as_reference(grads), grads_ref)


def test_lenet_equals_the_reference_vmapped_over_seeds():
  # The experiments' path: one step's gradients for many seeds at once, the batch shared by all of them.
  init = models.kernel_initializer("kaiming_normal", "rewired")
  fast, reference = lenet.LeNet(10, init), lenet.ConvLeNet(10, init)
  x = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1))
  y = jax.random.randint(jax.random.key(1), (16,), 0, 10)
  params = jax.jit(jax.vmap(lambda key: fast.init(key, x)["params"]))(seed_keys(range(3)))

  def grads(model, p):
    return jax.jit(jax.vmap(jax.value_and_grad(lambda q: _loss(model, q, x, y))))(p)

  (loss, g), (loss_ref, g_ref) = grads(fast, params), grads(reference, _as_reference(params))
  _assert_close(loss, loss_ref)
  for seed in range(3):  # each seed against its own scale
    _assert_close(jax.tree.map(lambda a, s=seed: a[s], _as_reference(g)), jax.tree.map(lambda a, s=seed: a[s], g_ref))


def test_patches_and_their_fold_are_transposes():
  # <patches(x), d> = <x, fold(d)> for all x, d: the backward pass of the convolution is the exact adjoint.
  x = jax.random.normal(jax.random.key(0), (3, 9, 8, 2))
  d = jax.random.normal(jax.random.key(1), (5 * 5 * 3, 5, 4, 2))
  lhs = jnp.vdot(lenet.patches(x, 5), d)
  rhs = jnp.vdot(x, lenet._fold_patches(d, 3, 5))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
  # and the fold equals autodiff's transpose of the gather
  _, transpose = jax.vjp(lambda v: lenet.patches(v, 5), x)
  np.testing.assert_allclose(lenet._fold_patches(d, 3, 5), transpose(d)[0], rtol=1e-5, atol=1e-5)


def test_max_pool_gradient_shares_ties_like_jnp_max():
  # Integer-valued activations tie often; the hand-written gradient must split them as jnp.max does.
  y = jnp.floor(jax.random.uniform(jax.random.key(0), (3, 6, 4, 5)) * 3)
  cotangent = jax.random.normal(jax.random.key(1), (3, 3, 2, 5))

  def by_max(v):
    c, h, w, b = v.shape
    return v.reshape(c, h // 2, 2, w // 2, 2, b).max(axis=(2, 4))

  np.testing.assert_array_equal(lenet.max_pool_2x2(y), by_max(y))
  expected = jax.vjp(by_max, y)[1](cotangent)[0]
  np.testing.assert_allclose(jax.vjp(lenet.max_pool_2x2, y)[1](cotangent)[0], expected, rtol=1e-6)


def test_lenet_refuses_small_images():
  with pytest.raises(ValueError, match="lenet needs images of at least 16×16"):
    lenet.LeNet(10).init(jax.random.key(0), jnp.zeros((1, 15, 28, 1)))
