"""Haiku (dm-haiku 0.0.17): hk.nets.MLP with the rewired initializer, hk.nets.ResNet18 through its params.

Recipes (docs/guides/zoo.md): ``w_init=pwhk.rewired(...)`` where a module takes ``w_init``; for ResNet18
(whose convolutions take none) ``pw.rewire_params(key, params)``. Haiku's ``Linear`` ``w`` is ``(in, out)``,
``ConvND`` ``w`` ``(*kernel, in, out)``; BatchNorm's ``(1, 1, 1, C)`` scale and offset are left alone.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from zoo_checks import PAPER_FACTOR, check_rewired, check_scale_free, decreases, finite

import parewire_jax as pw

hk = pytest.importorskip("haiku")
pwhk = pytest.importorskip("parewire_jax.haiku_adapter")
pytestmark = [pytest.mark.zoo, pytest.mark.xdist_group("resnet")]  # see .ci/run: step_zoo

KEY = jax.random.key(25)


def _true_axes(path, shape):
  return ((len(shape) - 1,), ()) if path.endswith("['w']") else None


def _train(loss_fn, params, steps=20):
  optimizer = optax.adam(1e-3)

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = optimizer.update(grads, state, params)
    return loss, optax.apply_updates(params, updates), state

  state, losses = optimizer.init(params), []
  for _ in range(steps):
    loss, params, state = step(params, state)
    losses.append(loss)
  decreases(losses)


X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 96)), jnp.float32)
Y = jnp.arange(8) % 10


def test_mlp_with_the_rewired_initializer():
  he = hk.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal")
  base_net = hk.transform(lambda x: hk.nets.MLP([128, 128, 10], w_init=he)(x))
  net = hk.transform(lambda x: hk.nets.MLP([128, 128, 10], w_init=pwhk.rewired(he))(x))
  base, params = base_net.init(KEY, X), net.init(KEY, X)
  # Each layer is a permutation of the base draw in its place; the strengths of the large ones drop ≥ 2×.
  first = "mlp/~/linear_0"
  assert np.array_equal(np.sort(np.asarray(params[first]["w"]).ravel()), np.sort(np.asarray(base[first]["w"]).ravel()))
  ratio = pw.strength_stats(base[first]["w"]).in_variance / pw.strength_stats(params[first]["w"]).in_variance
  assert ratio >= PAPER_FACTOR
  finite(net.apply(params, None, X))
  _train(lambda p: optax.softmax_cross_entropy_with_integer_labels(net.apply(p, None, X), Y).mean(), params)


def test_rewired_initializer_outside_transform_is_a_clear_error():
  with pytest.raises(ValueError, match="inside hk.transform"):
    pwhk.rewired(hk.initializers.VarianceScaling(2.0))((4, 3), jnp.float32)


def test_mlp_params_rewired_over_their_true_axes():
  net = hk.transform(lambda x: hk.nets.MLP([128, 128, 10])(x))
  base = net.init(KEY, X)
  new = pw.rewire_params(KEY, base)
  check_rewired(KEY, base, new, _true_axes, factor=PAPER_FACTOR, explicit=lambda **a: pw.rewire_params(KEY, base, **a))


IMAGES = jnp.asarray(np.random.default_rng(1).normal(size=(4, 16, 16, 3)), jnp.float32)


@pytest.fixture(scope="module")
def resnet():
  net = hk.transform_with_state(lambda x, training: hk.nets.ResNet18(10)(x, is_training=training))
  params, state = net.init(KEY, IMAGES, True)
  return net, params, state


def test_resnet18_params_rewired_then_trained(resnet):
  net, base, state = resnet
  new = pw.rewire_params(KEY, base)
  check_rewired(KEY, base, new, _true_axes, factor=PAPER_FACTOR, explicit=lambda **a: pw.rewire_params(KEY, base, **a))
  finite(net.apply(new, state, None, IMAGES, False)[0])

  def loss_fn(p):
    logits, _ = net.apply(p, state, None, IMAGES, True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(4)).mean()

  _train(loss_fn, new)


def test_scale_free_lowers_the_variance_fivefold(resnet):
  _, base, _ = resnet
  new = pw.rewire_params(KEY, base, scale_free=True)
  check_scale_free(KEY, base, new, _true_axes)


def test_five_fold_per_kernel_is_beyond_the_paper_at_its_own_scale():
  """Why the per-kernel scale-free floor is 3× (zoo_checks.SCALE_FREE_FLOOR), not the 5× issue 25 asked for.

  On Kaiming-normal 3×3, 64→64 convs (the shape of ResNet18's first block), the paper's own algorithm with its
  own offset lowers the input-strength variance less than 5× on most draws; ``scale_free`` draws as if the kernel
  had that scale, so it cannot do more on this shape. The std-0.02 copies of the same draws reach the same
  range with ``scale_free`` and less with the paper's offset (about 2× here).
  """
  shape, he = (3, 3, 64, 64), jax.nn.initializers.he_normal()
  kaiming, small, free = [], [], []
  for seed in range(8):
    draw_key, rewire_key = jax.random.split(jax.random.key(seed))
    w = he(draw_key, shape)
    w_small = w * (0.02 / jnp.std(w))
    kaiming.append(_in_variance_ratio(w, pw.rewire(rewire_key, w)))
    small.append(_in_variance_ratio(w_small, pw.rewire(rewire_key, w_small)))
    free.append(_in_variance_ratio(w_small, pw.rewire(rewire_key, w_small, scale_free=True)))
  assert np.median(kaiming) < 5.0 and np.median(free) < 5.0, (kaiming, free)
  assert min(kaiming) > 2.5 and min(free) > 2.5, (kaiming, free)
  assert np.median(small) < 0.75 * np.median(kaiming), (small, kaiming)  # Eq. 5's +1 at std 0.02


def _in_variance_ratio(base, new):
  return float(pw.strength_stats(base).in_variance / pw.strength_stats(new).in_variance)
