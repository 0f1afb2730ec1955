"""The grids of the effect atlas (parewire_jax.experiments.atlas_grids): valid, covering, refusing bad cells."""

from __future__ import annotations

import re

import pytest

from parewire_jax.experiments.atlas_grids import GRIDS, AtlasCell, atlas_cells, atlas_grid, check_atlas_cells
from parewire_jax.experiments.settings import AtlasSettings


def test_grids_are_valid_and_the_default_covers_the_issue():
  for name in GRIDS:
    check_atlas_cells(atlas_grid(name))
  default = {cell.name: cell.settings.network for cell in atlas_grid("default")}
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
  assert all(cell.settings.seeding.seeds == 20 for cell in atlas_grid("default"))
  assert [c.settings.seeding.seeds for c in atlas_grid("default", seeds=5, cells=["lenet"])] == [5]
  cells = atlas_cells(AtlasSettings(grid="smoke", seeds=4).replace(devices=2))
  assert [(c.settings.seeding.seeds, c.settings.hardware.devices) for c in cells] == [(4, 2), (4, 2)]


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
      lambda: check_atlas_cells([AtlasCell("x", "f", atlas_grid("smoke")[0].settings.replace(variants=("base",)))]),
      "cell 'x': variants must be",
    ),
    (
      lambda: check_atlas_cells([AtlasCell("x", "f", atlas_grid("smoke")[0].settings.replace(batch_size=999))]),
      "cell 'x': batch_size (999) exceeds",
    ),
  ],
)
def test_bad_grids_and_cells_are_refused(call, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    call()
