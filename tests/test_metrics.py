"""Per-seed metrics and the paper's model selection (parewire_jax.experiments.metrics)."""

from __future__ import annotations

import pytest

from parewire_jax.experiments import metrics


def test_select_best_epoch_on_hand_made_curves():
  val = [
    [0.50, 0.70, 0.90, 0.80],  # peak in the middle
    [0.90, 0.80, 0.70, 0.60],  # best at epoch 1
    [0.10, 0.20, 0.30, 0.40],  # best at the end
    [0.60, 0.80, 0.80, 0.80],
  ]  # ties: the first time it is reached
  test = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 0.8, 0.7, 0.6], [0.4, 0.3, 0.2, 0.1]]
  best = metrics.select_best_epoch(val, test)
  assert best.convergence_epoch.tolist() == [3, 1, 4, 2]
  assert best.test_acc.tolist() == [0.3, 0.5, 0.6, 0.3]
  with pytest.raises(ValueError, match="same shape"):
    metrics.select_best_epoch([[0.1, 0.2]], [[0.1]])
