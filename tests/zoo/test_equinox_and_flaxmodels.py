"""equimo's Equinox ViT and flaxmodels' linen ResNet18, built from configs (no weights downloaded).

Recipes (docs/guides/zoo.md): equimo ``pw.rewire_params(key, model)`` (its ``eqx.nn.Linear``/``Conv`` weights are
``(out, in, ...)``, read from the modules: no ``out_axis=0`` needed); flaxmodels ``rewire_params`` on its
variables (its ``kernel_init`` reaches only the stem convolution and the classifier, not the blocks).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from zoo_checks import check_rewired, check_scale_free, decreases, finite

import parewire_jax as pw

pytestmark = pytest.mark.zoo  # the equimo tests share the attention group's shapes, flaxmodels the ResNet's
KEY = jax.random.key(25)


def _train(loss_fn, params, grad=jax.value_and_grad, steps=20):
  optimizer = optax.adam(1e-3)

  @jax.jit
  def step(params, state):
    loss, grads = grad(loss_fn)(params)
    updates, state = optimizer.update(grads, state, params)
    return loss, optax.apply_updates(params, updates), state

  state, losses = optimizer.init(params), []
  for _ in range(steps):
    loss, params, state = step(params, state)
    losses.append(loss)
  decreases(losses)


# --------------------------------------------------------------------------- equimo (Equinox)


def _equimo_true_axes(path, shape):
  return ((0,), ()) if path.endswith(".weight") and len(shape) >= 2 and "pos_embed" not in path else None


@pytest.fixture(scope="module")
def vit():
  pytest.importorskip("equimo")
  import equimo.models as em

  return em.VisionTransformer(
    img_size=16,
    in_channels=3,
    dim=64,
    patch_size=4,
    num_heads=4,
    depths=[1],
    num_classes=10,
    reg_tokens=1,
    key=jax.random.key(0),
  )


@pytest.mark.xdist_group("attention")
def test_equimo_vit_rewired_over_its_modules_axes_then_trained(vit):
  eqx = pytest.importorskip("equinox")
  new = pw.rewire_params(KEY, vit)
  check_rewired(KEY, vit, new, _equimo_true_axes, explicit=lambda **a: pw.rewire_params(KEY, vit, **a))
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 16, 16)), jnp.float32)
  labels = jnp.arange(4)
  keys = jax.random.split(jax.random.key(1), 4)
  finite(jax.vmap(lambda x, k: new(x, k, inference=True))(images, keys))
  params, static = eqx.partition(new, eqx.is_inexact_array)

  def loss_fn(p):
    model = eqx.combine(p, static)
    logits = jax.vmap(lambda x, k: model(x, k, inference=True))(images, keys)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  _train(loss_fn, params)


@pytest.mark.xdist_group("attention")
def test_equimo_scale_free(vit):
  check_scale_free(KEY, vit, pw.rewire_params(KEY, vit, scale_free=True), _equimo_true_axes)


# --------------------------------------------------------------------------- flaxmodels (linen)


def _flax_true_axes(path, shape):
  return ((len(shape) - 1,), ()) if path.endswith("['kernel']") else None


IMAGES = jnp.asarray(np.random.default_rng(1).normal(size=(4, 16, 16, 3)), jnp.float32)


@pytest.fixture(scope="module")
def flaxmodels_variables():
  fm = pytest.importorskip("flaxmodels")
  return fm, fm.ResNet18(pretrained=None, num_classes=10).init(KEY, IMAGES, train=False)


@pytest.mark.xdist_group("resnet")
def test_flaxmodels_resnet18_variables_rewired_then_trained(flaxmodels_variables):
  fm, variables = flaxmodels_variables
  new = pw.rewire_params(KEY, variables)  # params and batch_stats: only the kernels move
  check_rewired(KEY, variables, new, _flax_true_axes, explicit=lambda **a: pw.rewire_params(KEY, variables, **a))
  model = fm.ResNet18(pretrained=None, num_classes=10)
  finite(model.apply(new, IMAGES, train=False))

  def loss_fn(p):
    logits, _ = model.apply({**new, "params": p}, IMAGES, train=True, mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(4)).mean()

  _train(loss_fn, new["params"])


@pytest.mark.xdist_group("resnet")
def test_flaxmodels_kernel_init_reaches_the_stem_and_the_classifier_only(flaxmodels_variables):
  """Why the recipe is rewire_params: flaxmodels passes kernel_init to two layers, its blocks keep lecun_normal."""
  fm, base = flaxmodels_variables
  he = jax.nn.initializers.he_normal()
  variables = fm.ResNet18(pretrained=None, num_classes=10, kernel_init=pw.rewired(he)).init(KEY, IMAGES, train=False)
  reference = fm.ResNet18(pretrained=None, num_classes=10, kernel_init=he).init(KEY, IMAGES, train=False)
  # The two reached kernels are permutations of the he_normal draw with ≥ 2× lower strength variances; every
  # other leaf (the blocks' kernels included) is the plain model's, bit for bit.
  reached = ("['Conv_0']['kernel']", "['Dense_0']['kernel']")
  check_rewired(
    KEY, reference["params"], variables["params"], lambda p, s: _flax_true_axes(p, s) if p in reached else None
  )
  block = base["params"]["BasicBlock_0"]["Conv_0"]["kernel"]
  np.testing.assert_array_equal(np.asarray(variables["params"]["BasicBlock_0"]["Conv_0"]["kernel"]), np.asarray(block))
