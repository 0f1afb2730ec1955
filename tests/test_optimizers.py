"""The optimizers of the experiments and their epoch-wise cosine schedule (§4.1)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from parewire_jax.experiments import optimizers
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.settings import TrainSettings


def test_cosine_schedule_steps_per_epoch():
  schedule = optimizers.epoch_cosine_schedule(0.01, 4, 3)
  expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
  np.testing.assert_allclose([schedule(s) for s in range(12)], np.repeat(expected, 3), rtol=1e-6)


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
