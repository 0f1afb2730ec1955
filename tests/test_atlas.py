"""The effect atlas: statistics against scipy, a 2-cell grid end to end, its outputs, resume and the CLI."""

import json
import re
import shutil

import numpy as np
import pytest
from scipy import stats as sps

from parewire_jax.__main__ import main
from parewire_jax.experiments import atlas as atlas_lib
from parewire_jax.experiments.atlas_grids import GRIDS, AtlasCell, atlas_grid, check_atlas_cells
from parewire_jax.experiments.stats import PairedEffect, SpreadRatio, paired_effect, spread_ratio

SEEDS = 3


def _pairs(n, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=n)
  return base, 0.6 * base + scale * rng.normal(size=n) + 0.3


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n, confidence", [(5, 0.95), (20, 0.9), (50, 0.99)])
def test_paired_effect_matches_scipy(n, confidence):
  base, variant = _pairs(n, seed=n)
  effect = paired_effect(base, variant, confidence=confidence)
  t = sps.ttest_rel(variant, base)
  low, high = t.confidence_interval(confidence)
  np.testing.assert_allclose([effect.low, effect.high], [low, high], rtol=1e-12)
  np.testing.assert_allclose(effect.mean, np.mean(variant - base), rtol=1e-12)
  np.testing.assert_allclose(effect.p, t.pvalue, rtol=1e-12)
  np.testing.assert_allclose(effect.wilcoxon, sps.wilcoxon(variant, base).pvalue, rtol=1e-12)
  assert effect.n == n


@pytest.mark.parametrize("n, confidence, scale", [(6, 0.95, 0.3), (20, 0.95, 2.0), (40, 0.9, 1.0)])
def test_spread_ratio_test_and_interval_match_pitman_morgan_by_scipy(n, confidence, scale):
  base, variant = _pairs(n, seed=n, scale=scale)
  s = spread_ratio(base, variant, confidence=confidence)
  np.testing.assert_allclose(s.ratio, np.std(variant, ddof=1) / np.std(base, ddof=1), rtol=1e-12)
  # Pitman–Morgan: equal variances <=> uncorrelated sums and differences (scipy's Pearson test).
  np.testing.assert_allclose(s.p, sps.pearsonr(variant + base, variant - base).pvalue, rtol=1e-10)
  # The interval is the set of ratios the test does not reject: at each end its p-value is 1 - confidence.
  for ratio in (s.low, s.high):
    p = sps.pearsonr(variant + ratio * base, variant - ratio * base).pvalue
    np.testing.assert_allclose(p, 1 - confidence, rtol=1e-8)
  assert s.low < s.ratio < s.high


def test_statistics_refuse_bad_input():
  with pytest.raises(ValueError, match="same seeds"):
    paired_effect([1.0, 2.0, 3.0], [1.0, 2.0])
  with pytest.raises(ValueError, match="confidence must be in"):
    paired_effect([1.0, 2.0], [2.0, 3.0], confidence=95)
  with pytest.raises(ValueError, match="at least 3 seeds"):
    spread_ratio([1.0, 2.0], [2.0, 3.5])
  assert np.isnan(spread_ratio([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).ratio)  # no spread to compare


def _cell_result(name, effects, spread_p=0.5):
  effects = {
    m: PairedEffect(mean, mean - 0.1, mean + 0.1, p, p, 5)
    for m, (mean, p) in zip(atlas_lib.METRICS, effects, strict=True)
  }
  cell = AtlasCell(name, "family", atlas_grid("smoke")[0].config)
  return atlas_lib.CellResult(cell, [0], {}, effects, SpreadRatio(1.0, 0.5, 2.0, spread_p, 5), 0.0, False)


def test_verdicts_use_benjamini_hochberg_over_the_atlas_and_the_metric_directions():
  better_acc, worse_acc, better_loss, nothing = (0.5, 1e-4), (-0.5, 1e-4), (-0.01, 1e-4), (0.0, 0.9)
  cells = [
    _cell_result("helped", [better_acc, nothing, better_loss, nothing]),
    _cell_result("hurt", [worse_acc, nothing, nothing, nothing]),
    _cell_result("mixed", [better_acc, worse_acc, nothing, nothing]),
    _cell_result("flat", [nothing, nothing, nothing, nothing], spread_p=1e-4),
    _cell_result("weak", [(0.5, 0.02), nothing, nothing, nothing]),  # p < 0.05, but not after the correction
  ]
  q_values, verdicts = atlas_lib._judge(cells, alpha=0.05)
  p = np.array([[c.effects[m].p for m in atlas_lib.METRICS] + [c.spread.p] for c in cells])
  expected_q = sps.false_discovery_control(p.ravel()).reshape(p.shape)
  np.testing.assert_allclose([[q_values[c.cell.name][t] for t in atlas_lib.TESTS] for c in cells], expected_q)
  assert verdicts == {"helped": "helped", "hurt": "hurt", "mixed": "mixed", "flat": "no effect", "weak": "no effect"}


# --------------------------------------------------------------------------- grids


def test_grids_are_valid_and_the_default_covers_the_issue():
  for name in GRIDS:
    check_atlas_cells(atlas_grid(name))
  default = {cell.name: cell.config for cell in atlas_grid("default")}
  assert {c.mlp_hidden for c in default.values() if c.model == "mlp"} == {
    (width,) * depth for depth in (2, 4, 8) for width in (64, 256, 1024)
  }
  assert {c.norm for c in default.values() if c.model == "lenet"} == {"none", "batch", "layer"}
  assert {c.init for c in default.values() if c.model == "lenet"} == {
    "kaiming_normal",
    "kaiming_uniform",
    "truncated_normal",
    "orthogonal",
  }
  assert {c.model for c in default.values()} >= {"resmlp", "transformer"}
  assert all(c.seeds == 20 for c in default.values())
  assert [c.config.seeds for c in atlas_grid("default", seeds=5, cells=["lenet"])] == [5]


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda: atlas_grid("huge"), "grid must be one of"),
    (lambda: atlas_grid("smoke", cells=["lenet"]), "cells must name cells of the 'smoke' grid"),
    (lambda: atlas_grid("smoke", seeds=2), "seeds must be an int >= 3"),
    (lambda: check_atlas_cells([]), "at least one AtlasCell"),
    (lambda: check_atlas_cells(atlas_grid("smoke")[:1] * 2), "distinct names"),
    (lambda: check_atlas_cells([atlas_grid("smoke")[0]._replace(name="a/b")]), "directory name"),
    (
      lambda: check_atlas_cells([AtlasCell("x", "f", atlas_grid("smoke")[0].config._replace(variants=("base",)))]),
      "cell 'x': variants must be",
    ),
    (
      lambda: check_atlas_cells([AtlasCell("x", "f", atlas_grid("smoke")[0].config._replace(batch_size=999))]),
      "cell 'x': batch_size (999) exceeds",
    ),
  ],
)
def test_bad_grids_and_cells_are_refused(call, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    call()


# --------------------------------------------------------------------------- end to end

# The smoke grid's cells differ in depth; here only in the data order, so the second cell's programs are the
# first's, and the run_compare and run_atlas doctests' (XLA's compilation cache, tests/conftest.py).
CELLS = [
  AtlasCell(f"mlp-data{seed}", "MLP", atlas_grid("smoke")[0].config._replace(seeds=SEEDS, data_seed=seed))
  for seed in (0, 1)
]


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("atlas")
  return atlas_lib.run_atlas(CELLS, out_dir=out), out


def test_two_cell_atlas_end_to_end(atlas_run):
  result, out = atlas_run
  assert [c.cell.name for c in result.cells] == [c.name for c in CELLS]
  for file in ("atlas.json", "atlas.md", "atlas.png"):
    assert (out / file).stat().st_size > 0
  for cell in result.cells:
    assert cell.seeds == list(range(SEEDS)) and not cell.reused
    compare = json.loads((out / "cells" / cell.cell.name / "results.json").read_text())
    for variant in ("base", "rewired"):
      np.testing.assert_array_equal(
        cell.per_seed[variant]["final_val_acc"],
        100 * np.array(compare["variants"][variant]["curves"]["val_acc"])[:, -1],
      )
    for metric in atlas_lib.METRICS:
      base, rewired = cell.per_seed["base"][metric], cell.per_seed["rewired"][metric]
      assert cell.effects[metric] == paired_effect(base, rewired)
    assert result.verdicts[cell.cell.name] in atlas_lib.VERDICTS


def test_json_holds_every_per_seed_number_and_the_table_equals_it(atlas_run):
  result, out = atlas_run
  saved = json.loads((out / "atlas.json").read_text())
  table = (out / "atlas.md").read_text()
  rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in table.splitlines() if line.startswith("| mlp-")}
  assert [c["name"] for c in saved["cells"]] == list(rows)
  number = r"[-+]?\d+\.\d+"
  for cell, entry in zip(result.cells, saved["cells"], strict=True):
    for variant in ("base", "rewired"):
      for metric in atlas_lib.METRICS:
        assert entry["per_seed"][variant][metric] == cell.per_seed[variant][metric].tolist()
    columns = rows[entry["name"]]
    assert columns[0].strip() == entry["family"] and int(columns[1]) == SEEDS
    for metric, text in zip(atlas_lib.METRICS, columns[2:6], strict=True):
      digits = 2 if metric.endswith("acc") else 4
      effect = entry["effects"][metric]
      shown = [float(x) for x in re.findall(number, text)]
      assert shown == [round(effect[k], digits) for k in ("mean", "low", "high")]
      assert text.strip().endswith("*") == (entry["q_values"][metric] < saved["alpha"])
    spread = entry["spread"]
    assert [float(x) for x in re.findall(number, columns[6])] == [round(spread[k], 2) for k in ("ratio", "low", "high")]
    assert columns[7].strip() == entry["verdict"]


def test_resume_reuses_finished_cells_and_resumes_an_unfinished_one(atlas_run, tmp_path):
  result, out = atlas_run
  copy = tmp_path / "atlas"
  shutil.copytree(out, copy)
  (copy / "cells" / CELLS[1].name / "results.json").unlink()  # the second cell was interrupted after its chunks
  again = atlas_lib.run_atlas(CELLS, out_dir=copy, resume=True)
  assert [c.reused for c in again.cells] == [True, False]
  for first, second in zip(result.cells, again.cells, strict=True):
    for variant in ("base", "rewired"):
      for metric in atlas_lib.METRICS:
        np.testing.assert_array_equal(first.per_seed[variant][metric], second.per_seed[variant][metric])
  assert again.table == result.table
  compare = json.loads((copy / "cells" / CELLS[1].name / "results.json").read_text())
  assert compare["resumed_chunks"] == {"base": [list(range(SEEDS))], "rewired": [list(range(SEEDS))]}


def test_resume_refuses_a_cell_run_with_other_settings(atlas_run, tmp_path):
  _, out = atlas_run
  shutil.copytree(out, tmp_path / "atlas")
  changed = [CELLS[0]._replace(config=CELLS[0].config._replace(learning_rate=0.02))]
  with pytest.raises(ValueError, match=r"other settings \(differing: config.learning_rate\)"):
    atlas_lib.run_atlas(changed, out_dir=tmp_path / "atlas", resume=True)
  with pytest.raises(ValueError, match="resume=True needs out_dir"):
    atlas_lib.run_atlas(CELLS, resume=True)
  with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
    atlas_lib.run_atlas(CELLS, confidence=95)


def test_cli_atlas_resumes_the_smoke_grid_and_prints_the_table(atlas_run, tmp_path, capsys):
  result, out = atlas_run
  shutil.copytree(out, tmp_path / "atlas")
  argv = ["atlas", "--grid", "smoke", "--seeds", str(SEEDS), "--cells", "mlp-1x16", "--out", str(tmp_path / "atlas")]
  (tmp_path / "atlas" / "cells" / CELLS[0].name).rename(tmp_path / "atlas" / "cells" / "mlp-1x16")  # the same run
  assert main([*argv, "--resume", "--compilation-cache", "off"]) == 0
  printed = capsys.readouterr().out
  first_row = next(line for line in result.table.splitlines() if line.startswith(f"| {CELLS[0].name} |"))
  assert first_row.replace(CELLS[0].name, "mlp-1x16").replace("| MLP |", "| MLP depth × width |") in printed
  assert "1 cell(s) reused" in printed


def test_cli_lists_cells_without_training(capsys):
  assert main(["atlas", "--list"]) == 0
  listed = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in listed] == [cell.name for cell in atlas_grid("default")]


def test_resume_reuses_cells_trained_on_another_number_of_devices(atlas_run, tmp_path):
  result, out = atlas_run
  shutil.copytree(out, tmp_path / "atlas")
  one_device = [cell._replace(config=cell.config._replace(devices=1)) for cell in CELLS]
  again = atlas_lib.run_atlas(one_device, out_dir=tmp_path / "atlas", resume=True)
  assert all(cell.reused for cell in again.cells)
  assert again.table == result.table
