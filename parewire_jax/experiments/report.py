"""Per-seed metrics, tables, JSON and plots of the experiments (Tables 1–2, Fig. 1b, 3, 4, 5).

The per-seed metrics include the paper's model selection: the test accuracy
at the epoch of the best validation accuracy (:func:`select_best_epoch`).

Accuracies are fractions in the per-seed records and percentages in tables.
Plots use Matplotlib's Agg backend (files only, no display).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from parewire_jax.experiments.stats import Comparison, Summary, compare, summarize
from parewire_jax.experiments.train import TrainResult

# Per-seed metrics of Tables 1–2, in column order: key -> (header, is an accuracy).
METRICS: dict[str, tuple[str, bool]] = {
  "epoch1_train_acc": ("ep. 1 train acc.", True),
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

  The test accuracy is the one at the epoch of the best validation accuracy
  (:func:`select_best_epoch`), the paper's model selection.
  """
  best = select_best_epoch(result.val_acc, result.test_acc)
  return {
    "epoch1_train_acc": result.train_acc[:, 0],
    "epoch1_val_acc": result.val_acc[:, 0],
    "convergence_epoch": best.convergence_epoch.astype(np.float64),
    "test_acc": best.test_acc,
  }


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


def format_p(p: float) -> str:
  """``p=0.0123`` (three significant digits), ``p=n/a`` when undefined."""
  return "p=n/a" if math.isnan(p) else f"p={p:.3g}"


def _cell(location: float, spread: float, scale: float, p: float | None) -> str:
  text = f"{location * scale:.2f} ± {spread * scale:.2f}"
  return text if p is None else f"{text} ({format_p(p)})"


def informative_metrics(report: MetricReport) -> list[str]:
  """The metrics of :data:`METRICS` whose per-seed values vary somewhere; the others carry nothing.

  E.g. the convergence epoch of a one-epoch run is 1 for every model.
  """
  return [m for m in METRICS if any(summary[m].std > 0 or summary[m].mad > 0 for summary in report.summaries.values())]


def _omitted_note(report: MetricReport) -> str:
  omitted = [m for m in METRICS if m not in informative_metrics(report)]
  notes = []
  for m in omitted:
    values = {round(summary[m].mean, 6) for summary in report.summaries.values()}
    value = ", ".join(f"{v * (100 if METRICS[m][1] else 1):g}" for v in sorted(values))
    what = _CONSTANT_NOTE.get(m, METRICS[m][0])
    notes.append(f"{METRICS[m][0]} ({what}): {value} for every model")
  return "" if not notes else "\n\nNot shown, as it carries nothing here: " + "; ".join(notes) + "."


def markdown_table(report: MetricReport, base: str = "base") -> str:
  """Tables 1–2 as markdown: mean ± std with t-test p, and test median ± MAD with Kruskal–Wallis p.

  Accuracies in percent; p-values are against ``base`` (two-sided). Metrics
  that are the same for every model are left out, with a note saying so.
  """
  metrics = informative_metrics(report)
  headers = ["weights"] + [METRICS[m][0] + " (mean ± std)" for m in metrics] + ["test acc. (median ± MAD)"]
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for variant, summary in report.summaries.items():
    tests = report.comparisons.get(variant)
    cells = [variant]
    for metric in metrics:
      s = summary[metric]
      p = tests[metric].ttest if tests else None
      cells.append(_cell(s.mean, s.std, 100.0 if METRICS[metric][1] else 1.0, p))
    s = summary["test_acc"]
    cells.append(_cell(s.median, s.mad, 100.0, tests["test_acc"].kruskal if tests else None))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + _omitted_note(report)


def _std_ratio(summary: Summary, base: Summary) -> str:
  return "n/a" if base.std == 0 else f"{summary.std / base.std:.2f}×"


def paired_table(report: MetricReport) -> str:
  """Every variant against the base per metric: the paired comparison (same seeds) and the spread.

  Columns: mean difference, paired t-test and Wilcoxon p-values, and the
  ratio of standard deviations (variant / base) with the Brown–Forsythe
  p-value of equal variances. The base is the variant without comparisons.
  """
  (base,) = (v for v in report.summaries if v not in report.comparisons)
  lines = [
    "| weights | metric | mean difference | paired t-test | Wilcoxon signed-rank | std ratio (Brown–Forsythe) |",
    "|---|---|---|---|---|---|",
  ]
  for variant, tests in report.comparisons.items():
    for metric in informative_metrics(report):
      header, is_accuracy = METRICS[metric]
      c = tests[metric]
      unit = " pp" if is_accuracy else ""
      scale = 100.0 if is_accuracy else 1.0
      ratio = _std_ratio(report.summaries[variant][metric], report.summaries[base][metric])
      lines.append(
        f"| {variant} | {header} | {c.mean_difference * scale:+.2f}{unit} | "
        f"{format_p(c.paired_ttest)} | {format_p(c.wilcoxon)} | {ratio} ({format_p(c.levene)}) |"
      )
  return "\n".join(lines)


def dataset_record(dataset: Any) -> dict[str, Any]:
  """What ``results.json`` says of the data a run trained on."""
  return {
    "name": dataset.name,
    "num_train": len(dataset.x_train),
    "num_val": len(dataset.x_val),
    "num_test": len(dataset.x_test),
    "num_classes": dataset.num_classes,
  }


# The per-seed curves every results.json holds, (seeds, epochs) and (seeds, epochs, segments).
CURVES = (
  "train_loss",
  "train_acc",
  "val_loss",
  "val_acc",
  "test_loss",
  "test_acc",
  "train_curve_loss",
  "train_curve_acc",
)


def curves_record(result: TrainResult) -> dict[str, np.ndarray]:
  """The per-seed curves of ``result`` by name, for ``results.json``."""
  return {name: getattr(result, name) for name in CURVES}


def to_jsonable(x: Any) -> Any:
  """NumPy arrays and scalars, NamedTuples and mappings to JSON types (nan -> null)."""
  if isinstance(x, np.ndarray):
    return to_jsonable(x.tolist())
  if isinstance(x, (np.floating, float)):
    return None if math.isnan(float(x)) else float(x)
  if isinstance(x, np.integer):
    return int(x)
  if isinstance(x, tuple) and hasattr(x, "_asdict"):  # a NamedTuple
    return {k: to_jsonable(v) for k, v in x._asdict().items()}  # pyright: ignore[reportAttributeAccessIssue]
  if isinstance(x, Mapping):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  return x


def write_json(path: str | pathlib.Path, payload: Any) -> None:
  pathlib.Path(path).write_text(json.dumps(to_jsonable(payload), indent=1, allow_nan=False))


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
  shown = [m for m in METRICS if np.ptp(np.concatenate([np.asarray(v[m], float) for v in metrics.values()])) > 0]
  fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.6 * max(1, len(shown)), 4.2), squeeze=False)
  rng = np.random.default_rng(0)  # horizontal jitter of the dots only
  for ax, metric in zip(axes[0], shown, strict=False):
    header, is_accuracy = METRICS[metric]
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


def strength_table(stats: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> str:
  """Markdown table, one row per variant, ``stats[variant][column]`` in 4 significant digits."""
  lines = ["| weights | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  for variant, row in stats.items():
    lines.append(f"| {variant} | " + " | ".join(f"{row[c]:.4g}" for c in columns) + " |")
  return "\n".join(lines)
