"""Optimizers of the experiments and their learning-rate schedule (§4.1).

SGD with momentum (§4.1) or, by name, Adam or LaPerm around Adam (Qiu & Suda
2020, :mod:`parewire_jax.lookahead_permutation`), all with the epoch-wise
cosine annealing of the paper's "simple schedule".
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import optax

from parewire_jax._checks import check_choice
from parewire_jax.experiments.settings import OPTIMIZERS, TrainSettings
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


class Optimizer(NamedTuple):
  """The optimizer of an arm, by name, with the settings its name needs.

  Attributes:
    name: one of :data:`~parewire_jax.experiments.OPTIMIZERS`:
      ``"sgd"`` (§4.1, ``optax.sgd`` with ``momentum``), ``"adam"``
      (``optax.adam``, default betas) or ``"laperm_adam"``
      (``laperm(optax.adam(schedule), sync_period)``: every kernel is
      permuted, biases and norms follow Adam).
    momentum: SGD's momentum (PyTorch's heavy ball, as ``optax.sgd``).
    sync_period: LaPerm's sync period ``k`` in steps (LaPerm §4).

  >>> Optimizer("laperm_adam", sync_period=5).evaluates_projection
  True
  """

  name: str = "sgd"
  momentum: float = 0.9
  sync_period: int = 20

  @property
  def evaluates_projection(self) -> bool:
    """Whether the evaluated network is LaPerm's synchronised one (``laperm_project``) rather than the weights."""
    return self.name == "laperm_adam"


def make_optimizer(optimizer: Optimizer, training: TrainSettings, steps_per_epoch: int) -> optax.GradientTransformation:
  """``optimizer`` with the epoch-wise cosine schedule of ``training.learning_rate``.

  The schedule is planned over ``training.schedule_epochs`` (``None``: the
  epochs trained), so a run of the paper's 100-epoch schedule can stop after
  its first epochs.

  >>> import jax.numpy as jnp
  >>> tx = make_optimizer(Optimizer("laperm_adam", sync_period=5), TrainSettings(), 10)
  >>> type(tx.init({"w": jnp.eye(2)})).__name__
  'LaPermState'
  """
  check_choice(optimizer.name, OPTIMIZERS, "optimizer")
  planned = training.schedule_epochs or training.epochs
  schedule = epoch_cosine_schedule(training.learning_rate, planned, steps_per_epoch)
  if optimizer.name == "sgd":
    return optax.sgd(schedule, momentum=optimizer.momentum)
  if optimizer.name == "adam":
    return optax.adam(schedule)
  return laperm(optax.adam(schedule), optimizer.sync_period)
