"""The trainer (parewire_jax.experiments.train): vmapped seeds, chunks, segments, records, LaPerm, hand loops."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import bits, small_mlp as _mlp, tiny_dataset

from parewire_jax.experiments import models, optimizers, train
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.seeds import merge_counts, split_counts, step_count_mask
from parewire_jax.experiments.settings import TrainSettings
from parewire_jax.lookahead_permutation import laperm, laperm_project


@pytest.fixture(scope="module")
def tiny() -> Dataset:
  return tiny_dataset(256)


@pytest.fixture(scope="module")
def tiny240() -> Dataset:
  return tiny_dataset(240)


def _laperm_mlp() -> models.MLP:
  return models.build_model("mlp", 3, models.kernel_initializer("kaiming_uniform"), mlp_hidden=(16,))


def test_data_order_depends_only_on_data_seed_and_epoch():
  a = train.epoch_batches(0, 1, 300, 128)
  assert a.shape == (2, 128) and len(np.unique(a)) == 256
  np.testing.assert_array_equal(a, train.epoch_batches(0, 1, 300, 128))
  assert not np.array_equal(a, train.epoch_batches(0, 2, 300, 128))
  assert not np.array_equal(a, train.epoch_batches(1, 1, 300, 128))


def test_vmapped_seeds_equal_each_seed_trained_alone(tiny):
  config = TrainSettings(epochs=2, batch_size=32, learning_rate=0.05, track_gradients=True)
  together = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config)
  alone = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config, seeds_per_chunk=1)
  # chunks of 2 (the last one padded) with one seed at a time inside: lax.map instead of vmap
  mapped = train.train_seeds(_mlp("rewired"), tiny, [0, 1, 2], config, seeds_per_chunk=2, seeds_per_vmap=1)
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
  config = TrainSettings(epochs=1, batch_size=64, eval_batch_size=20)  # 20 does not divide 64 or 48
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


def test_impossible_training_settings(tiny):
  for bad, match in (
    (dict(epochs=0), "epochs"),
    (dict(batch_size=1000), "exceeds"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(epochs=3, schedule_epochs=2), "schedule_epochs"),
  ):
    with pytest.raises(ValueError, match=match):
      train.train_seeds(_mlp(), tiny, [0, 1], TrainSettings(**bad))
  with pytest.raises(ValueError, match="seeds"):
    train.train_seeds(_mlp(), tiny, [], TrainSettings(epochs=1))


def test_segments_do_not_change_training():
  data = tiny_dataset(192)
  base = TrainSettings(epochs=2, batch_size=16, learning_rate=0.05)
  model = _mlp()
  whole = train.train_seeds(model, data, [0, 1], base.replace(segments_per_epoch=1))
  split = train.train_seeds(model, data, [0, 1], base.replace(segments_per_epoch=4))
  assert split.train_curve_acc.shape == (2, 2, 4) and whole.train_curve_acc.shape == (2, 2, 1)
  for field in ("val_loss", "val_acc", "test_loss", "test_acc"):
    np.testing.assert_array_equal(getattr(split, field), getattr(whole, field), err_msg=field)
  np.testing.assert_allclose(split.train_loss, whole.train_loss, rtol=1e-6)
  np.testing.assert_allclose(split.train_curve_loss.mean(-1), whole.train_curve_loss[..., 0], rtol=1e-6)
  assert jnp.asarray(split.train_curve_loss).std() > 0


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


@pytest.mark.parametrize("optimizer", ["adam", "laperm_adam"])
def test_train_seeds_optimizer_equals_a_hand_written_loop(tiny240, optimizer):
  # 240 / 16 = 15 steps, sync period 4: the epoch ends 3 steps after a sync,
  # so the evaluation's projection is more than the rounding of the last sync.
  training = TrainSettings(epochs=1, batch_size=16, learning_rate=0.01)
  seen = []
  result = train.train_seeds(
    _laperm_mlp(),
    tiny240,
    [3, 7],
    training,
    Optimizer(optimizer, sync_period=4),
    epoch_records=lambda initial, params: seen.append((initial, params)) or {},
  )
  assert len(seen) == 1 and result.records == {}
  adam = optax.adam(0.01)  # one epoch of the cosine schedule: the initial rate throughout
  tx = laperm(adam, 4) if optimizer == "laperm_adam" else adam
  evaluate_with = laperm_project if optimizer == "laperm_adam" else (lambda params, opt_state: params)
  for row, seed in enumerate((3, 7)):
    params, accuracy = _hand_trained(_laperm_mlp(), tiny240, seed, tx, 16, evaluate_with)
    np.testing.assert_allclose(result.test_acc[row, 0], accuracy, atol=1e-6)
    initial, inspected = (jax.tree.map(lambda x: x[row], tree) for tree in seen[0])
    jax.tree.map(np.testing.assert_array_equal, initial, _initial_params(_laperm_mlp(), tiny240, seed))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), inspected, params)


def test_laperm_evaluated_kernels_are_exact_column_permutations_of_the_initial_ones(tiny240):
  # LaPerm needs steps large enough to change rankings within a sync period: 0.03, not 0.01, here.
  training = TrainSettings(epochs=2, batch_size=16, learning_rate=0.03)
  seen = []

  def record(initial, params):
    seen.append((initial, params))
    return {"kernels": len(models.kernels(params)) * np.ones(len(jax.tree.leaves(params)[0]), np.int32)}

  result = train.train_seeds(
    _laperm_mlp(), tiny240, [0, 1, 2], training, Optimizer("laperm_adam", sync_period=4), seeds_per_chunk=2,
    epoch_records=record,
  )  # fmt: skip
  assert result.records["kernels"].tolist() == [[2, 2]] * 3  # one per seed and epoch, chunks joined
  rows = [[0, 1], [0, 1], [2], [2]]  # chunk by chunk, epoch by epoch
  assert [len(jax.tree.leaves(p)[0]) for _, p in seen] == [len(r) for r in rows]
  for (initial, params), seeds in zip(seen, rows, strict=True):
    for row, seed in enumerate(seeds):
      start = models.kernels(_initial_params(_laperm_mlp(), tiny240, seed))
      for name, kernel in models.kernels(jax.tree.map(lambda x: x[row], params)).items():
        np.testing.assert_array_equal(models.kernels(initial)[name][row], start[name])
        np.testing.assert_array_equal(_column_multisets(kernel), _column_multisets(start[name]), err_msg=name)
        assert not np.array_equal(kernel, start[name])  # trained: the weights moved
      biases = [p["bias"][row] for p in params.values()]
      assert all(np.any(b != 0) for b in biases)  # biases follow Adam, unpermuted (they start at 0)
  assert result.val_acc[:, -1].mean() > 0.6  # it learned (chance is 1/3)


def test_laperm_vmapped_seeds_equal_mapped_seeds(tiny240):
  config, optimizer = (
    TrainSettings(epochs=2, batch_size=16, learning_rate=0.01),
    Optimizer("laperm_adam", sync_period=3),
  )
  together = train.train_seeds(_laperm_mlp(), tiny240, [0, 1, 2], config, optimizer)
  mapped = train.train_seeds(_laperm_mlp(), tiny240, [0, 1, 2], config, optimizer, seeds_per_chunk=2, seeds_per_vmap=1)
  for field in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
    np.testing.assert_allclose(getattr(mapped, field), getattr(together, field), rtol=1e-4, atol=1e-5, err_msg=field)


def test_step_counts_are_shared_by_the_seeds():
  tx = optimizers.make_optimizer(Optimizer("laperm_adam"), TrainSettings(epochs=2), 10)
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


def test_eval_train_evaluates_the_model_at_the_end_of_every_epoch_on_training_examples(tiny):
  from parewire_jax.experiments.data import Dataset

  # the validation split is the first 100 training examples: evaluating those is evaluating the validation split
  data = Dataset("same", tiny.x_train, tiny.y_train, tiny.x_train[:100], tiny.y_train[:100], tiny.x_test,
                 tiny.y_test, tiny.num_classes)  # fmt: skip
  training = TrainSettings(epochs=2, batch_size=32, learning_rate=0.05, eval_batch_size=64)
  plain = train.train_seeds(_mlp(), data, [0, 1], training)
  result = train.train_seeds(_mlp(), data, [0, 1], training.replace(eval_train=100))
  assert plain.records == {} and sorted(result.records) == ["train_eval_acc", "train_eval_loss"]
  np.testing.assert_array_equal(result.records["train_eval_acc"], result.val_acc)
  np.testing.assert_array_equal(result.records["train_eval_loss"], result.val_loss)
  for field in ("train_loss", "val_acc", "test_acc"):  # the training itself is the same
    np.testing.assert_array_equal(getattr(result, field), getattr(plain, field))
  every = train.train_seeds(_mlp(), data, [0, 1], training.replace(eval_train=None))  # all 256
  assert not np.array_equal(every.records["train_eval_acc"], result.records["train_eval_acc"])
