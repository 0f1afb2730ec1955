"""The effect atlas (parewire_jax.experiments.atlas): verdicts, a 2-cell grid end to end, its outputs and resume."""

import json
import re
import shutil

import numpy as np
import pytest
from scipy import stats as sps

from parewire_jax.experiments import atlas as atlas_lib
from parewire_jax.experiments.atlas_grids import AtlasCell, atlas_grid
from parewire_jax.experiments.metrics import CELL_METRICS, TESTS
from parewire_jax.experiments.stats import PairedEffect, SpreadRatio, paired_effect

SEEDS = 3


# --------------------------------------------------------------------------- statistics


def _cell_result(name, effects, spread_p=0.5):
  effects = {
    m: PairedEffect(mean, mean - 0.1, mean + 0.1, p, p, 5) for m, (mean, p) in zip(CELL_METRICS, effects, strict=True)
  }
  cell = AtlasCell(name, "family", atlas_grid("smoke")[0].settings)
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
  p = np.array([[c.effects[m].p for m in CELL_METRICS] + [c.spread.p] for c in cells])
  expected_q = sps.false_discovery_control(p.ravel()).reshape(p.shape)
  np.testing.assert_allclose([[q_values[c.cell.name][t] for t in TESTS] for c in cells], expected_q)
  assert verdicts == {"helped": "helped", "hurt": "hurt", "mixed": "mixed", "flat": "no effect", "weak": "no effect"}


# --------------------------------------------------------------------------- end to end

# The smoke grid's cells differ in depth; here only in the data order, so the second cell's programs are the
# first's, and the run_compare and run_atlas doctests' (XLA's compilation cache, tests/conftest.py).
CELLS = [
  AtlasCell(f"mlp-data{seed}", "MLP", atlas_grid("smoke")[0].settings.replace(seeds=SEEDS, data_seed=seed))
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
        100 * np.array(compare["arms"][variant]["curves"]["val_acc"])[:, -1],
      )
    for metric in CELL_METRICS:
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
      for metric in CELL_METRICS:
        assert entry["per_seed"][variant][metric] == cell.per_seed[variant][metric].tolist()
    columns = rows[entry["name"]]
    assert columns[0].strip() == entry["family"] and int(columns[1]) == SEEDS
    for metric, text in zip(CELL_METRICS, columns[2:6], strict=True):
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
      for metric in CELL_METRICS:
        np.testing.assert_array_equal(first.per_seed[variant][metric], second.per_seed[variant][metric])
  assert again.table == result.table
  compare = json.loads((copy / "cells" / CELLS[1].name / "results.json").read_text())
  assert compare["resumed_chunks"] == {"base": [list(range(SEEDS))], "rewired": [list(range(SEEDS))]}


def test_resume_refuses_a_cell_run_with_other_settings(atlas_run, tmp_path):
  _, out = atlas_run
  shutil.copytree(out, tmp_path / "atlas")
  changed = [CELLS[0]._replace(settings=CELLS[0].settings.replace(learning_rate=0.02))]
  with pytest.raises(ValueError, match=r"other settings \(differing: config.training.learning_rate\)"):
    atlas_lib.run_atlas(changed, out_dir=tmp_path / "atlas", resume=True)
  with pytest.raises(ValueError, match="resume=True needs out_dir"):
    atlas_lib.run_atlas(CELLS, resume=True)
  with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
    atlas_lib.run_atlas(CELLS, confidence=95)


def test_resume_reuses_cells_trained_on_another_number_of_devices(atlas_run, tmp_path):
  result, out = atlas_run
  shutil.copytree(out, tmp_path / "atlas")
  one_device = [cell._replace(settings=cell.settings.replace(devices=1)) for cell in CELLS]
  again = atlas_lib.run_atlas(one_device, out_dir=tmp_path / "atlas", resume=True)
  assert all(cell.reused for cell in again.cells)
  assert again.table == result.table
