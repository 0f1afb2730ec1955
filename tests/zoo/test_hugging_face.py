"""Hugging Face Flax models (transformers 4.57, the last release with Flax), built from tiny configs, rewired.

Recipe (docs/guides/zoo.md): ``model.params = pw.rewire_params(key, model.params)``. The true axes come from
the models' sources: every ``nn.Dense``/``nn.Conv`` kernel is ``(..., in, out)``; GPT-2's ``FlaxConv1D``
stores ``(features, in)`` and computes ``x @ kernel.T``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from zoo_checks import (
  PAPER_FACTOR,
  PAPER_OFFSET_AT_STD_002,
  check_rewired,
  check_scale_free,
  decreases,
  finite,
)

import parewire_jax as pw

transformers = pytest.importorskip("transformers")
pytestmark = [pytest.mark.zoo, pytest.mark.xdist_group("attention")]  # see .ci/run: step_zoo

KEY = jax.random.key(25)
SEQ, VOCAB = 16, 128


def _models():
  return {
    "bert": lambda: transformers.FlaxBertForMaskedLM(
      transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
      ),
      seed=0,
    ),
    "gpt2": lambda: transformers.FlaxGPT2LMHeadModel(
      transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=1, n_head=4, n_positions=32), seed=0
    ),
    "llama": lambda: transformers.FlaxLlamaForCausalLM(
      transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=32,
      ),
      seed=0,
    ),
    "vit": lambda: transformers.FlaxViTForImageClassification(
      transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=3,
      ),
      seed=0,
    ),
  }


def _true_axes(name):
  def axes(path, shape):
    if not path.endswith("['kernel']"):
      return None  # embeddings ('embedding', cls_token, position_embeddings), LayerNorm, RMSNorm 'weight', biases
    if name == "gpt2" and any(f"['{m}']" in path for m in ("c_attn", "c_fc", "c_proj")):
      return (0,), ()  # FlaxConv1D: (features, in)
    return (len(shape) - 1,), ()

  return axes


def _inputs(name):
  rng = np.random.default_rng(0)
  if name == "vit":
    return {"pixel_values": jnp.asarray(rng.normal(size=(4, 3, 16, 16)), jnp.float32)}, jnp.asarray([0, 1, 2, 0])
  tokens = jnp.asarray(rng.integers(0, VOCAB, size=(4, SEQ)), jnp.int32)
  return {"input_ids": tokens}, tokens


def _loss(model, name, params, inputs, labels):
  logits = model(**inputs, params=params).logits
  if name == "vit":
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  if name in ("gpt2", "llama"):  # next-token prediction
    logits, labels = logits[:, :-1], labels[:, 1:]
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@pytest.fixture(scope="module", params=["bert", "gpt2", "llama", "vit"])
def built(request):
  return request.param, _models()[request.param]()


def test_default_recipe_rewires_the_kernels_over_their_true_axes(built):
  name, model = built
  base = model.params
  new = pw.rewire_params(KEY, base)
  explicit = lambda **axes: pw.rewire_params(KEY, base, **axes)  # noqa: E731
  check_rewired(KEY, base, new, _true_axes(name), factor=None, explicit=explicit)  # see PAPER_OFFSET_AT_STD_002
  inputs, labels = _inputs(name)
  finite(model(**inputs, params=new).logits)  # not model.params = new: the module-scoped model stays the base
  optimizer = optax.adam(1e-3)
  step = jax.jit(
    lambda p, s: (lambda loss, g: (loss, *_apply(optimizer, g, s, p)))(
      *jax.value_and_grad(lambda q: _loss(model, name, q, inputs, labels))(p)
    )
  )
  params, state, losses = new, optimizer.init(new), []
  for _ in range(20):
    loss, params, state = step(params, state)
    losses.append(loss)
  decreases(losses)


def _apply(optimizer, grads, state, params):
  updates, state = optimizer.update(grads, state, params)
  return optax.apply_updates(params, updates), state


@PAPER_OFFSET_AT_STD_002
def test_paper_offset_lowers_the_variance_twofold(built):
  name, model = built
  check_rewired(KEY, model.params, pw.rewire_params(KEY, model.params), _true_axes(name), factor=PAPER_FACTOR)


def test_scale_free_lowers_the_variance_fivefold(built):
  name, model = built
  new = pw.rewire_params(KEY, model.params, scale_free=True)  # type: ignore[call-arg]
  check_scale_free(KEY, model.params, new, _true_axes(name))
