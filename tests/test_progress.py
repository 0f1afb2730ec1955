"""Progress (parewire_jax.experiments.progress): completed steps only, evaluations as work, totals that add up."""

from __future__ import annotations

import time
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np
from helpers import tiny_dataset

from parewire_jax.experiments.progress import TrainingProgress, evaluation_work, run_work
from parewire_jax.experiments.runner import planned_work
from parewire_jax.experiments.settings import CompareSettings, TrainSettings
from parewire_jax.experiments.train import train_seeds


class _SlowMLP(nn.Module):
  """A small MLP whose every training step reports itself from inside the computation, after a pause."""

  finished: Callable[[], None]

  @nn.compact
  def __call__(self, x, train: bool = False):
    logits = nn.Dense(3)(nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1))))
    if train:

      def slow_step(_):
        time.sleep(0.01)
        self.finished()

      jax.debug.callback(slow_step, logits[0, 0])
    return logits


class _Recorder:
  """An observer that writes down what it is told."""

  def __init__(self, on_trained: Callable[[int], None] = lambda steps: None):
    self.events: list = []
    self.on_trained = on_trained

  def compiled(self) -> None:
    self.events.append("compiled")

  def trained(self, steps: int) -> None:
    self.on_trained(steps)
    self.events.append(steps)

  def evaluated(self) -> None:
    self.events.append("evaluated")


def test_progress_counts_completed_steps_not_dispatched_ones():
  """When the bar moves, exactly the steps it counts have run: a fake slow step reports from inside XLA."""
  data, executed, seen = tiny_dataset(160), [], []
  config = TrainSettings(epochs=2, batch_size=16, segments_per_epoch=5)  # 10 steps, 5 segments per epoch
  seeds = [0, 1]
  observer = _Recorder(lambda steps: seen.append((steps, len(executed) // len(seeds))))
  train_seeds(_SlowMLP(lambda: executed.append(1)), data, seeds, config, observer=observer)
  assert [steps for steps, _ in seen] == [2] * 10
  completed_at_update = [done for _, done in seen]
  assert completed_at_update == list(np.cumsum([steps for steps, _ in seen]))


def test_each_chunk_says_when_it_is_compiled_and_each_evaluation_comes_after_its_epoch():
  data = tiny_dataset(160)
  config = TrainSettings(epochs=2, batch_size=16, segments_per_epoch=2)  # 10 steps per epoch
  observer = _Recorder()
  train_seeds(_SlowMLP(lambda: None), data, [0, 1, 2], config, seeds_per_chunk=2, observer=observer)
  chunk = ["compiled", 5, 5, "evaluated", 5, 5, "evaluated"]
  assert observer.events == chunk * 2


def test_bar_leaves_compilation_out_counts_evaluations_as_work_and_ends_at_its_total():
  data = tiny_dataset(160)
  settings = CompareSettings().replace(epochs=2, batch_size=16, segments_per_epoch=2, seeds=3, seeds_per_chunk=2)
  work = evaluation_work(16, len(data.x_val) + len(data.x_test))
  assert work == max(1, round(3 * (len(data.x_val) + len(data.x_test)) / (4 * 16)))
  total = planned_work(settings, 2, data)
  # 2 arms × 2 chunks × 2 epochs × (10 steps + one evaluation's work)
  assert total == 2 * run_work(num_seeds=3, seeds_per_chunk=2, epochs=2, steps_per_epoch=10, evaluation_work=work)
  assert total == 2 * 2 * 2 * (10 + work)
  with TrainingProgress(total, enabled=False) as bar:
    for name in ("a", "b"):
      bar.start(name, evaluation_work=work)
      train_seeds(_SlowMLP(lambda: None), data, [0, 1, 2], settings.training, seeds_per_chunk=2, observer=bar)
    assert bar.count == total
