"""Keras 3 (JAX backend) and keras-hub backbones built from tiny configs, rewired in place.

Recipe (docs/guides/zoo.md): ``pwk.rewire_model(key, backbone)``. keras-hub's backbones hard-code their
initializers (std 0.02), so the built variables are rewired. True axes, from the layers: ``EinsumDense``
attention projections ``"abc,cde->abde"`` / LLaMA's ``"bqm,muh->bquh"`` are ``(hidden, heads, head_dim)`` with
outputs ``(heads, head_dim)``; their output projections ``(heads, head_dim, hidden)`` output ``hidden``;
``Dense`` kernels ``(in, out)``; the untied ``reverse_embeddings`` ``(hidden, vocabulary)``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402
from jax.tree_util import DictKey  # noqa: E402
from zoo_checks import (  # noqa: E402
  PAPER_FACTOR,
  PAPER_OFFSET_AT_STD_002,
  check_rewired,
  check_scale_free,
  decreases,
  finite,
)

import parewire_jax as pw  # noqa: E402

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")
pwk = pytest.importorskip("parewire_jax.keras_adapter")
pytestmark = [pytest.mark.zoo, pytest.mark.xdist_group("attention")]  # see .ci/run: step_zoo

KEY = jax.random.key(25)
VOCAB, SEQ = 128, 16


def _true_axes(path, shape):
  name = path.strip("[]'")
  last = name.rpartition("/")[2]
  owner = name.rpartition("/")[0].rpartition("/")[2]
  if last == "reverse_embeddings":
    return (1,), ()
  if last != "kernel":
    return None  # embeddings, norms (gamma/beta/scale), biases
  if owner in ("query", "key", "value"):
    return (1, 2), ()
  return (len(shape) - 1,), ()


def _backbone(name):
  if name == "llama":
    return keras_hub.models.LlamaBackbone(
      vocabulary_size=VOCAB,
      num_layers=1,
      num_query_heads=4,
      hidden_dim=64,
      intermediate_dim=128,
      num_key_value_heads=2,
    )
  return keras_hub.models.BertBackbone(
    vocabulary_size=VOCAB, num_layers=1, num_heads=4, hidden_dim=64, intermediate_dim=128, max_sequence_length=32
  )


def _values(model):
  return {v.path: v.value for v in model.weights}


def _explicit(base):
  return lambda **axes: pw.rewire_params(KEY, base, **axes)


@pytest.fixture(scope="module", params=["llama", "bert"])
def built(request):
  return request.param, _backbone(request.param)


def test_rewire_model_over_the_layers_true_axes_then_train(built):
  name, backbone = built
  base = _values(backbone)
  layouts = pwk.rewire_model(KEY, backbone)
  assert {p: (lay.out_axes, lay.batch_axes) for p, lay in layouts.items()} == {
    p: _true_axes(f"['{p}']", tuple(x.shape)) for p, x in base.items() if _true_axes(f"['{p}']", tuple(x.shape))
  }
  check_rewired(KEY, base, _values(backbone), _true_axes, factor=None, explicit=_explicit(base))

  rng = np.random.default_rng(0)
  tokens = rng.integers(1, VOCAB, size=(4, SEQ)).astype("int32")
  mask = np.ones((4, SEQ), "int32")
  if name == "llama":
    model = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    x, y = {"token_ids": tokens[:, :-1], "padding_mask": mask[:, :-1]}, tokens[:, 1:]
  else:
    model = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=None)
    x, y = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": mask}, np.array([0, 1, 2, 0])
  finite(model(x))
  # 20 steps of the JAX backend's stateless API (model.fit would need tf.data or grain for dict inputs).
  trainable = [v.value for v in model.trainable_variables]
  frozen = [v.value for v in model.non_trainable_variables]
  optimizer = optax.adam(1e-3)

  def loss_fn(values):
    logits, _ = model.stateless_call(values, frozen, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(values, state):
    loss, grads = jax.value_and_grad(loss_fn)(values)
    updates, state = optimizer.update(grads, state, values)
    return loss, optax.apply_updates(values, updates), state

  state, losses = optimizer.init(trainable), []
  for _ in range(20):
    loss, trainable, state = step(trainable, state)
    losses.append(loss)
  decreases(losses)


@PAPER_OFFSET_AT_STD_002
def test_paper_offset_lowers_the_variance_twofold(built):
  name, _ = built
  backbone = _backbone(name)
  base = _values(backbone)
  pwk.rewire_model(KEY, backbone)
  check_rewired(KEY, base, _values(backbone), _true_axes, factor=PAPER_FACTOR)


def test_scale_free_lowers_the_variance_fivefold(built):
  name, _ = built
  backbone = _backbone(name)
  base = _values(backbone)
  pwk.rewire_model(KEY, backbone, scale_free=True)
  check_scale_free(KEY, base, _values(backbone), _true_axes)


def test_rewired_initializer_follows_keras_conventions():
  init = pwk.Rewired(keras.initializers.HeNormal(seed=1), seed=2)
  w, base = init((96, 80)), keras.initializers.HeNormal(seed=1)((96, 80))
  assert np.array_equal(np.sort(np.asarray(w).ravel()), np.sort(np.asarray(base).ravel()))
  assert pw.strength_stats(base).in_variance >= PAPER_FACTOR * pw.strength_stats(w).in_variance
  clone = keras.initializers.deserialize(keras.initializers.serialize(init))
  assert isinstance(clone, pwk.Rewired) and np.array_equal(np.asarray(clone((96, 80))), np.asarray(w))
  # An attention query kernel (96, 4, 16) holds its outputs over (heads, head_dim): its initializer says so.
  query_init = pwk.Rewired("he_normal", out_axis=pw.einsum_kernel_axes("abc,cde->abde")[0], seed=4)
  layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 4, 16), kernel_initializer=query_init)
  layer.build((None, 8, 96))
  he = keras.initializers.get("he_normal")
  before = pw.strength_stats(he((96, 4, 16)), out_axis=(1, 2))
  after = pw.strength_stats(layer.kernel.value, out_axis=(1, 2))
  assert before.out_variance >= PAPER_FACTOR * after.out_variance
  assert before.in_variance >= PAPER_FACTOR * after.in_variance
  with pytest.raises(ValueError, match="out_axis"):
    pwk.Rewired("he_normal", out_axis=3)((96, 4, 16))
  with pytest.raises(ValueError, match="rank-3 kernel.*EinsumDense"):
    pwk.Rewired("he_normal")((96, 4, 16))  # never a guess between Conv1D and EinsumDense
  generator = pwk.Rewired("he_normal", seed=keras.random.SeedGenerator(3))
  assert not np.array_equal(np.asarray(generator((8, 8))), np.asarray(generator((8, 8))))
  with pytest.raises(ValueError, match="seed"):
    pwk.Rewired("he_normal", seed="three")


def test_unbuilt_models_and_unknown_variables_are_clear_errors():
  with pytest.raises(ValueError, match="not built"):
    pwk.kernel_layouts(keras.layers.Dense(4))

  class Custom(keras.layers.Layer):
    def build(self, shape):
      self.mixing = self.add_weight(shape=(shape[-1], 8), name="mixing")

    def call(self, x):
      return x @ self.mixing

  layer = Custom()
  layer.build((None, 4))
  with pytest.raises(ValueError, match="mixing"):
    pwk.kernel_layouts(layer)
  assert list(pwk.kernel_layouts(layer, where=lambda p, x: True)) == [layer.mixing.path]
  assert DictKey(layer.mixing.path)
