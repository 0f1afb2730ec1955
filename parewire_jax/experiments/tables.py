"""The markdown tables of the experiments: Tables 1–2, the paired comparison, strengths, LaPerm, the atlas.

Accuracies in percent; every p-value is two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from parewire_jax.experiments.metrics import (
  _CONSTANT_NOTE,
  CELL_METRICS,
  TABLE_METRICS,
  TESTS,
  MetricReport,
  informative_metrics,
  reported_metrics,
)
from parewire_jax.experiments.settings import LAPERM_ARMS, CompareSettings
from parewire_jax.experiments.stats import Comparison, PairedEffect, SpreadRatio, Summary

if TYPE_CHECKING:
  from parewire_jax.experiments.atlas import CellResult
  from parewire_jax.experiments.laperm_demo import LaPermResult
  from parewire_jax.experiments.train import TrainResult


def format_p(p: float) -> str:
  """``p=0.0123`` (three significant digits), ``p=n/a`` when undefined."""
  return "p=n/a" if math.isnan(p) else f"p={p:.3g}"


def _cell(location: float, spread: float, scale: float, p: float | None) -> str:
  text = f"{location * scale:.2f} ± {spread * scale:.2f}"
  return text if p is None else f"{text} ({format_p(p)})"


def _omitted_note(report: MetricReport) -> str:
  omitted = [m for m in reported_metrics(report) if m not in informative_metrics(report)]
  notes = []
  for m in omitted:
    values = {round(summary[m].mean, 6) for summary in report.summaries.values()}
    value = ", ".join(f"{v * (100 if TABLE_METRICS[m][1] else 1):g}" for v in sorted(values))
    what = _CONSTANT_NOTE.get(m, TABLE_METRICS[m][0])
    notes.append(f"{TABLE_METRICS[m][0]} ({what}): {value} for every model")
  return "" if not notes else "\n\nNot shown, as it carries nothing here: " + "; ".join(notes) + "."


def markdown_table(report: MetricReport) -> str:
  """Tables 1–2 as markdown: mean ± std with t-test p, and test median ± MAD with Kruskal–Wallis p.

  Accuracies in percent; p-values are against the reference arm (two-sided). Metrics
  that are the same for every model are left out, with a note saying so.
  """
  metrics = informative_metrics(report)
  headers = ["weights"] + [TABLE_METRICS[m][0] + " (mean ± std)" for m in metrics] + ["test acc. (median ± MAD)"]
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for variant, summary in report.summaries.items():
    tests = report.comparisons.get(variant)
    cells = [variant]
    for metric in metrics:
      s = summary[metric]
      p = tests[metric].ttest if tests else None
      cells.append(_cell(s.mean, s.std, 100.0 if TABLE_METRICS[metric][1] else 1.0, p))
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
      header, is_accuracy = TABLE_METRICS[metric]
      c = tests[metric]
      unit = " pp" if is_accuracy else ""
      scale = 100.0 if is_accuracy else 1.0
      ratio = _std_ratio(report.summaries[variant][metric], report.summaries[base][metric])
      lines.append(
        f"| {variant} | {header} | {c.mean_difference * scale:+.2f}{unit} | "
        f"{format_p(c.paired_ttest)} | {format_p(c.wilcoxon)} | {ratio} ({format_p(c.levene)}) |"
      )
  return "\n".join(lines)


def strength_table(stats: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> str:
  """Markdown table, one row per variant, ``stats[variant][column]`` in 4 significant digits."""
  lines = ["| weights | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  for variant, row in stats.items():
    lines.append(f"| {variant} | " + " | ".join(f"{row[c]:.4g}" for c in columns) + " |")
  return "\n".join(lines)


# WeightDeviation fields shown in the table: field -> header.
DEVIATION_COLUMNS = {"relative": "‖Δ‖/‖W₀‖", "mean_abs": "mean abs(Δ)", "max_abs": "max abs(Δ)"}


def _mean_std(x: np.ndarray, scale: float) -> str:
  return f"{np.mean(x) * scale:.2f} ± {np.std(x, ddof=1) * scale:.2f}"


def epoch_table(results: dict[str, TrainResult], epoch_tests: list[Comparison]) -> str:
  """Markdown: validation accuracy (%) per epoch, mean ± std per arm, paired difference and p-values."""
  lines = [
    "| epoch | "
    + " | ".join(f"{arm} val. acc." for arm in LAPERM_ARMS)
    + " | mean difference | paired t-test | Wilcoxon signed-rank |",
    "|---|" + "---|" * (len(LAPERM_ARMS) + 3),
  ]
  for e, test in enumerate(epoch_tests):
    cells = [_mean_std(results[arm].val_acc[:, e], 100.0) for arm in LAPERM_ARMS]
    lines.append(
      f"| {e + 1} | " + " | ".join(cells) + f" | {test.mean_difference * 100:+.2f} pp | "
      f"{format_p(test.paired_ttest)} | {format_p(test.wilcoxon)} |"
    )
  return "\n".join(lines)


def deviation_table(deviation: dict[str, dict[str, Any]]) -> str:
  """Markdown: weight deviation of the final kernels from the initial ones, mean over seeds, per layer."""
  headers = [f"{arm} {header}" for header in DEVIATION_COLUMNS.values() for arm in LAPERM_ARMS]
  lines = ["| kernel | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
  for name in deviation[LAPERM_ARMS[0]]:
    cells = [
      f"{np.mean(getattr(deviation[arm][name], field)):.4g}" for field in DEVIATION_COLUMNS for arm in LAPERM_ARMS
    ]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _format_effect(metric: str, effect: PairedEffect, q: float, alpha: float) -> str:
  digits = 2 if metric.endswith("acc") else 4
  star = "*" if q < alpha else ""
  return f"{effect.mean:+.{digits}f} [{effect.low:+.{digits}f}, {effect.high:+.{digits}f}]{star}"


def _format_spread(spread: SpreadRatio, q: float, alpha: float) -> str:
  star = "*" if q < alpha else ""
  return f"{spread.ratio:.2f} [{spread.low:.2f}, {spread.high:.2f}]{star}"


def atlas_table(
  cells: Sequence[CellResult],
  q_values: Mapping[str, Mapping[str, float]],
  verdicts: Mapping[str, str],
  *,
  confidence: float,
  alpha: float,
) -> str:
  """The atlas as markdown: one row per cell, every effect ``mean [low, high]``, ``*`` where q < alpha."""
  header = (
    "| cell | family | seeds | Δ epoch-1 val acc (pp) | Δ final val acc (pp) | Δ epoch-1 val loss | Δ final val loss "
    "| spread ratio (final val acc) | verdict |"
  )
  rows = [header, "|" + "---|" * 9]
  for cell in cells:
    name = cell.cell.name
    effects = [_format_effect(m, cell.effects[m], q_values[name][m], alpha) for m in CELL_METRICS]
    spread = _format_spread(cell.spread, q_values[name]["spread"], alpha)
    rows.append(
      f"| {name} | {cell.cell.family} | {len(cell.seeds)} | {' | '.join(effects)} | {spread} | {verdicts[name]} |"
    )
  return (
    f"Rewired − base, paired by seed: mean [{confidence:.0%} confidence interval]; spread ratio = std(rewired) / "
    f"std(base) over seeds [{confidence:.0%} interval, Pitman–Morgan]. `*`: Benjamini–Hochberg q < {alpha} over "
    f"all {len(cells) * len(TESTS)} tests of the atlas.\n\n" + "\n".join(rows)
  )


def compare_table(settings: CompareSettings, report: MetricReport) -> str:
  """``compare``'s report: what was run, Tables 1–2 (:func:`markdown_table`) and the paired comparison."""
  network = settings.network
  test = "Student" if settings.equal_var else "Welch"
  model = network.model + ("" if network.norm == "none" else f" ({network.norm} norm)")
  optimizer = "" if settings.optimizer == "sgd" else f", {settings.optimizer}"
  return (
    f"{settings.data.dataset} / {model} / {network.init}: {settings.seeding.seeds} seeds, "
    f"{settings.training.epochs} epoch(s){optimizer}; "
    f"p: {test} t-test (mean) and Kruskal–Wallis (median) vs base\n\n"
    + markdown_table(report)
    + "\n\npaired by seed (variant − base), and the spread over seeds (std ratio, Brown–Forsythe test):\n\n"
    + paired_table(report)
  )


def laperm_table(outcome: LaPermResult, dataset_name: str) -> str:
  """``laperm``'s report: what was run, accuracy per epoch, the per-seed metrics, exactness and weight deviation."""
  settings, network, training = outcome.settings, outcome.settings.network, outcome.settings.training
  seeds, epochs = settings.seeding.seeds, training.epochs
  total = outcome.columns_per_epoch * epochs
  exact_lines = "\n".join(f"- {arm}: {int(outcome.exact_columns[arm].sum())} / {total}" for arm in LAPERM_ARMS)
  return (
    f"{dataset_name} / {network.model} {list(network.mlp_hidden) if network.model == 'mlp' else ''} / "
    f"{network.init}: {seeds} seeds, {epochs} epoch(s), batch {training.batch_size}, "
    f"Adam lr {training.learning_rate:g} (cosine), LaPerm sync period k = {settings.sync_period}\n\n"
    "validation accuracy (%) per epoch, mean ± std over seeds; paired by seed (laperm_adam − adam):\n\n"
    + epoch_table(outcome.results, outcome.epoch_tests)
    + "\n\nper-seed metrics, mean ± std (Welch t-test) and median ± MAD (Kruskal–Wallis) vs adam; "
    "test acc. at the best validation epoch:\n\n"
    + markdown_table(outcome.report)
    + "\n\npaired by seed (laperm_adam − adam):\n\n"
    + paired_table(outcome.report)
    + f"\n\nevaluated kernel weight vectors (columns) that are bit-exact permutations of their initial "
    f"values, over {epochs} epoch(s) × {seeds} seeds × {outcome.columns_per_epoch // seeds} "
    f"columns:\n\n"
    + exact_lines
    + "\n\nweight deviation of the final kernels from the initial ones (Δ = W − W₀), mean over seeds:\n\n"
    + deviation_table(outcome.deviation)
  )
