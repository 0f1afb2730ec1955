"""The markdown tables (parewire_jax.experiments.tables)."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from parewire_jax.experiments import metrics, tables


def test_paired_table_reports_the_spread():
  rng = np.random.default_rng(3)
  base = {m: rng.normal(0.9, 0.02, 10) for m in metrics.TABLE_METRICS}
  narrow = {m: base[m] + 0.01 + rng.normal(0, 0.002, 10) for m in metrics.TABLE_METRICS}
  analysis = metrics.analyze({"base": base, "rewired": narrow})
  rows = [line for line in tables.paired_table(analysis).splitlines() if line.startswith("| rewired")]
  assert len(rows) == len(metrics.TABLE_METRICS)
  for line, metric in zip(rows, metrics.TABLE_METRICS, strict=True):
    ratio = np.std(narrow[metric], ddof=1) / np.std(base[metric], ddof=1)
    p = sps.levene(narrow[metric], base[metric], center="median").pvalue
    assert line.split("|")[-2].strip() == f"{ratio:.2f}× (p={p:.3g})"
