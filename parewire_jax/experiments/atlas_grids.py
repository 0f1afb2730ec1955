"""The grids of the effect atlas: which models ``python -m parewire_jax atlas`` compares, base vs rewired.

The paper measures PA rewiring on LeNet, ResNet, ViT and ConvMixer (§4,
Tables 1–3) and leaves other settings to future work (§5). An atlas cell is
one :class:`~parewire_jax.experiments.CompareSettings`: a model family member
trained from the same seeds with the base initializer and rewired. Like
``parewire_jax.experiments.settings``, this module imports no JAX.

* ``"default"``: 17 cells sized for a CPU (the whole grid in about half an
  hour on 2 cores): MLP depth {2, 4, 8} × width {64, 256, 1024}; LeNet (§4.2)
  without normalisation, with BatchNorm and with LayerNorm; LeNet with each
  of the paper's other three initializers; a residual MLP with pre-LayerNorm;
  a small pre-LayerNorm transformer on the synthetic ``pointer`` task. 20
  seeds, 2 epochs of SGD on 2000 training examples (standardized MNIST
  images, or pointer sequences), 1000 validation examples.
* ``"paper"``: the same families at the paper's scale (100 seeds, the whole
  of MNIST, 10 epochs) plus ResNet-18 on CIFAR-10 (Table 3): a GPU job.
* ``"smoke"``: two tiny cells on the bundled digits, to try the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from parewire_jax._checks import check_choice, check_int
from parewire_jax.experiments.settings import ATLAS_GRIDS, PAPER_INITIALIZERS, AtlasSettings, CompareSettings


class AtlasCell(NamedTuple):
  """One cell of an atlas: a named ``compare`` run of base against rewired.

  Attributes:
    name: unique within its grid; the cell's directory under the atlas output.
    family: the row group of the table and heatmap (e.g. ``"MLP depth × width"``).
    settings: the run; its ``variants`` are ``("base", "rewired")``.

  >>> cell = AtlasCell("mlp-2x64", "MLP depth × width", CompareSettings().replace(model="mlp", mlp_hidden=(64, 64)))
  >>> cell.settings.network.model
  'mlp'
  """

  name: str
  family: str
  settings: CompareSettings


# What every cell of the default grid shares: MNIST as in §4.2, CPU-sized.
DEFAULT_BASE = CompareSettings().replace(seeds=20, epochs=2, limit_train=2000, limit_eval=1000)
PAPER_BASE = CompareSettings().replace(seeds=100, epochs=10, limit_train=None, limit_eval=None)
SMOKE_BASE = CompareSettings().replace(dataset="digits", model="mlp", seeds=3, limit_train=256, batch_size=64)

DEPTHS = (2, 4, 8)
WIDTHS = (64, 256, 1024)


def _families(base: CompareSettings) -> list[AtlasCell]:
  """The default families on ``base``'s data, seeds and schedule."""
  cells = [
    AtlasCell(f"mlp-{depth}x{width}", "MLP depth × width", base.replace(model="mlp", mlp_hidden=(width,) * depth))
    for depth in DEPTHS
    for width in WIDTHS
  ]
  cells += [
    AtlasCell(name, "LeNet normalisation", base.replace(model="lenet", norm=norm))
    for name, norm in (("lenet", "none"), ("lenet-batchnorm", "batch"), ("lenet-layernorm", "layer"))
  ]
  cells += [
    AtlasCell(f"lenet-{init}", "LeNet initializer", base.replace(model="lenet", init=init))
    for init in PAPER_INITIALIZERS
    if init != base.network.init
  ]
  cells.append(
    AtlasCell("resmlp-4x256", "residual MLP", base.replace(model="resmlp", mlp_hidden=(256,) * 4, norm="layer"))
  )
  # The transformer's own data, trained like every other cell (with Adam at 1e-3 the pointer task is solved in
  # one epoch by base and rewired alike, which says nothing about either).
  cells.append(
    AtlasCell(
      "transformer-pointer",
      "transformer",
      base.replace(dataset="pointer", model="transformer", standardize=False),
    )
  )
  return cells


def _paper_grid() -> list[AtlasCell]:
  cells = _families(PAPER_BASE)
  cells.append(
    AtlasCell("resnet18-cifar10", "ResNet (Table 3)", PAPER_BASE.replace(dataset="cifar10", model="resnet18"))
  )
  return cells


def _smoke_grid() -> list[AtlasCell]:
  return [
    AtlasCell("mlp-1x16", "MLP depth × width", SMOKE_BASE.replace(mlp_hidden=(16,))),
    AtlasCell("mlp-2x16", "MLP depth × width", SMOKE_BASE.replace(mlp_hidden=(16, 16))),
  ]


GRIDS = ATLAS_GRIDS
# What every cell compares.
ATLAS_VARIANTS = ("base", "rewired")


def atlas_grid(name: str, *, seeds: int | None = None, cells: Sequence[str] | None = None) -> list[AtlasCell]:
  """The cells of grid ``name`` (one of ``GRIDS``), optionally with other seeds or only some cells.

  Args:
    name: the grid.
    seeds: init seeds per cell instead of the grid's (at least 3: the spread
      ratio's test needs them).
    cells: keep only these cells, by name, in the grid's order.

  >>> [cell.name for cell in atlas_grid("default")][:4]
  ['mlp-2x64', 'mlp-2x256', 'mlp-2x1024', 'mlp-4x64']
  >>> atlas_grid("smoke", seeds=5)[0].settings.seeding.seeds
  5
  """
  builders = {"default": lambda: _families(DEFAULT_BASE), "paper": _paper_grid, "smoke": _smoke_grid}
  grid = builders[check_choice(name, GRIDS, "grid")]()
  if cells is not None:
    known = [cell.name for cell in grid]
    unknown = [c for c in cells if c not in known]
    if unknown or not cells:
      raise ValueError(
        f"cells must name cells of the {name!r} grid ({', '.join(known)}); got {', '.join(map(repr, cells)) or 'none'}."
      )
    grid = [cell for cell in grid if cell.name in cells]
  if seeds is not None:
    check_int(seeds, "seeds", minimum=3)
    grid = [cell._replace(settings=cell.settings.replace(seeds=seeds)) for cell in grid]
  return grid


def atlas_cells(settings: AtlasSettings) -> list[AtlasCell]:
  """The cells an ``atlas`` run trains: ``settings.grid``'s, only ``settings.cells``, on ``settings.hardware``.

  >>> [cell.settings.hardware.devices for cell in atlas_cells(AtlasSettings(grid="smoke").replace(devices=1))]
  [1, 1]
  """
  grid = atlas_grid(settings.grid, seeds=settings.seeds, cells=settings.cells)
  cells = [cell._replace(settings=cell.settings.replace(hardware=settings.hardware)) for cell in grid]
  check_atlas_cells(cells)
  return cells


def check_atlas_cells(cells: Sequence[AtlasCell]) -> None:
  """Raises ValueError unless ``cells`` are distinct, well-named, valid ``compare`` runs of base against rewired.

  Each cell needs at least 3 seeds (the spread ratio's test) and a batch
  that fits its training data; the error names the cell.

  >>> check_atlas_cells(atlas_grid("smoke") * 2)
  Traceback (most recent call last):
  ValueError: cells must have distinct names; repeated: 'mlp-1x16', 'mlp-2x16'.
  """
  if not cells:
    raise ValueError("cells must hold at least one AtlasCell, got none.")
  names = [cell.name for cell in cells]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"cells must have distinct names; repeated: {', '.join(map(repr, repeated))}.")
  for cell in cells:
    if not cell.name or not all(ch.isalnum() or ch in "-_." for ch in cell.name) or cell.name.startswith("."):
      raise ValueError(
        f"a cell's name must be a non-empty directory name of letters, digits, '-', '_', '.'; got {cell.name!r}."
      )
    if tuple(cell.settings.variants) != ATLAS_VARIANTS:
      raise ValueError(f"cell {cell.name!r}: variants must be {ATLAS_VARIANTS}, got {tuple(cell.settings.variants)}.")
    try:
      cell.settings.check()
      check_int(cell.settings.seeding.seeds, "seeds", minimum=3)
    except ValueError as error:
      raise ValueError(f"cell {cell.name!r}: {error}") from None
