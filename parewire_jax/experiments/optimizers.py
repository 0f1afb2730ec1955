"""Optimizers of the experiments and their learning-rate schedule (§4.1).

SGD with momentum (§4.1) or, by name, Adam or LaPerm around Adam (Qiu & Suda
2020, :mod:`parewire_jax.lookahead_permutation`), all with the epoch-wise
cosine annealing of the paper's "simple schedule".
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from parewire_jax._checks import check_choice
from parewire_jax.experiments.settings import OPTIMIZERS, TrainConfig
from parewire_jax.lookahead_permutation import laperm


def epoch_cosine_schedule(learning_rate: float, epochs: int, steps_per_epoch: int) -> optax.Schedule:
  """Cosine annealing from ``learning_rate`` to 0, stepped once per epoch (§4.1).

  Epoch ``e`` (0-based) uses ``learning_rate · (1 + cos(π e / epochs)) / 2``,
  like PyTorch's ``CosineAnnealingLR(T_max=epochs)`` stepped after each epoch.

  >>> schedule = epoch_cosine_schedule(0.01, 2, 10)
  >>> [round(float(schedule(s)), 6) for s in (0, 9, 10, 19)]
  [0.01, 0.01, 0.005, 0.005]
  """
  per_epoch = optax.cosine_decay_schedule(learning_rate, decay_steps=epochs)
  return lambda step: per_epoch(jnp.asarray(step) // steps_per_epoch)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """``config.optimizer`` with the epoch-wise cosine schedule of ``config.learning_rate``.

  Args:
    config: a :class:`~parewire_jax.experiments.settings.TrainConfig`; its
      ``optimizer``, ``learning_rate``, ``epochs``, ``momentum`` and
      ``sync_period`` are used.
    steps_per_epoch: optimizer steps in one epoch.

  >>> from parewire_jax.experiments.settings import TrainConfig
  >>> import jax.numpy as jnp
  >>> tx = make_optimizer(TrainConfig(optimizer="laperm_adam", sync_period=5), 10)
  >>> type(tx.init({"w": jnp.eye(2)})).__name__
  'LaPermState'
  """
  check_choice(config.optimizer, OPTIMIZERS, "optimizer")
  schedule = epoch_cosine_schedule(config.learning_rate, config.epochs, steps_per_epoch)
  if config.optimizer == "sgd":
    return optax.sgd(schedule, momentum=config.momentum)
  if config.optimizer == "adam":
    return optax.adam(schedule)
  return laperm(optax.adam(schedule), config.sync_period)
