"""Tests of the LaPerm demonstration: optimizers of ``train_seeds``, ``run_laperm``, the ``laperm`` CLI."""

from __future__ import annotations

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import bits, markdown_table, tiny_dataset
from scipy import stats as sps

from parewire_jax.__main__ import main
from parewire_jax.experiments import laperm_demo, models, optimizers, train
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.seeds import merge_counts, split_counts, step_count_mask
from parewire_jax.lookahead_permutation import laperm, laperm_project


@pytest.fixture(scope="module")
def tiny() -> Dataset:
  return tiny_dataset(240)


def _mlp() -> models.MLP:
  return models.build_model("mlp", 3, models.kernel_initializer("kaiming_uniform"), mlp_hidden=(16,))


def _column_multisets(w) -> np.ndarray:
  """NumPy oracle: the bit patterns of every column of ``w.reshape(-1, n_out)``, sorted per column."""
  w = np.asarray(w)
  return np.sort(bits(w.reshape(-1, w.shape[-1])), axis=0)


def _initial_params(model, dataset, seed):
  return model.init(jax.random.key(seed), jnp.asarray(dataset.x_train[:1]), train=False)["params"]


def _hand_trained(model, dataset, seed, tx, batch_size, evaluate_with=lambda params, opt_state: params):
  """One epoch of ``tx`` by hand, one seed, no vmap, no scan; returns (evaluated params, test accuracy)."""

  @jax.jit  # one compiled step rather than every operation dispatched (and compiled) on its own
  def step(params, opt_state, x, y):
    grads = jax.grad(
      lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()
    )(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params = _initial_params(model, dataset, seed)
  opt_state = tx.init(params)
  for idx in train.epoch_batches(0, 0, len(dataset.x_train), batch_size):
    params, opt_state = step(params, opt_state, dataset.x_train[idx], dataset.y_train[idx])
  params = evaluate_with(params, opt_state)
  logits = model.apply({"params": params}, dataset.x_test)
  return params, np.mean(np.argmax(logits, -1) == dataset.y_test)


# ---------------------------------------------------------------------------------------------- train_seeds


@pytest.mark.parametrize("optimizer", ["adam", "laperm_adam"])
def test_train_seeds_optimizer_equals_a_hand_written_loop(tiny, optimizer):
  # 240 / 16 = 15 steps, sync period 4: the epoch ends 3 steps after a sync,
  # so the evaluation's projection is more than the rounding of the last sync.
  config = train.TrainConfig(epochs=1, batch_size=16, learning_rate=0.01, optimizer=optimizer, sync_period=4)
  seen = {}
  result = train.train_seeds(
    _mlp(), tiny, [3, 7], config, inspect=lambda seeds, epoch, params: seen.update({epoch: (seeds, params)})
  )
  assert seen[0][0] == [3, 7]
  adam = optax.adam(0.01)  # one epoch of the cosine schedule: the initial rate throughout
  tx = laperm(adam, 4) if optimizer == "laperm_adam" else adam
  evaluate_with = laperm_project if optimizer == "laperm_adam" else (lambda params, opt_state: params)
  for row, seed in enumerate((3, 7)):
    params, accuracy = _hand_trained(_mlp(), tiny, seed, tx, 16, evaluate_with)
    np.testing.assert_allclose(result.test_acc[row, 0], accuracy, atol=1e-6)
    inspected = jax.tree.map(lambda x: x[row], seen[0][1])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), inspected, params)


def test_laperm_evaluated_kernels_are_exact_column_permutations_of_the_initial_ones(tiny):
  # LaPerm needs steps large enough to change rankings within a sync period: 0.03, not 0.01, here.
  config = train.TrainConfig(epochs=2, batch_size=16, learning_rate=0.03, optimizer="laperm_adam", sync_period=4)
  evaluated = {}
  result = train.train_seeds(
    _mlp(),
    tiny,
    [0, 1, 2],
    config._replace(seeds_per_chunk=2),
    inspect=lambda seeds, epoch, params: evaluated.update(
      {(epoch, s): jax.tree.map(lambda x: x[i], params) for i, s in enumerate(seeds)}
    ),
  )
  assert sorted(evaluated) == [(e, s) for e in range(2) for s in range(3)]
  for (_, seed), params in evaluated.items():
    initial = models.kernels(_initial_params(_mlp(), tiny, seed))
    for name, kernel in models.kernels(params).items():
      np.testing.assert_array_equal(_column_multisets(kernel), _column_multisets(initial[name]), err_msg=name)
      assert not np.array_equal(kernel, initial[name])  # trained: the weights moved
    biases = [p["bias"] for p in params.values()]
    assert all(np.any(b != 0) for b in biases)  # biases follow Adam, unpermuted (they start at 0)
  assert result.val_acc[:, -1].mean() > 0.6  # it learned (chance is 1/3)


def test_laperm_vmapped_seeds_equal_mapped_seeds(tiny):
  config = train.TrainConfig(epochs=2, batch_size=16, learning_rate=0.01, optimizer="laperm_adam", sync_period=3)
  together = train.train_seeds(_mlp(), tiny, [0, 1, 2], config)
  mapped = train.train_seeds(_mlp(), tiny, [0, 1, 2], config._replace(seeds_per_chunk=2, seeds_per_vmap=1))
  for field in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
    np.testing.assert_allclose(getattr(mapped, field), getattr(together, field), rtol=1e-4, atol=1e-5, err_msg=field)


def test_step_counts_are_shared_by_the_seeds():
  tx = optimizers.make_optimizer(train.TrainConfig(optimizer="laperm_adam", epochs=2), 10)
  shapes = jax.eval_shape(tx.init, {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)})
  mask = step_count_mask(shapes)
  counted = [s for s, is_count in zip(jax.tree.leaves(shapes), jax.tree.leaves(mask), strict=True) if is_count]
  # LaPerm's count, Adam's count and the learning-rate schedule's count; not Adam's moments nor θ_sorted
  assert len(counted) == 3 and all(s.shape == () and s.dtype == jnp.int32 for s in counted)
  per_seed, counts = split_counts(mask, shapes)
  assert len(jax.tree.leaves(per_seed)) == len(jax.tree.leaves(shapes)) - 3
  assert jax.tree.map(lambda x: x.shape, merge_counts(mask, per_seed, counts)) == jax.tree.map(
    lambda x: x.shape, shapes
  )


def test_default_optimizer_is_sgd_and_bad_optimizers_are_value_errors(tiny):
  assert train.TrainConfig().optimizer == "sgd"
  assert isinstance(optimizers.make_optimizer(train.TrainConfig(), 10).init({"w": jnp.zeros(2)})[0], optax.TraceState)
  for bad, match in (
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, adam, laperm_adam"),
    (dict(sync_period=0), "sync_period must be an int >= 1"),
    (dict(sync_period=2.5), "sync_period must be an int >= 1"),
  ):
    with pytest.raises(ValueError, match=match):
      train.train_seeds(_mlp(), tiny, [0], train.TrainConfig(epochs=1, **bad))


# ---------------------------------------------------------------------------------------------- diagnostics


def test_exact_permutation_columns_is_bit_exact():
  w0 = jnp.array([[[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]])  # (seeds=1, n_in=2, n_out=3)
  w = jnp.array([[[1.0, -0.0, 3.0], [0.0, 1.0, 2.0000002]]])
  # column 0 permuted; column 1 has -0.0 for +0.0 (equal as floats, not as bits); column 2 off by one ulp
  assert laperm_demo.exact_permutation_columns(w0, w).tolist() == [1]
  conv = jax.random.normal(jax.random.key(0), (2, 3, 3, 2, 4))  # seeds, kh, kw, c_in, c_out
  shuffled = jax.vmap(
    lambda k, x: jax.random.permutation(k, x.reshape(-1, 4), axis=0, independent=True).reshape(x.shape)
  )(jax.random.split(jax.random.key(1), 2), conv)
  assert laperm_demo.exact_permutation_columns(conv, shuffled).tolist() == [4, 4]
  assert laperm_demo.exact_permutation_columns(conv, jnp.swapaxes(shuffled, 1, 2)).tolist() == [4, 4]
  assert laperm_demo.exact_permutation_columns(conv, shuffled[..., ::-1]).tolist() == [0, 0]  # columns swapped
  with pytest.raises(ValueError, match="same shape"):
    laperm_demo.exact_permutation_columns(w0, w[:, :1])


# ---------------------------------------------------------------------------------------------- run_laperm / CLI


def _numbers(cell: str) -> list[float]:
  return [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan", cell.replace("p=n/a", "nan"))]


def _rows(table: str, first_cells) -> dict[str, list[str]]:
  rows = {}
  for line in table.splitlines():
    cells = [c.strip() for c in line.split("|")[1:-1]]
    if cells and cells[0] in first_cells and cells[0] not in rows:
      rows[cells[0]] = cells[1:]
  return rows


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on near-identical samples
def test_cli_laperm_end_to_end_and_table_equals_json(tmp_path, capsys):
  main(
    [
      "laperm",
      "--dataset",
      "digits",
      "--limit-train",
      "300",
      "--seeds",
      "2",
      "--epochs",
      "2",
      "--batch-size",
      "30",
      "--sync-period",
      "5",
      "--mlp-hidden",
      "8",
      "--lr",
      "0.01",
      "--out",
      str(tmp_path),
    ]
  )
  out = capsys.readouterr().out
  for name in ("results.json", "table.md", "curves.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  table = (tmp_path / "table.md").read_text()
  assert table.strip() in out
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["sync_period"] == 5 and saved["config"]["mlp_hidden"] == [8]
  assert saved["dataset"]["num_train"] == 300
  adam, lap = saved["arms"]["adam"], saved["arms"]["laperm_adam"]

  # the permutation check: every LaPerm column, every epoch; 2 seeds × (8 + 10) columns
  assert saved["columns_per_epoch"] == 2 * (8 + 10)
  assert lap["exact_permutation_columns"] == [36, 36]
  assert adam["exact_permutation_columns"][-1] < 36
  assert "- laperm_adam: 72 / 72" in out

  # per-epoch validation table = JSON curves and paired tests
  epoch_rows = _rows(table.split("per-seed metrics")[0], {"1", "2"})
  for e in range(2):
    a, b = np.asarray(adam["curves"]["val_acc"])[:, e], np.asarray(lap["curves"]["val_acc"])[:, e]
    cells = [_numbers(c) for c in epoch_rows[str(e + 1)]]
    assert cells[0] == pytest.approx([round(a.mean() * 100, 2), round(a.std(ddof=1) * 100, 2)], abs=0.0051)
    assert cells[1] == pytest.approx([round(b.mean() * 100, 2), round(b.std(ddof=1) * 100, 2)], abs=0.0051)
    assert cells[2] == pytest.approx([round((b - a).mean() * 100, 2)], abs=0.0051)
    p = sps.ttest_rel(b, a).pvalue
    assert (math.isnan(cells[3][0]) and math.isnan(p)) or cells[3][0] == pytest.approx(p, rel=5e-3)
    assert saved["epoch_val_acc_tests"][e]["mean_difference"] == pytest.approx((b - a).mean())

  # test accuracy at the best validation epoch = JSON curves; paired table = scipy on the JSON values
  metric_header, metric_rows = markdown_table(table.split("per-seed metrics")[1])
  for arm in ("adam", "laperm_adam"):
    curves = saved["arms"][arm]["curves"]
    best = np.argmax(curves["val_acc"], axis=1)
    test_acc = np.asarray(curves["test_acc"])[np.arange(2), best]
    np.testing.assert_allclose(saved["arms"][arm]["per_seed"]["test_acc"], test_acc)
    assert _numbers(metric_rows[arm][metric_header.index("test acc. (mean ± std)")])[:2] == pytest.approx(
      [round(test_acc.mean() * 100, 2), round(test_acc.std(ddof=1) * 100, 2)], abs=0.0051
    )
  paired = [line for line in table.splitlines() if line.startswith("| laperm_adam | test acc. |")]
  (line,) = paired
  a, b = (np.asarray(saved["arms"][arm]["per_seed"]["test_acc"]) for arm in ("adam", "laperm_adam"))
  numbers = _numbers(line)
  assert numbers[0] == pytest.approx(round((b - a).mean() * 100, 2), abs=0.0051)
  p = sps.ttest_rel(b, a).pvalue
  assert (math.isnan(numbers[1]) and math.isnan(p)) or numbers[1] == pytest.approx(p, rel=5e-3)

  # weight deviation table = JSON (mean over seeds)
  deviation_rows = _rows(table.split("weight deviation")[1], {"Dense_0/kernel", "Dense_1/kernel"})
  for name, cells in deviation_rows.items():
    expected = [
      np.mean(saved["arms"][arm]["weight_deviation"][name][field])
      for field in laperm_demo.DEVIATION_COLUMNS
      for arm in laperm_demo.ARMS
    ]
    np.testing.assert_allclose([float(c) for c in cells], expected, rtol=5e-4)


def test_laperm_config_errors(capsys):
  for bad, match in (
    (dict(seeds=1), "seeds must be an int >= 2"),
    (dict(sync_period=0), "sync_period"),
    (dict(model="vgg"), "model must be one of"),
    (dict(init="xavier"), "init must be one of"),
    (dict(dataset="imagenet"), "dataset must be one of"),
    (dict(mlp_hidden=()), "mlp_hidden"),
    (dict(limit_train=0), "limit_train"),
    (dict(epochs=0), "epochs"),
    (dict(learning_rate=-1.0), "learning_rate"),
  ):
    with pytest.raises(ValueError, match=match):
      laperm_demo.check_laperm_config(laperm_demo.LaPermConfig(**bad))
  with pytest.raises(SystemExit) as exit_info:
    main(["laperm", "--sync-period", "0"])
  assert exit_info.value.code == 2
  assert "sync_period must be an int >= 1" in capsys.readouterr().err
