"""The per-seed metrics of the experiments and their analysis (§4.1–4.2, Tables 1–2; the atlas's cells).

The per-seed metrics include the paper's model selection: the test accuracy
at the epoch of the best validation accuracy (:func:`select_best_epoch`).
:func:`analyze` summarizes every arm and tests it against the reference arm
(:mod:`parewire_jax.experiments.stats`). Accuracies are fractions here and
percentages in tables, except the atlas's :data:`CELL_METRICS`, which are in
percent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from parewire_jax.experiments.stats import Comparison, Summary, compare, summarize

if TYPE_CHECKING:
  from parewire_jax.experiments.train import TrainResult

# Per-seed metrics of Tables 1–2, in column order: key -> (header, is an accuracy). "ep. 1 train acc." is the mean
# over the first epoch's steps; "(end)" the model after it evaluated on training examples (``eval_train``), a
# metric of runs that asked for it.
TABLE_METRICS: dict[str, tuple[str, bool]] = {
  "epoch1_train_acc": ("ep. 1 train acc.", True),
  "epoch1_train_end_acc": ("ep. 1 train acc. (end)", True),
  "epoch1_val_acc": ("ep. 1 val. acc.", True),
  "convergence_epoch": ("convergence epoch", False),
  "test_acc": ("test acc.", True),
}


# Why a metric can carry nothing: shown under the tables when it is left out.
_CONSTANT_NOTE = {"convergence_epoch": "the epoch of the best validation accuracy"}


class BestEpoch(NamedTuple):
  """Model selection by validation accuracy (§4.2, Table 1), per seed.

  Attributes:
    convergence_epoch: 1-based epoch of the best validation accuracy, shape ``(S,)``.
    test_acc: the test accuracy at that epoch, shape ``(S,)``.

  >>> select_best_epoch([[0.5, 0.7]], [[0.4, 0.6]]).convergence_epoch.tolist()
  [2]
  """

  convergence_epoch: np.ndarray
  test_acc: np.ndarray


def select_best_epoch(val_acc: ArrayLike, test_acc: ArrayLike) -> BestEpoch:
  """Per seed: the epoch of the highest validation accuracy and the test accuracy there.

  Ties go to the earliest epoch (the first time the best accuracy is reached
  is when training converged). Epochs are 1-based.

  >>> best = select_best_epoch([[0.5, 0.9, 0.9, 0.8]], [[0.4, 0.85, 0.95, 0.9]])
  >>> best.convergence_epoch.tolist(), best.test_acc.tolist()
  ([2], [0.85])
  """
  val_acc = np.asarray(val_acc)
  test_acc = np.asarray(test_acc)
  if val_acc.ndim != 2 or val_acc.shape != test_acc.shape or val_acc.shape[1] < 1:
    raise ValueError(
      f"val_acc and test_acc must have the same shape (seeds, epochs >= 1), got {val_acc.shape} and {test_acc.shape}."
    )
  best = np.argmax(val_acc, axis=1)  # argmax returns the first maximum
  return BestEpoch(best + 1, np.take_along_axis(test_acc, best[:, None], axis=1)[:, 0])


def per_seed_metrics(result: TrainResult) -> dict[str, np.ndarray]:
  """Table 1's per-seed numbers: epoch-1 train/val accuracy, convergence epoch, selected test accuracy.

  The epoch-1 training accuracy is the mean over the epoch's steps and, when
  the run evaluated training examples after every epoch
  (``TrainSettings.eval_train``), also that of the model at the end of the
  epoch. The test accuracy is the one at the epoch of the best validation
  accuracy (:func:`select_best_epoch`), the paper's model selection.
  """
  best = select_best_epoch(result.val_acc, result.test_acc)
  metrics = {
    "epoch1_train_acc": result.train_acc[:, 0],
    "epoch1_val_acc": result.val_acc[:, 0],
    "convergence_epoch": best.convergence_epoch.astype(np.float64),
    "test_acc": best.test_acc,
  }
  if "train_eval_acc" in result.records:
    metrics["epoch1_train_end_acc"] = np.asarray(result.records["train_eval_acc"], np.float64)[:, 0]
  return {m: metrics[m] for m in TABLE_METRICS if m in metrics}  # in column order


class MetricReport(NamedTuple):
  """Summaries of every metric per variant and tests of every variant against the base.

  Attributes:
    summaries: variant -> metric -> :class:`~parewire_jax.experiments.Summary`.
    comparisons: variant (not the base) -> metric -> :class:`~parewire_jax.experiments.Comparison`.

  >>> r = analyze({"base": {"acc": [0.90, 0.92, 0.91]}, "rewired": {"acc": [0.93, 0.95, 0.94]}})
  >>> round(r.summaries["rewired"]["acc"].mean, 2), round(r.comparisons["rewired"]["acc"].mean_difference, 2)
  (0.94, 0.03)
  """

  summaries: dict[str, dict[str, Summary]]
  comparisons: dict[str, dict[str, Comparison]]


def analyze(
  metrics: Mapping[str, Mapping[str, np.ndarray]], base: str = "base", *, equal_var: bool = False
) -> MetricReport:
  """Summaries and tests against ``base`` of per-seed ``metrics[variant][metric]`` (§4.1)."""
  if base not in metrics:
    raise ValueError(f"the base variant {base!r} is missing; got variants {sorted(metrics)}.")
  summaries = {v: {m: summarize(x) for m, x in ms.items()} for v, ms in metrics.items()}
  comparisons = {
    v: {m: compare(metrics[base][m], x, equal_var=equal_var) for m, x in ms.items()}
    for v, ms in metrics.items()
    if v != base
  }
  return MetricReport(summaries, comparisons)


def informative_metrics(report: MetricReport) -> list[str]:
  """The metrics of :data:`TABLE_METRICS` whose per-seed values vary somewhere; the others carry nothing.

  E.g. the convergence epoch of a one-epoch run is 1 for every model.
  """
  summaries = report.summaries.values()
  return [m for m in reported_metrics(report) if any(s[m].std > 0 or s[m].mad > 0 for s in summaries)]


def reported_metrics(report: MetricReport) -> list[str]:
  """The metrics of :data:`TABLE_METRICS` that every arm of ``report`` has, in column order."""
  return [m for m in TABLE_METRICS if all(m in summary for summary in report.summaries.values())]


# The per-seed metrics of an atlas cell; accuracies in percent, losses as trained (cross-entropy).
CELL_METRICS = ("epoch1_val_acc", "final_val_acc", "epoch1_val_loss", "final_val_loss")


HIGHER_IS_BETTER = {"epoch1_val_acc": True, "final_val_acc": True, "epoch1_val_loss": False, "final_val_loss": False}


# The metric whose spread over seeds is compared (Table 1's standard deviations).
SPREAD_METRIC = "final_val_acc"


# Every test of a cell, named as in q-values: the paired effects, then the spread.
TESTS = (*CELL_METRICS, "spread")


def cell_metrics(val_acc: Any, val_loss: Any) -> dict[str, np.ndarray]:
  """The ``CELL_METRICS`` of one variant from its ``(seeds, epochs)`` validation curves (accuracy as a fraction).

  >>> m = cell_metrics([[0.5, 0.75]], [[1.0, 0.5]])
  >>> m["epoch1_val_acc"].tolist(), m["final_val_loss"].tolist()
  ([50.0], [0.5])
  """
  acc = 100 * np.asarray(val_acc, np.float64)
  loss = np.asarray(val_loss, np.float64)
  return {
    "epoch1_val_acc": acc[:, 0],
    "final_val_acc": acc[:, -1],
    "epoch1_val_loss": loss[:, 0],
    "final_val_loss": loss[:, -1],
  }
