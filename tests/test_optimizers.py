"""The optimizers of the experiments and their epoch-wise cosine schedule (§4.1)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import small_mlp, tiny_dataset

from parewire_jax.experiments import optimizers, train
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.settings import TrainSettings


def test_cosine_schedule_steps_per_epoch():
  schedule = optimizers.epoch_cosine_schedule(0.01, 4, 3)
  expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
  np.testing.assert_allclose([schedule(s) for s in range(12)], np.repeat(expected, 3), rtol=1e-6)


def _step_sizes(training: TrainSettings, steps_per_epoch: int, steps: int) -> list[float]:
  """The learning rate of each step: plain SGD's update of a weight whose gradient is 1."""
  tx = optimizers.make_optimizer(Optimizer("sgd", momentum=0.0), training, steps_per_epoch)
  params, state, sizes = {"w": jnp.zeros(())}, None, []
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update({"w": jnp.ones(())}, state, params)
    sizes.append(-float(updates["w"]))
  return sizes


def test_schedule_epochs_plans_the_schedule_over_more_epochs_than_are_trained():
  planned = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(2)]
  sizes = _step_sizes(TrainSettings(epochs=2, schedule_epochs=4, learning_rate=0.01), 3, 6)
  np.testing.assert_allclose(sizes, np.repeat(planned, 3), rtol=1e-6)
  # without it, the schedule ends with the epochs trained
  np.testing.assert_allclose(_step_sizes(TrainSettings(epochs=2), 3, 6), np.repeat([0.01, 0.005], 3), rtol=1e-6)
  # and a run cut short trains, bit for bit, the first epochs of the full run
  data, model = tiny_dataset(192), small_mlp()
  full = train.train_seeds(model, data, [0, 1], TrainSettings(epochs=4, batch_size=32, learning_rate=0.05))
  first = train.train_seeds(
    model, data, [0, 1], TrainSettings(epochs=2, schedule_epochs=4, batch_size=32, learning_rate=0.05)
  )
  for field in ("train_loss", "val_acc", "val_loss", "test_acc"):
    np.testing.assert_array_equal(getattr(first, field), getattr(full, field)[:, :2], err_msg=field)
  with pytest.raises(ValueError, match=r"schedule_epochs \(1\) must be at least epochs \(2\)"):
    TrainSettings(epochs=2, schedule_epochs=1).check()


def test_sgd_is_the_default_and_bad_optimizers_are_value_errors():
  assert Optimizer().name == "sgd"
  tx = optimizers.make_optimizer(Optimizer(), TrainSettings(), 10)
  assert isinstance(tx.init({"w": jnp.zeros(2)})[0], optax.TraceState)
  for bad, match in (
    (Optimizer("rmsprop"), "optimizer must be one of sgd, adam, laperm_adam"),
    (Optimizer("laperm_adam", sync_period=0), "sync_period must be an int"),
    (Optimizer("laperm_adam", sync_period=2.5), "sync_period must be an int"),  # pyright: ignore[reportArgumentType]
  ):
    with pytest.raises(ValueError, match=match):
      optimizers.make_optimizer(bad, TrainSettings(), 10)
