"""The figures of the experiments (Fig. 1b, 3, 4, 5; the atlas's heatmap), drawn to files.

Matplotlib's Agg backend: files only, no display.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from parewire_jax.experiments.metrics import CELL_METRICS, HIGHER_IS_BETTER, TABLE_METRICS, TESTS, per_seed_metrics
from parewire_jax.experiments.tables import format_p

if TYPE_CHECKING:
  from parewire_jax.experiments.atlas import AtlasResult, CellResult
  from parewire_jax.experiments.train import TrainResult


def pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _band(ax: Any, x: np.ndarray, values: np.ndarray, label: str, **style: Any) -> None:
  """Mean over seeds (rows of ``values``) as a line, ± one standard deviation as a band."""
  mean = values.mean(0)
  std = values.std(0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
  (line,) = ax.plot(x, mean, label=label, **style)
  ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _epoch_axis(ax: Any, last_epoch: float) -> None:
  from matplotlib.ticker import MaxNLocator

  ax.set_xlim(0, last_epoch)
  ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
  ax.set_xlabel("epoch")
  ax.grid(alpha=0.3)


def plot_curves(results: Mapping[str, TrainResult], path: str | pathlib.Path) -> None:
  """Fig. 4: training and validation curves, mean ± std over seeds as a band, at any run length.

  Top: training accuracy and loss within epochs, one point per segment of an
  epoch (``TrainResult.train_curve_*``), so even a one-epoch run shows how
  fast each variant learns. Bottom: validation accuracy and loss after every
  epoch (a point with an error bar after one epoch). Epoch ticks are integers.
  """
  plt = pyplot()
  fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
  for variant, result in results.items():
    seeds, epochs, segments = result.train_curve_acc.shape
    x = (np.arange(epochs * segments) + 1) / segments  # each point at the end of its segment
    _band(axes[0, 0], x, result.train_curve_acc.reshape(seeds, -1) * 100, variant)
    _band(axes[0, 1], x, result.train_curve_loss.reshape(seeds, -1), variant)
    for ax, values in ((axes[1, 0], result.val_acc * 100), (axes[1, 1], result.val_loss)):
      epoch_x = np.arange(1, epochs + 1)
      if epochs == 1:
        ax.errorbar(epoch_x, values.mean(0), yerr=values.std(0, ddof=1), fmt="o", capsize=4, label=variant)
      else:
        _band(ax, epoch_x, values, variant, marker="o", markersize=3)
  last = max(r.train_curve_acc.shape[1] for r in results.values())
  titles = [
    ("training accuracy (%), per segment of an epoch", "training loss, per segment of an epoch"),
    ("validation accuracy (%), after each epoch", "validation loss, after each epoch"),
  ]
  for row in range(2):
    for col in range(2):
      ax = axes[row, col]
      _epoch_axis(ax, last + (0.5 if row == 1 and last == 1 else 0))
      ax.set_title(titles[row][col], fontsize=10)
  axes[0, 0].legend()
  fig.suptitle("learning curves: mean ± std over seeds (band / error bar)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_per_seed(metrics: Mapping[str, Mapping[str, np.ndarray]], path: str | pathlib.Path) -> None:
  """Per-seed distributions of the table's metrics: a box plot per variant with every seed as a dot.

  The spread over seeds (§4.2: rewiring reduces it) is seen directly; metrics
  that are the same for every model are left out.
  """
  plt = pyplot()
  present = [m for m in TABLE_METRICS if all(m in v for v in metrics.values())]
  shown = [m for m in present if np.ptp(np.concatenate([np.asarray(v[m], float) for v in metrics.values()])) > 0]
  fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.6 * max(1, len(shown)), 4.2), squeeze=False)
  rng = np.random.default_rng(0)  # horizontal jitter of the dots only
  for ax, metric in zip(axes[0], shown, strict=False):
    header, is_accuracy = TABLE_METRICS[metric]
    scale = 100.0 if is_accuracy else 1.0
    data = [np.asarray(v[metric], float) * scale for v in metrics.values()]
    ax.boxplot(data, showfliers=False, widths=0.5, medianprops={"color": "black"})
    ax.set_xticks(range(1, len(data) + 1), list(metrics), rotation=20)
    for i, values in enumerate(data, start=1):
      ax.plot(i + rng.uniform(-0.12, 0.12, len(values)), values, "o", color=f"C{i - 1}", markersize=3, alpha=0.7)
    ax.set_title(header + (" (%)" if is_accuracy else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
  fig.suptitle(f"per-seed values ({len(data[0]) if shown else 0} seeds per variant)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_strength_distributions(
  kernels: Mapping[str, np.ndarray], path: str | pathlib.Path, *, title: str = ""
) -> None:
  """Fig. 1b: histograms of input and output strengths of one kernel per variant.

  ``kernels[variant]`` is a kernel of shape ``(..., n_out)``; inputs are all
  other axes (the core's convention).
  """
  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  matrices = {v: np.asarray(w, np.float64).reshape(-1, np.shape(w)[-1]) for v, w in kernels.items()}
  for ax, axis in zip(axes, (1, 0), strict=True):  # input strengths are row sums, output strengths column sums
    sums = {v: m.sum(axis) for v, m in matrices.items()}
    bins = np.histogram_bin_edges(np.concatenate(list(sums.values())), bins=50)  # shared, so bars compare
    for variant, s in sums.items():
      ax.hist(s, bins=bins, alpha=0.5, label=f"{variant} (σ²={s.var():.3g})")
  for ax, which in zip(axes, ("input", "output"), strict=True):
    ax.set_xlabel(f"{which} neuron strength")
    ax.set_ylabel("neurons")
    ax.legend()
  fig.suptitle(title or "strength distributions")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_strength_vs_accuracy(results: Mapping[str, TrainResult], path: str | pathlib.Path) -> None:
  """Fig. 3: mean strength variance vs μ₄ of the initial models, coloured by selected test accuracy.

  The title gives the Pearson correlation (and p-value) of each statistic
  with the test accuracy over all models: every seed of every variant.
  """
  from scipy import stats as sps

  plt = pyplot()
  variance = np.concatenate([r.init_mean_variance for r in results.values()])
  fourth = np.concatenate([r.init_mean_fourth_moment for r in results.values()])
  accuracy = np.concatenate([per_seed_metrics(r)["test_acc"] for r in results.values()]) * 100
  fig, ax = plt.subplots(figsize=(6, 5))
  markers = "osD^v<>"
  for i, (variant, result) in enumerate(results.items()):
    n = len(result.seeds)
    offset = sum(len(r.seeds) for r in list(results.values())[:i])
    points = ax.scatter(
      variance[offset : offset + n],
      fourth[offset : offset + n],
      c=accuracy[offset : offset + n],
      vmin=accuracy.min(),
      vmax=accuracy.max(),
      marker=markers[i % len(markers)],
      label=variant,
    )
  fig.colorbar(points, ax=ax, label="test accuracy (%)")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("mean strength variance σ²(s)")
  ax.set_ylabel("mean fourth central moment μ₄(s)")
  ax.legend()
  if len(accuracy) > 2 and np.ptp(accuracy) > 0:
    r_var = sps.pearsonr(variance, accuracy)
    r_fourth = sps.pearsonr(fourth, accuracy)
    ax.set_title(
      f"Pearson r with test accuracy over all {len(accuracy)} models ({len(results)} variants × seeds):\n"
      f"σ²(s): r={r_var[0]:.2f} ({format_p(r_var[1])}); "  # pyright: ignore[reportArgumentType]
      f"μ₄(s): r={r_fourth[0]:.2f} ({format_p(r_fourth[1])})",  # pyright: ignore[reportArgumentType]
      fontsize=9,
    )
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_gradients(results: Mapping[str, TrainResult], path: str | pathlib.Path) -> None:
  """Fig. 5: mean |gradient| per kernel and epoch, averaged over seeds; one line style per variant."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(7, 5))
  styles = ["-", "--", ":", "-."]
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for v, (variant, result) in enumerate(results.items()):
    if result.grad_abs is None:
      raise ValueError(f"variant {variant!r} was trained without track_gradients.")
    mean = result.grad_abs.mean(0)  # (epochs, layers)
    epochs = np.arange(1, mean.shape[0] + 1)
    for layer, name in enumerate(result.layer_names):
      ax.plot(
        epochs,
        mean[:, layer],
        styles[v % len(styles)],
        color=colors[layer % len(colors)],
        marker=".",
        label=f"{name} ({variant})",
      )
  ax.set_yscale("log")
  _epoch_axis(ax, mean.shape[0] + 0.5)
  ax.set_ylabel("mean |∇W|")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def heat_values(cell: CellResult) -> np.ndarray:
  """The heatmap's colour of each of ``TESTS``: the effect over its interval's half-width, positive = better.

  Beyond ±1 the interval excludes "no effect"; the spread ratio counts on a
  log scale, a smaller spread being better.

  >>> from parewire_jax.experiments import CellResult, PairedEffect, SpreadRatio, atlas_grid
  >>> effect = PairedEffect(mean=1.0, low=0.5, high=1.5, p=0.01, wilcoxon=0.02, n=5)
  >>> spread = SpreadRatio(ratio=0.5, low=0.25, high=1.0, p=0.04, n=5)
  >>> cell = CellResult(atlas_grid("smoke")[0], [0], {}, dict.fromkeys(CELL_METRICS, effect), spread, 0.0, False)
  >>> heat_values(cell).round(2).tolist()
  [2.0, 2.0, -2.0, -2.0, 1.0]
  """
  values = []
  for m in CELL_METRICS:
    e = cell.effects[m]
    half = (e.high - e.low) / 2
    values.append((e.mean / half if half > 0 else 0.0) * (1 if HIGHER_IS_BETTER[m] else -1))
  s = cell.spread
  half = (math.log(s.high) - math.log(s.low)) / 2 if s.low > 0 else math.nan
  values.append(-math.log(s.ratio) / half if half > 0 else 0.0)
  return np.nan_to_num(np.array(values, np.float64))


def plot_atlas(result: AtlasResult, path: str | pathlib.Path) -> None:
  """The heatmap: a row per cell, a column per test, coloured by :func:`heat_values`, annotated with the effect."""
  plt = pyplot()
  cells = result.cells
  values = np.array([heat_values(cell) for cell in cells]).reshape(len(cells), len(TESTS))
  fig, ax = plt.subplots(figsize=(12, 1.2 + 0.42 * len(cells)))
  image = ax.imshow(np.clip(values, -4, 4), cmap="RdBu", vmin=-4, vmax=4, aspect="auto")
  for i, cell in enumerate(cells):
    q = result.q_values[cell.cell.name]
    texts = [
      f"{cell.effects[m].mean:+.2f}" if m.endswith("acc") else f"{cell.effects[m].mean:+.3f}" for m in CELL_METRICS
    ]
    texts.append(f"{cell.spread.ratio:.2f}×")
    for j, (test, text) in enumerate(zip(TESTS, texts, strict=True)):
      star = "*" if q[test] < result.alpha else ""
      colour = "white" if abs(values[i, j]) > 2.5 else "black"  # readable on the darkest blues and reds
      ax.text(j, i, text + star, ha="center", va="center", fontsize=8, color=colour)
  ax.set_xticks(range(len(TESTS)))
  ax.set_xticklabels(
    [
      "Δ epoch-1\nval acc (pp)",
      "Δ final\nval acc (pp)",
      "Δ epoch-1\nval loss",
      "Δ final\nval loss",
      "spread ratio\n(final val acc)",
    ],
    fontsize=8,
  )
  ax.set_yticks(range(len(cells)))
  ax.set_yticklabels([f"{c.cell.name}  ({result.verdicts[c.cell.name]})" for c in cells], fontsize=8)
  ax.xaxis.tick_top()
  bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
  bar.set_label("effect / CI half-width (blue: rewiring better; |·| > 1: CI excludes 0)", fontsize=8)
  ax.set_title(f"PA rewiring vs base, paired by seed; * = Benjamini–Hochberg q < {result.alpha}", fontsize=9, pad=28)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)
