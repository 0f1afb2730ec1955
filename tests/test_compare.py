"""The ``compare`` experiment end to end (parewire_jax.experiments.compare): tables and results.json against scipy."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from helpers import markdown_table, tiny_dataset
from scipy import stats as sps

from parewire_jax.experiments import metrics
from parewire_jax.experiments.compare import run_compare
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.settings import CompareSettings


@pytest.fixture(scope="module")
def tiny() -> Dataset:
  return tiny_dataset(256)


def _numbers(cell: str) -> list[float]:
  return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|nan", cell.replace("p=n/a", "nan"))]


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on near-identical samples
def test_compare_end_to_end(tiny, tmp_path):
  config = CompareSettings().replace(
    dataset="digits",
    model="mlp",
    variants=("base", "rewired", "min_sv"),
    seeds=3,
    epochs=2,
    batch_size=32,
    learning_rate=0.05,
    num_draws=4,
    mlp_hidden=(16,),
    track_gradients=True,
  )
  outcome = run_compare(config, dataset=tiny, out_dir=tmp_path)
  for name in ("results.json", "table.md", "curves.png", "strength.png", "strength_vs_accuracy.png", "gradients.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"] == json.loads(json.dumps(config.asdict()))  # the settings, nested as the record
  assert saved["config"]["variants"] == ["base", "rewired", "min_sv"] and saved["config"]["seeding"]["seeds"] == 3
  assert saved["reference"] == "base" and saved["arms"]["base"]["vs_reference"] is None
  assert saved["dataset"]["num_train"] == 256

  table = (tmp_path / "table.md").read_text()
  header, rows = markdown_table(table)
  assert set(rows) == set(config.variants)
  base = saved["arms"]["base"]["per_seed"]
  for variant in config.variants:
    per_seed = saved["arms"][variant]["per_seed"]
    curves = saved["arms"][variant]["curves"]
    # JSON per-seed metrics are derived from the JSON curves
    np.testing.assert_allclose(per_seed["epoch1_train_acc"], np.asarray(curves["train_acc"])[:, 0])
    best = np.argmax(curves["val_acc"], axis=1)
    np.testing.assert_allclose(per_seed["convergence_epoch"], best + 1)
    np.testing.assert_allclose(per_seed["test_acc"], np.asarray(curves["test_acc"])[np.arange(3), best])
    assert list(per_seed) == ["seeds", *(m for m in metrics.TABLE_METRICS if m != "epoch1_train_end_acc")]
    for metric, (name, is_accuracy) in metrics.TABLE_METRICS.items():
      if metric not in per_seed:  # the end-of-epoch training accuracy: runs with eval_train only
        continue
      x = np.asarray(per_seed[metric])
      scale = 100 if is_accuracy else 1
      if f"{name} (mean ± std)" not in header:  # left out when the same for every model, and said so
        assert np.ptp(x) == 0 and f"{name} (" in table.split("paired by seed")[0]
        continue
      numbers = _numbers(rows[variant][header.index(f"{name} (mean ± std)")])
      assert numbers[:2] == pytest.approx([round(x.mean() * scale, 2), round(x.std(ddof=1) * scale, 2)], abs=0.0051)
      if variant == "base":
        assert len(numbers) == 2
      else:
        p = sps.ttest_ind(x, base[metric], equal_var=False).pvalue
        assert (math.isnan(numbers[2]) and math.isnan(p)) or numbers[2] == pytest.approx(p, rel=5e-3)
        c = outcome.report.comparisons[variant][metric]
        assert np.isnan(c.paired_ttest) or c.paired_ttest == sps.ttest_rel(x, base[metric]).pvalue
    x = np.asarray(per_seed["test_acc"])
    median_cell = _numbers(rows[variant][header.index("test acc. (median ± MAD)")])
    assert median_cell[:2] == pytest.approx(
      [round(np.median(x) * 100, 2), round(np.median(np.abs(x - np.median(x))) * 100, 2)], abs=0.0051
    )
    if variant != "base":
      p = sps.kruskal(x, base["test_acc"]).pvalue
      assert (math.isnan(median_cell[2]) and math.isnan(p)) or median_cell[2] == pytest.approx(p, rel=5e-3)
  # rewiring lowers every seed's initial strength variance
  assert (
    np.asarray(saved["arms"]["rewired"]["init_mean_variance"]) < np.asarray(saved["arms"]["base"]["init_mean_variance"])
  ).all()


def test_variants_are_tested_against_base_wherever_it_is_listed(tiny):
  settings = CompareSettings().replace(dataset="digits", model="mlp", variants=("rewired", "base"), seeds=2,
                                       batch_size=64, mlp_hidden=(8,))  # fmt: skip
  outcome = run_compare(settings, dataset=tiny)
  assert list(outcome.report.comparisons) == ["rewired"]
  header, rows = markdown_table(outcome.table)
  assert "(p=" in rows["rewired"][0] and "(p=" not in rows["base"][0]
