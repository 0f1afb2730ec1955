"""The models and data of the effect atlas: LeNet's norms, the residual MLP, the transformer, the pointer task.

Every test is sized for 2 CPU cores: tiny widths and datasets, one epoch, and
one compiled run per model shared by its tests (module-scoped fixtures).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_bit_permutation, assert_bits_equal, random_images, small_mlp as _mlp, tiny_dataset
from scipy import stats as sps

from parewire_jax import rewiring_key, strength_stats
from parewire_jax.experiments import data, models, settings
from parewire_jax.experiments.compare import CompareSettings, run_compare
from parewire_jax.experiments.lenet import LeNet
from parewire_jax.experiments.seeds import seed_keys, seed_mesh
from parewire_jax.experiments.steps import eval_batches, make_step_functions

TOKENS = jnp.zeros((1, 9), jnp.int32)


def _initial_params(model_for: dict[str, nn.Module], x: jax.Array) -> dict[str, dict]:
  """The parameters of each variant's model from init seed 0 (eagerly: each kernel shape compiles once)."""
  return {variant: model.init(jax.random.key(0), x)["params"] for variant, model in model_for.items()}


def _assert_rewired_kernels_permute_base(params: dict[str, dict]) -> None:
  """Each rewired kernel holds its base kernel's values, bit for bit (§3.1 moves weights between neurons, so
  the values of a column change but those of the whole kernel do not)."""
  base, rewired = models.kernels(params["base"]), models.kernels(params["rewired"])
  assert list(rewired) == list(base)
  for name, kernel in base.items():
    assert_bit_permutation(rewired[name], kernel)
    assert not np.array_equal(rewired[name], kernel), name


# ---------------------------------------------------------------------------------------------- pointer task


def test_pointer_task_is_deterministic_balanced_and_labelled_by_construction():
  ds = data.load_dataset("pointer")
  assert (
    (len(ds.x_train), len(ds.x_val), len(ds.x_test))
    == (16384, 2000, 2000)
    == (
      settings.TRAIN_SIZES["pointer"],
      2000,
      2000,
    )
  )
  again = data.load_dataset("pointer", limit_train=100, limit_eval=10)
  np.testing.assert_array_equal(again.x_train, ds.x_train[:100])
  np.testing.assert_array_equal(again.y_test, ds.y_test[:10])
  for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
    assert x.dtype == y.dtype == np.int32 and x.shape[1] == 9
    pointer = x[:, 0] - 7
    assert pointer.min() == 1 and pointer.max() == 8
    assert x[:, 1:].min() == 0 and x[:, 1:].max() == 7  # content tokens never look like pointers
    np.testing.assert_array_equal(y, x[np.arange(len(x)), pointer])
    counts = np.bincount(y, minlength=8)
    assert counts.max() < 1.15 * len(y) / 8 and counts.min() > 0.85 * len(y) / 8
  assert not np.array_equal(ds.x_val, ds.x_test)  # the splits are distinct draws
  np.testing.assert_array_equal(data.pointer_sequences(50, 3)[0], data.pointer_sequences(50, 3)[0])
  assert not np.array_equal(data.pointer_sequences(50, 3)[0], data.pointer_sequences(50, 4)[0])
  # Tokens are categories: standardize leaves them alone.
  np.testing.assert_array_equal(data.load_dataset("pointer", standardize=True).x_train, ds.x_train)


# ---------------------------------------------------------------------------------------------- transformer


@pytest.fixture(scope="module")
def transformer_run():
  config = CompareSettings().replace(
    dataset="pointer",
    model="transformer",
    seeds=2,
    limit_train=128,
    limit_eval=64,
    batch_size=64,
    optimizer="adam",
    learning_rate=1e-3,
  )
  return run_compare(config)


def test_transformer_trains_end_to_end(transformer_run):
  for variant in ("base", "rewired"):
    result = transformer_run.results[variant]
    assert result.val_acc.shape == (2, 1) and np.isfinite(result.train_loss).all()
    # Attention (q, k, v, out) and the MLP of both layers, and the classifier: no embedding.
    assert len(result.layer_names) == 13 and not any("embed" in name for name in result.layer_names)
  base, rewired = (transformer_run.results[v].init_mean_variance for v in ("base", "rewired"))
  assert (rewired < base).all()
  assert "adam" in transformer_run.table.splitlines()[0]


def test_transformer_rewires_attention_and_mlp_kernels_but_not_embeddings():
  # Every kernel 8×8 (8 classes), as in the resmlp test: the eager rewiring compiles once for both.
  small = {
    v: models.Transformer(8, models.kernel_initializer("kaiming_normal", v), d_model=8, num_layers=1, mlp_ratio=1)
    for v in ("base", "rewired")
  }
  params = _initial_params(small, TOKENS)
  assert sorted(models.kernels(params["base"])) == sorted(
    [f"SelfAttention_0/{p}/kernel" for p in ("key", "out", "query", "value")] + [f"Dense_{i}/kernel" for i in range(3)]
  )
  _assert_rewired_kernels_permute_base(params)
  for name in ("Embed_0", "position_embedding"):
    assert_bits_equal(params["rewired"][name], params["base"][name])  # drawn alike, never rewired


# ---------------------------------------------------------------------------------------------- residual MLP


def test_resmlp_trains_end_to_end():
  config = CompareSettings().replace(
    dataset="digits", model="resmlp", seeds=2, batch_size=64, learning_rate=0.05, mlp_hidden=(8,), norm="layer"
  )
  outcome = run_compare(config, dataset=tiny_dataset(128))
  assert outcome.results["rewired"].layer_names == tuple(f"Dense_{i}/kernel" for i in range(4))
  assert np.isfinite(outcome.results["rewired"].val_loss).all()
  assert "(layer norm)" in outcome.table.splitlines()[0]


def test_resmlp_rewires_every_kernel_and_has_a_pre_layer_norm_per_block():
  built = {
    v: models.build_model("resmlp", 8, models.kernel_initializer("kaiming_normal", v), mlp_hidden=(8, 8))
    for v in ("base", "rewired")
  }  # every kernel 8×8, as in the transformer test
  _assert_rewired_kernels_permute_base(_initial_params(built, jnp.zeros((1, 8))))
  # One LayerNorm per block and one before the classifier; none without a norm.
  for norm, expected in (("layer", [f"LayerNorm_{i}" for i in range(4)]), ("none", [])):
    model = models.build_model("resmlp", 3, models.base_initializer("orthogonal"), mlp_hidden=(8, 8, 8), norm=norm)
    names = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 6, 6, 1)))["params"]
    assert sorted(n for n in names if n.startswith("LayerNorm")) == expected


# ---------------------------------------------------------------------------------------------- LeNet norms


def test_lenet_batch_norm_state_is_carried_through_training_and_used_by_evaluation():
  ds = random_images(128)
  model = LeNet(3, models.base_initializer("kaiming_normal"), norm="batch")
  x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
  fns = make_step_functions(
    model,
    optax.sgd(0.01),
    x[:1],
    seeds_per_vmap=None,
    track_gradients=False,
    laperm_evaluation=False,
    mesh=seed_mesh(1),
  )
  params, state, opt_state, counts, _, _ = fns.init(jnp.asarray([0, 1], jnp.uint32), x[:1])
  assert sorted(state["batch_stats"]) == ["BatchNorm_0", "PatchConv_0", "PatchConv_1"]
  assert "bias" not in params["PatchConv_0"] and "bias" not in params["Dense_0"]  # the norm's shift replaces it
  carry, loss, _, _ = fns.segment(((params, state, opt_state), counts), x, y, jnp.arange(128).reshape(2, 64))
  (trained, trained_state, _), _ = carry
  assert np.isfinite(loss).all()
  running_mean = trained_state["batch_stats"]["PatchConv_0"]["BatchNorm_0"]["mean"]
  assert running_mean.shape == (2, 20) and not np.allclose(running_mean, 0)  # batch statistics were folded in
  val = eval_batches(ds.x_val, ds.y_val, 64)
  with_running, without = fns.evaluate(trained, trained_state, *val), fns.evaluate(trained, state, *val)
  assert not np.allclose(with_running[0], without[0])  # evaluation reads the carried running averages


def test_lenet_layer_norm_normalises_each_example_and_keeps_no_state():
  model = LeNet(3, models.base_initializer("kaiming_normal"), norm="layer")
  x = jnp.asarray(random_images(4).x_train[:4])
  variables = jax.jit(model.init)(jax.random.key(0), x)
  assert sorted(variables) == ["params"]
  assert variables["params"]["PatchConv_1"]["LayerNorm_0"]["scale"].shape == (50,)  # one per channel
  assert variables["params"]["LayerNorm_0"]["scale"].shape == (500,)
  # LayerNorm is per example: an example's logits do not depend on the rest of the batch.
  apply = jax.jit(model.apply)
  np.testing.assert_array_equal(apply(variables, x)[0], apply(variables, x.at[1:].set(0.0))[0])


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("init", models.INITIALIZERS)
def test_variants_share_the_base_draw_per_seed(init):
  keys = seed_keys([0, 1, 2])
  draws = {
    v: jax.vmap(lambda k: models.kernel_initializer(init, v, num_draws=4)(k, (3, 2, 4, 5)))(keys)
    for v in models.INIT_VARIANTS
  }
  base = draws["base"]
  np.testing.assert_array_equal(base, jax.vmap(lambda k: models.base_initializer(init)(k, (3, 2, 4, 5)))(keys))
  for seed in range(3):
    # rewired: a permutation of the base draw of the same seed, and not the base draw itself
    np.testing.assert_array_equal(np.sort(draws["rewired"][seed].ravel()), np.sort(base[seed].ravel()))
    assert not np.array_equal(draws["rewired"][seed], base[seed])
    # min_sv and max_sv pick among the same candidates
    assert strength_stats(draws["min_sv"][seed]).mean_variance <= strength_stats(draws["max_sv"][seed]).mean_variance
  assert not np.array_equal(base[0], base[1])  # the seed matters


def test_model_variants_share_per_kernel_keys():
  """Flax derives each kernel's key from the init key and its path, so variants pair up per seed."""
  x = jnp.zeros((1, 6, 6, 1))
  params = {
    v: jax.jit(jax.vmap(lambda k: _mlp(v, hidden=(12, 8)).init(k, x)["params"]))(seed_keys([0, 1]))
    for v in ("base", "rewired")
  }
  for name, base in models.kernels(params["base"], seed_axis=True).items():
    rewired = models.kernels(params["rewired"], seed_axis=True)[name]
    for seed in range(2):
      np.testing.assert_array_equal(np.sort(rewired[seed].ravel()), np.sort(base[seed].ravel()))
      assert strength_stats(rewired[seed]).mean_variance < strength_stats(base[seed]).mean_variance


def test_rewired_kernel_is_the_core_rewiring_of_the_base_kernel():
  key = jax.random.key(3)
  base = models.base_initializer("orthogonal")(key, (20, 10))
  from parewire_jax import rewire

  np.testing.assert_array_equal(
    models.kernel_initializer("orthogonal", "rewired")(key, (20, 10)), rewire(rewiring_key(key), base)
  )


def test_scale_free_variant_is_the_core_scale_free_rewiring_of_the_base_kernel():
  from parewire_jax import rewire

  key = jax.random.key(4)
  base = models.base_initializer("normal_0.02")(key, (64, 32))
  assert float(jnp.std(base)) == pytest.approx(0.02, rel=0.05)
  free = models.kernel_initializer("normal_0.02", "rewired_scale_free")(key, (64, 32))
  np.testing.assert_array_equal(free, rewire(rewiring_key(key), base, scale_free=True))
  assert not np.array_equal(free, models.kernel_initializer("normal_0.02", "rewired")(key, (64, 32)))


def test_kaiming_initializers_have_pytorch_variance():
  shape = (400, 500)  # fan_in 400: PyTorch's kaiming_*_ (fan_in, relu) has std sqrt(2/400)
  std = math.sqrt(2 / 400)
  for name in ("kaiming_normal", "kaiming_uniform", "truncated_normal"):
    w = np.asarray(models.base_initializer(name)(jax.random.key(0), shape))
    assert abs(w.std() / std - 1) < 0.01, name
  uniform = np.asarray(models.base_initializer("kaiming_uniform")(jax.random.key(0), shape))
  assert np.abs(uniform).max() <= std * math.sqrt(3)
  truncated = np.asarray(models.base_initializer("truncated_normal")(jax.random.key(0), shape))
  sigma = std / models._TRUNC3_STD  # the untruncated normal's sigma
  assert np.abs(truncated).max() <= 3 * sigma
  assert np.abs(truncated).max() > 2.5 * sigma  # truncated at 3σ, not jax's 2σ
  orthogonal = np.asarray(models.base_initializer("orthogonal")(jax.random.key(0), (3, 3, 8, 16)))
  matrix = orthogonal.reshape(-1, 16)
  np.testing.assert_allclose(matrix.T @ matrix, np.eye(16), atol=1e-5)


def test_truncated_std_constant_matches_scipy():
  assert models._TRUNC3_STD == pytest.approx(sps.truncnorm(-3, 3).std(), rel=1e-12)


def test_unknown_names_are_value_errors():
  with pytest.raises(ValueError, match="init must be one of"):
    models.base_initializer("xavier")
  with pytest.raises(ValueError, match="variant must be one of"):
    models.kernel_initializer("orthogonal", "shuffled")
  with pytest.raises(ValueError, match="model must be one of"):
    models.build_model("vgg", 10, models.base_initializer("orthogonal"))
  with pytest.raises(ValueError, match="num_classes"):
    models.build_model("mlp", 1, models.base_initializer("orthogonal"))


def test_lenet_and_resnet_shapes():
  lenet = models.build_model("lenet", 10, models.base_initializer("kaiming_normal"))
  params = jax.eval_shape(lenet.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  assert {k: v.shape for k, v in models.kernels(params).items()} == {
    "PatchConv_0/kernel": (5, 5, 1, 20),
    "PatchConv_1/kernel": (5, 5, 20, 50),
    "Dense_0/kernel": (800, 500),
    "Dense_1/kernel": (500, 10),
  }
  resnet = models.build_model("resnet18", 10, models.base_initializer("kaiming_normal"))
  variables = jax.eval_shape(resnet.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  kernels = models.kernels(variables["params"])
  assert len(kernels) == 1 + 16 + 3 + 1  # stem, 8 blocks × 2, 3 projections, classifier
  # stem 3·3·3·64, stages 4·3·3·64², (3·3·64·128 + 3·3·3·128² + 64·128), …, classifier 512·10
  stages = sum(9 * c // 2 * c + 3 * 9 * c * c + c // 2 * c for c in (128, 256, 512))
  assert sum(math.prod(k.shape) for k in kernels.values()) == 9 * 3 * 64 + 4 * 9 * 64 * 64 + stages + 5120
  assert "batch_stats" in variables
