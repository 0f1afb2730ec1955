"""Tests of the experiment runner: models, vmapped training, statistics, reports, CLI."""

from __future__ import annotations

import json
import math
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import markdown_table, tiny_dataset
from scipy import stats as sps

from parewire_jax import rewiring_key, strength_stats
from parewire_jax.__main__ import main
from parewire_jax.experiments import models, optimizers, report, stats, train
from parewire_jax.experiments.compare import CompareConfig, check_compare_config, run_compare, run_strength
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.seeds import seed_keys


@pytest.fixture(scope="module")
def tiny() -> Dataset:
  return tiny_dataset(256)


def _mlp(variant: str = "base", init: str = "kaiming_normal", hidden=(16,)) -> nn.Module:
  return models.build_model("mlp", 3, models.kernel_initializer(init, variant, num_draws=4), mlp_hidden=hidden)


# ---------------------------------------------------------------------------------------------- initializers


@pytest.mark.parametrize("init", models.INITIALIZERS)
def test_variants_share_the_base_draw_per_seed(init):
  keys = seed_keys([0, 1, 2])
  draws = {
    v: jax.vmap(lambda k: models.kernel_initializer(init, v, num_draws=4)(k, (3, 2, 4, 5)))(keys)
    for v in models.VARIANTS
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


# ---------------------------------------------------------------------------------------------- models


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


# ---------------------------------------------------------------------------------------------- training


def test_select_best_epoch_on_hand_made_curves():
  val = [
    [0.50, 0.70, 0.90, 0.80],  # peak in the middle
    [0.90, 0.80, 0.70, 0.60],  # best at epoch 1
    [0.10, 0.20, 0.30, 0.40],  # best at the end
    [0.60, 0.80, 0.80, 0.80],
  ]  # ties: the first time it is reached
  test = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 0.8, 0.7, 0.6], [0.4, 0.3, 0.2, 0.1]]
  best = report.select_best_epoch(val, test)
  assert best.convergence_epoch.tolist() == [3, 1, 4, 2]
  assert best.test_acc.tolist() == [0.3, 0.5, 0.6, 0.3]
  with pytest.raises(ValueError, match="same shape"):
    report.select_best_epoch([[0.1, 0.2]], [[0.1]])


def test_data_order_depends_only_on_data_seed_and_epoch():
  a = train.epoch_batches(0, 1, 300, 128)
  assert a.shape == (2, 128) and len(np.unique(a)) == 256
  np.testing.assert_array_equal(a, train.epoch_batches(0, 1, 300, 128))
  assert not np.array_equal(a, train.epoch_batches(0, 2, 300, 128))
  assert not np.array_equal(a, train.epoch_batches(1, 1, 300, 128))


def test_vmapped_seeds_equal_each_seed_trained_alone(tiny):
  config = train.TrainConfig(epochs=2, batch_size=32, learning_rate=0.05, track_gradients=True)
  together = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config)
  alone = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config._replace(seeds_per_chunk=1))
  # chunks of 2 (the last one padded) with one seed at a time inside: lax.map instead of vmap
  mapped = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config._replace(seeds_per_chunk=2, seeds_per_vmap=1))
  for other in (alone, mapped):
    for field in (
      "train_loss",
      "train_acc",
      "val_loss",
      "val_acc",
      "test_loss",
      "test_acc",
      "grad_abs",
      "init_mean_variance",
      "init_mean_fourth_moment",
    ):
      np.testing.assert_allclose(getattr(other, field), getattr(together, field), rtol=1e-4, atol=1e-5, err_msg=field)
  chex.assert_shape([together.train_acc, together.val_acc, together.test_loss], (3, 2))
  chex.assert_shape(together.grad_abs, (3, 2, 2))
  assert together.layer_names == ("Dense_0/kernel", "Dense_1/kernel")
  assert (together.grad_abs > 0).all()
  assert not np.array_equal(together.val_loss[0], together.val_loss[1])  # seeds differ
  assert together.val_acc[:, -1].mean() > 0.6  # it learned (chance is 1/3)


def test_training_records_match_a_direct_evaluation(tiny):
  config = train.TrainConfig(epochs=1, batch_size=64, eval_batch_size=20)  # 20 does not divide 64 or 48
  result = train.train_seeds(_mlp(), tiny, [5], config)
  # Rebuild the one-epoch training by hand: same init, same batches, same SGD.
  model = _mlp()
  params = model.init(jax.random.key(5), jnp.asarray(tiny.x_train[:1]))["params"]
  tx = optax.sgd(0.01, momentum=0.9)
  opt_state = tx.init(params)

  @jax.jit  # one compiled step rather than every operation dispatched (and compiled) on its own
  def step(params, opt_state, x, y):
    grads = jax.grad(
      lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()
    )(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  for idx in train.epoch_batches(0, 0, len(tiny.x_train), 64):
    params, opt_state = step(params, opt_state, tiny.x_train[idx], tiny.y_train[idx])
  logits = model.apply({"params": params}, tiny.x_test)
  np.testing.assert_allclose(result.test_acc[0, 0], np.mean(np.argmax(logits, -1) == tiny.y_test), atol=1e-6)
  np.testing.assert_allclose(
    result.test_loss[0, 0], optax.softmax_cross_entropy_with_integer_labels(logits, tiny.y_test).mean(), rtol=1e-5
  )


def test_cosine_schedule_steps_per_epoch():
  schedule = optimizers.epoch_cosine_schedule(0.01, 4, 3)
  expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
  np.testing.assert_allclose([schedule(s) for s in range(12)], np.repeat(expected, 3), rtol=1e-6)


def test_impossible_training_settings(tiny):
  for bad, match in (
    (dict(epochs=0), "epochs"),
    (dict(batch_size=1000), "exceeds"),
    (dict(momentum=1.0), "momentum"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(seeds_per_chunk=0), "seeds_per_chunk"),
  ):
    with pytest.raises(ValueError, match=match):
      train.train_seeds(_mlp(), tiny, [0, 1], train.TrainConfig(**bad))
  with pytest.raises(ValueError, match="seeds"):
    train.train_seeds(_mlp(), tiny, [], train.TrainConfig(epochs=1))


# ---------------------------------------------------------------------------------------------- statistics


def test_summarize_and_compare_match_scipy():
  rng = np.random.default_rng(1)
  base, variant = rng.normal(0.9, 0.02, 12), rng.normal(0.92, 0.01, 12)
  s = stats.summarize(base)
  assert s == stats.Summary(
    np.mean(base), np.std(base, ddof=1), np.median(base), np.median(np.abs(base - np.median(base))), 12
  )
  c = stats.compare(base, variant)
  assert c.ttest == sps.ttest_ind(variant, base, equal_var=False).pvalue
  assert stats.compare(base, variant, equal_var=True).ttest == sps.ttest_ind(variant, base).pvalue
  assert c.kruskal == sps.kruskal(variant, base).pvalue
  assert c.paired_ttest == sps.ttest_rel(variant, base).pvalue
  assert c.wilcoxon == sps.wilcoxon(variant, base).pvalue
  assert c.levene == sps.levene(variant, base, center="median").pvalue
  assert c.mean_difference == pytest.approx(np.mean(variant - base))


def test_spread_test_is_brown_forsythe():
  # Brown–Forsythe by hand: a one-way ANOVA of |x - median(x)| between the two samples (its F has 1 and n - 2
  # degrees of freedom), which is what scipy's levene(center="median") computes.
  rng = np.random.default_rng(2)
  base = np.concatenate([rng.normal(0.96, 0.01, 17), [0.88, 0.90, 0.93]])  # a few slow seeds: skewed, wide
  variant = rng.normal(0.973, 0.003, 20)
  c = stats.compare(base, variant)
  deviations = [np.abs(x - np.median(x)) for x in (variant, base)]
  assert c.levene == pytest.approx(sps.f_oneway(*deviations).pvalue, rel=1e-12)
  assert (
    c.levene < 0.05 and sps.levene(variant, base, center="mean").pvalue < c.levene
  )  # the mean-centred test is bolder
  # equal spreads are not rejected, and the test is symmetric in its samples
  same = stats.compare(rng.normal(0, 1, 40), rng.normal(5, 1, 40))
  assert same.levene > 0.05
  assert stats.compare(variant, base).levene == c.levene


def test_paired_table_reports_the_spread():
  rng = np.random.default_rng(3)
  base = {m: rng.normal(0.9, 0.02, 10) for m in report.METRICS}
  narrow = {m: base[m] + 0.01 + rng.normal(0, 0.002, 10) for m in report.METRICS}
  analysis = report.analyze({"base": base, "rewired": narrow})
  rows = [line for line in report.paired_table(analysis).splitlines() if line.startswith("| rewired")]
  assert len(rows) == len(report.METRICS)
  for line, metric in zip(rows, report.METRICS, strict=True):
    ratio = np.std(narrow[metric], ddof=1) / np.std(base[metric], ddof=1)
    p = sps.levene(narrow[metric], base[metric], center="median").pvalue
    assert line.split("|")[-2].strip() == f"{ratio:.2f}× (p={p:.3g})"


def test_degenerate_statistics_are_nan_not_errors():
  c = stats.compare([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
  assert math.isnan(c.ttest) and math.isnan(c.kruskal) and math.isnan(c.paired_ttest) and math.isnan(c.levene)
  with pytest.raises(ValueError, match="at least 2"):
    stats.summarize([1.0])
  with pytest.raises(ValueError, match="same seeds"):
    stats.compare([1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------------- compare


def _numbers(cell: str) -> list[float]:
  return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|nan", cell.replace("p=n/a", "nan"))]


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on near-identical samples
def test_compare_end_to_end(tiny, tmp_path):
  config = CompareConfig(
    dataset="digits",
    model="mlp",
    variants=("base", "rewired", "min_sv"),
    seeds=3,
    epochs=2,
    batch_size=32,
    learning_rate=0.05,
    num_draws=4,
    mlp_hidden=(16,),
    track_gradients=True,
  )
  outcome = run_compare(config, dataset=tiny, out_dir=tmp_path)
  for name in ("results.json", "table.md", "curves.png", "strength.png", "strength_vs_accuracy.png", "gradients.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["variants"] == ["base", "rewired", "min_sv"] and saved["config"]["seeds"] == 3
  assert saved["dataset"]["num_train"] == 256

  table = (tmp_path / "table.md").read_text()
  header, rows = markdown_table(table)
  assert set(rows) == set(config.variants)
  base = saved["variants"]["base"]["per_seed"]
  for variant in config.variants:
    per_seed = saved["variants"][variant]["per_seed"]
    curves = saved["variants"][variant]["curves"]
    # JSON per-seed metrics are derived from the JSON curves
    np.testing.assert_allclose(per_seed["epoch1_train_acc"], np.asarray(curves["train_acc"])[:, 0])
    best = np.argmax(curves["val_acc"], axis=1)
    np.testing.assert_allclose(per_seed["convergence_epoch"], best + 1)
    np.testing.assert_allclose(per_seed["test_acc"], np.asarray(curves["test_acc"])[np.arange(3), best])
    for metric, (name, is_accuracy) in report.METRICS.items():
      x = np.asarray(per_seed[metric])
      scale = 100 if is_accuracy else 1
      if f"{name} (mean ± std)" not in header:  # left out when the same for every model, and said so
        assert np.ptp(x) == 0 and f"{name} (" in table.split("paired by seed")[0]
        continue
      numbers = _numbers(rows[variant][header.index(f"{name} (mean ± std)")])
      assert numbers[:2] == pytest.approx([round(x.mean() * scale, 2), round(x.std(ddof=1) * scale, 2)], abs=0.0051)
      if variant == "base":
        assert len(numbers) == 2
      else:
        p = sps.ttest_ind(x, base[metric], equal_var=False).pvalue
        assert (math.isnan(numbers[2]) and math.isnan(p)) or numbers[2] == pytest.approx(p, rel=5e-3)
        c = outcome.report.comparisons[variant][metric]
        assert np.isnan(c.paired_ttest) or c.paired_ttest == sps.ttest_rel(x, base[metric]).pvalue
    x = np.asarray(per_seed["test_acc"])
    median_cell = _numbers(rows[variant][header.index("test acc. (median ± MAD)")])
    assert median_cell[:2] == pytest.approx(
      [round(np.median(x) * 100, 2), round(np.median(np.abs(x - np.median(x))) * 100, 2)], abs=0.0051
    )
    if variant != "base":
      p = sps.kruskal(x, base["test_acc"]).pvalue
      assert (math.isnan(median_cell[2]) and math.isnan(p)) or median_cell[2] == pytest.approx(p, rel=5e-3)
  # rewiring lowers every seed's initial strength variance
  assert (
    np.asarray(saved["variants"]["rewired"]["init_mean_variance"])
    < np.asarray(saved["variants"]["base"]["init_mean_variance"])
  ).all()


def test_compare_config_errors():
  for bad, match in (
    (dict(seeds=1), "seeds must be an int >= 2"),
    (dict(epochs=0), "epochs"),
    (dict(variants=("rewired",)), "include 'base'"),
    (dict(variants=("base", "base")), "distinct"),
    (dict(variants=("base", "shuffle")), "variants must be among"),
    (dict(model="vgg"), "model"),
    (dict(dataset="imagenet"), "dataset"),
    (dict(init="xavier"), "init"),
    (dict(limit_train=0), "limit_train"),
    (dict(mlp_hidden=()), "mlp_hidden"),
  ):
    with pytest.raises(ValueError, match=match):
      check_compare_config(CompareConfig(**bad))


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
  "argv, message",
  [
    (["compare", "--seeds", "1"], "seeds must be an int >= 2"),
    (["compare", "--epochs", "0"], "epochs must be an int >= 1"),
    (["compare", "--variants", "rewired"], "include 'base'"),
    (["compare", "--batch-size", "0"], "batch_size"),
    (["strength", "--shape", "16"], "at least 2 positive"),
    (["strength", "--seeds", "0"], "seeds must be an int >= 1"),
  ],
)
def test_cli_rejects_impossible_settings(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


@pytest.mark.parametrize(
  "argv",
  [
    ["compare", "--init", "xavier"],
    ["compare", "--model", "vgg"],
    ["compare", "--dataset", "imagenet"],
    ["frobnicate"],
  ],
)
def test_cli_rejects_unknown_names(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  assert "invalid choice" in capsys.readouterr().err


def test_cli_lenet_on_too_small_images(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(
      ["compare", "--dataset", "digits", "--model", "lenet", "--seeds", "2", "--epochs", "1", "--out", str(tmp_path)]
    )
  assert exit_info.value.code == 2
  assert "lenet needs images of at least 16×16" in capsys.readouterr().err


def test_cli_missing_dataset_says_how_to_get_it(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(["compare", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--no-download"])
  assert exit_info.value.code == 1
  assert "fashion_mnist" in capsys.readouterr().err


def test_cli_compare_on_digits(tmp_path, capsys):
  main(
    [
      "compare",
      "--dataset",
      "digits",
      "--model",
      "mlp",
      "--seeds",
      "2",
      "--epochs",
      "1",
      "--mlp-hidden",
      "8",
      "--limit-train",
      "300",
      "--limit-eval",
      "100",
      "--no-standardize",
      "--variants",
      "base",
      "max_sv",
      "--num-draws",
      "2",
      "--out",
      str(tmp_path),
    ]
  )
  out = capsys.readouterr().out
  assert "| base |" in out and "| max_sv |" in out and "Wilcoxon" in out and "Brown–Forsythe" in out
  saved = json.loads((tmp_path / "results.json").read_text())
  assert (saved["dataset"]["num_train"], saved["dataset"]["num_val"], saved["dataset"]["num_test"]) == (300, 100, 100)
  assert saved["config"]["standardize"] is False and "levene" in saved["variants"]["max_sv"]["vs_base"]["test_acc"]
  main(["compare", "--dataset", "digits", "--model", "mlp", "--mlp-hidden", "8", "--seeds", "2", "--limit-train",
        "all", "--limit-eval", "all", "--standardize", "--out", str(tmp_path)])  # fmt: skip
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["limit_train"] is None and saved["config"]["limit_eval"] is None
  assert saved["config"]["standardize"] is True and saved["dataset"]["num_train"] == 1797 - 2 * 360


def test_cli_strength(tmp_path, capsys):
  main(["strength", "--shape", "24", "16", "--seeds", "3", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert "| base |" in out and "| rewired |" in out
  saved = json.loads((tmp_path / "strength.json").read_text())
  assert saved["mean"]["rewired"]["in σ²"] < saved["mean"]["base"]["in σ²"]
  assert saved["mean"]["rewired"]["out σ²"] < saved["mean"]["base"]["out σ²"]
  # the table is the mean over seeds of the core's strength_stats
  draws = jax.vmap(lambda k: models.base_initializer("kaiming_normal")(k, (24, 16)))(seed_keys(range(3)))
  expected = float(np.mean(jax.vmap(strength_stats)(draws).in_variance))
  assert saved["mean"]["base"]["in σ²"] == pytest.approx(expected, rel=1e-6)
  assert (tmp_path / "strength.png").stat().st_size > 0


def test_run_strength_rejects_unknown_init():
  with pytest.raises(ValueError, match="init must be one of"):
    run_strength("xavier", (4, 4))
