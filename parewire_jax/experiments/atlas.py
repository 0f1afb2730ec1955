"""The effect atlas behind ``python -m parewire_jax atlas``: where does PA rewiring help?

The paper answers for LeNet, ResNet, ViT and ConvMixer on three image datasets
(§4, Tables 1–3) and names other settings future work (§5). The atlas asks the
same question across a grid of model families (``atlas_grids``): every
cell is a :func:`~parewire_jax.experiments.run_compare` run of the base
initializer against ``rewired`` from the same seeds and data order, so each
seed gives a pair. Per cell it reports the paired effect (rewired − base) on
epoch-1 and final validation accuracy and loss with its confidence interval
and paired t-test (:func:`~parewire_jax.experiments.paired_effect`),
and the ratio of the final validation accuracy's spread over seeds with the
Pitman–Morgan test (:func:`~parewire_jax.experiments.spread_ratio`,
the paper's second finding, §4.2). Many cells make many tests, so the
verdicts use Benjamini–Hochberg q-values over the whole atlas
(``scipy.stats.false_discovery_control``).

Each cell's ``compare`` results (``results.json``, ``table.md``, the chunks
of seeds; not its plots) live in ``<out>/cells/<name>/``; a finished cell is
reused when resuming, an interrupted one resumes from its chunks.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from parewire_jax.experiments import plots, records, tables
from parewire_jax.experiments.atlas_grids import ATLAS_VARIANTS, AtlasCell, atlas_grid, check_atlas_cells
from parewire_jax.experiments.checkpoint import differing_keys
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.metrics import CELL_METRICS, HIGHER_IS_BETTER, SPREAD_METRIC, TESTS, cell_metrics
from parewire_jax.experiments.runtime import ensure_writable
from parewire_jax.experiments.settings import CompareSettings
from parewire_jax.experiments.stats import PairedEffect, SpreadRatio, paired_effect, spread_ratio

VERDICTS = ("helped", "no effect", "mixed", "hurt")


class CellResult(NamedTuple):
  """One finished cell of the atlas.

  Attributes:
    cell: the cell.
    seeds: the init seeds, in the order of every per-seed array.
    per_seed: variant -> metric of ``CELL_METRICS`` -> per-seed values.
    effects: metric -> the paired effect of rewired over base.
    spread: the ratio of rewired's to base's spread of ``SPREAD_METRIC``.
    train_seconds: the training time of both variants (when trained).
    reused: the cell's results were read back from an earlier run.

  >>> CellResult._fields[:3]
  ('cell', 'seeds', 'per_seed')
  """

  cell: AtlasCell
  seeds: list[int]
  per_seed: dict[str, dict[str, np.ndarray]]
  effects: dict[str, PairedEffect]
  spread: SpreadRatio
  train_seconds: float
  reused: bool


class AtlasResult(NamedTuple):
  """Outcome of :func:`run_atlas`.

  Attributes:
    cells: the finished cells, in grid order.
    q_values: cell name -> test of ``TESTS`` -> Benjamini–Hochberg q-value over the whole atlas.
    verdicts: cell name -> one of ``VERDICTS``.
    table: markdown: every effect with its interval, the spread ratio, the verdict.
    confidence: the level of every interval.
    alpha: the false discovery rate of the verdicts.

  >>> AtlasResult._fields[:3]
  ('cells', 'q_values', 'verdicts')
  """

  cells: list[CellResult]
  q_values: dict[str, dict[str, float]]
  verdicts: dict[str, str]
  table: str
  confidence: float
  alpha: float


def _cell_result(
  cell: AtlasCell,
  seeds: list[int],
  per_seed: dict[str, dict[str, np.ndarray]],
  seconds: float,
  reused: bool,
  confidence: float,
) -> CellResult:
  base, rewired = per_seed["base"], per_seed["rewired"]
  effects = {m: paired_effect(base[m], rewired[m], confidence=confidence) for m in CELL_METRICS}
  spread = spread_ratio(base[SPREAD_METRIC], rewired[SPREAD_METRIC], confidence=confidence)
  return CellResult(cell, seeds, per_seed, effects, spread, seconds, reused)


def _finished_cell(
  cell: AtlasCell, cell_dir: pathlib.Path
) -> tuple[list[int], dict[str, dict[str, np.ndarray]], float] | None:
  """The seeds, per-seed metrics and training time that an earlier run of ``cell`` left in ``cell_dir``."""
  path = cell_dir / "results.json"
  if not path.exists():
    return None
  saved = records.read_results(path)
  # As in the chunks' fingerprint, the devices are left out: the results do not depend on them.
  expected = {k: v for k, v in cell.settings.asdict().items() if k != "hardware"}
  found = {k: v for k, v in saved.config.items() if k != "hardware"}
  differing = differing_keys({"config": found, "jax": saved.jax}, {"config": expected, "jax": records.environment()})
  if differing:
    raise ValueError(
      f"{path} was written by a run with other settings (differing: {', '.join(differing)}); "
      "use another out_dir, or delete the cell's directory to train it again."
    )
  per_seed = {v: cell_metrics(saved.curves[v]["val_acc"], saved.curves[v]["val_loss"]) for v in ATLAS_VARIANTS}
  return saved.seeds, per_seed, float(sum(saved.train_seconds.values()))


def _judge(cells: Sequence[CellResult], alpha: float) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
  """Benjamini–Hochberg q-values of every test of every cell, and each cell's verdict at false discovery rate alpha.

  A cell is "helped" when rewiring significantly improved at least one metric
  and worsened none, "hurt" for the reverse, "mixed" for both and "no effect"
  for neither. The spread ratio is reported beside the verdict, not in it.
  """
  p = np.array([[cell.effects[m].p for m in CELL_METRICS] + [cell.spread.p] for cell in cells], np.float64)
  q = np.full_like(p, np.nan)
  defined = ~np.isnan(p)
  if defined.any():
    q[defined] = sps.false_discovery_control(p[defined])
  q_values: dict[str, dict[str, float]] = {
    cell.cell.name: dict(zip(TESTS, map(float, row), strict=True)) for cell, row in zip(cells, q, strict=True)
  }
  verdicts: dict[str, str] = {}
  for cell in cells:
    better = worse = False
    for m in CELL_METRICS:
      if q_values[cell.cell.name][m] < alpha:  # nan compares false: an undefined test decides nothing
        improved = (cell.effects[m].mean > 0) == HIGHER_IS_BETTER[m]
        better, worse = better or improved, worse or not improved
    verdicts[cell.cell.name] = {(True, False): "helped", (False, True): "hurt", (True, True): "mixed"}.get(
      (better, worse), "no effect"
    )
  return q_values, verdicts


def write_atlas_outputs(result: AtlasResult, out_dir: str | pathlib.Path) -> None:
  """``atlas.json`` (every per-seed number, effect, interval, p- and q-value), ``atlas.md`` and ``atlas.png``."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  payload = {
    "confidence": result.confidence,
    "alpha": result.alpha,
    "jax": records.environment(),
    "cells": [
      {
        "name": cell.cell.name,
        "family": cell.cell.family,
        "config": cell.cell.settings.asdict(),
        "seeds": cell.seeds,
        "per_seed": cell.per_seed,
        "effects": cell.effects,
        "spread": cell.spread,
        "p_values": {**{m: cell.effects[m].p for m in CELL_METRICS}, "spread": cell.spread.p},
        "q_values": result.q_values[cell.cell.name],
        "verdict": result.verdicts[cell.cell.name],
        "train_seconds": cell.train_seconds,
        "reused": cell.reused,
      }
      for cell in result.cells
    ],
  }
  records.write_json(out / "atlas.json", payload)
  (out / "atlas.md").write_text(result.table + "\n")
  plots.plot_atlas(result, out / "atlas.png")


def run_atlas(
  grid: str | Sequence[AtlasCell] = "default",
  *,
  out_dir: str | pathlib.Path | None = None,
  resume: bool = False,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  progress: bool = False,
  confidence: float = 0.95,
  alpha: float = 0.05,
) -> AtlasResult:
  """Runs every cell of ``grid``, base against rewired from the same seeds, and judges the effects (§4, §5).

  Every cell's seeds are sharded over ``settings.hardware.devices`` devices, and over
  every process of a ``jax.distributed`` run, as in ``run_compare``; then
  only process 0 shows progress and writes.

  Args:
    grid: a grid's name (see :func:`~parewire_jax.experiments.atlas_grid`)
      or the cells themselves (distinct names, variants ``("base", "rewired")``).
    out_dir: when given, every cell's ``compare`` results (not its plots)
      go to ``out_dir/cells/<name>/`` as it finishes, and the atlas's to
      ``atlas.json``, ``atlas.md`` and ``atlas.png``.
    resume: reuse the cells an earlier run finished in ``out_dir`` (its
      ``results.json`` must record the same settings and JAX version and
      backend, else ``ValueError``) and resume an unfinished cell from its
      saved chunks of seeds. Needs ``out_dir``.
    data_dir, download: passed to ``load_dataset``.
    progress: one progress bar over the training of every cell.
    confidence: the level of every interval.
    alpha: the false discovery rate of the verdicts.

  Returns:
    An :class:`AtlasResult`.

  >>> from parewire_jax.experiments.atlas_grids import atlas_grid
  >>> result = run_atlas(atlas_grid("smoke", cells=["mlp-1x16"]))
  >>> [cell.cell.name for cell in result.cells], result.verdicts["mlp-1x16"] in VERDICTS
  (['mlp-1x16'], True)
  """
  import jax

  from parewire_jax.experiments.progress import TrainingProgress

  cells = _checked_cells(grid, out_dir, resume, confidence, alpha)
  cells_dir = None if out_dir is None else pathlib.Path(out_dir) / "cells"
  finished = {
    cell.name: _finished_cell(cell, cells_dir / cell.name) if resume and cells_dir else None for cell in cells
  }
  data = _CellData(data_dir, download)
  writes = jax.process_index() == 0  # with several processes (jax.distributed), one shows progress and writes
  results = []
  total = sum(data.work(c.settings) for c in cells if finished[c.name] is None)
  with TrainingProgress(total, enabled=progress and writes) as bar:
    for cell in cells:
      done = finished[cell.name]
      if done is None:
        bar.prefix = f"{cell.name}: "
        done = _train_cell(cell, data, None if cells_dir is None else cells_dir / cell.name, resume, bar)
      results.append(_cell_result(cell, *done, reused=finished[cell.name] is not None, confidence=confidence))
  q_values, verdicts = _judge(results, alpha)
  table = tables.atlas_table(results, q_values, verdicts, confidence=confidence, alpha=alpha)
  result = AtlasResult(results, q_values, verdicts, table, confidence, alpha)
  if out_dir is not None and writes:
    write_atlas_outputs(result, out_dir)
  return result


def _checked_cells(
  grid: str | Sequence[AtlasCell], out_dir: str | pathlib.Path | None, resume: bool, confidence: float, alpha: float
) -> list[AtlasCell]:
  """The cells of ``grid``, after every check that needs no training (the output directory's too)."""
  import jax

  cells = atlas_grid(grid) if isinstance(grid, str) else list(grid)
  check_atlas_cells(cells)
  if resume and out_dir is None:
    raise ValueError("resume=True needs out_dir: the directory whose cells/ an earlier atlas run saved.")
  for value, name in ((confidence, "confidence"), (alpha, "alpha")):  # checked before hours of training
    if not 0 < value < 1:
      raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
  if out_dir is not None and jax.process_index() == 0:
    ensure_writable(out_dir)
  return cells


class _CellData:
  """The datasets of the cells, each loaded once however many cells share it, and the work of each cell."""

  def __init__(self, data_dir: str | os.PathLike | None, download: bool):
    self.data_dir, self.download = data_dir, download
    self._loaded: dict[Any, Dataset] = {}

  def of(self, settings: CompareSettings) -> Dataset:
    from parewire_jax.experiments.runner import dataset_of

    if settings.data not in self._loaded:
      self._loaded[settings.data] = dataset_of(settings.data, data_dir=self.data_dir, download=self.download)
    return self._loaded[settings.data]

  def work(self, settings: CompareSettings) -> int:
    """The bar's count of one cell: training steps and evaluations of both variants."""
    from parewire_jax.experiments.runner import planned_work

    return planned_work(settings, len(settings.variants), self.of(settings))


def _train_cell(
  cell: AtlasCell, data: _CellData, cell_dir: pathlib.Path | None, resume: bool, bar: Any
) -> tuple[list[int], dict[str, dict[str, np.ndarray]], float]:
  """Trains ``cell`` (``compare``'s results, not its plots, in ``cell_dir``): its seeds, metrics and time."""
  from parewire_jax.experiments.compare import run_compare

  started = time.perf_counter()
  outcome = run_compare(
    cell.settings,
    dataset=data.of(cell.settings),
    out_dir=cell_dir,
    resume=resume,
    progress=bar,
    plots=False,  # the atlas draws one picture of all cells; `compare` draws a cell's own
  )
  seconds = time.perf_counter() - started if cell_dir is None else sum(outcome.train_seconds.values())
  per_seed = {v: cell_metrics(outcome.results[v].val_acc, outcome.results[v].val_loss) for v in ATLAS_VARIANTS}
  return [int(s) for s in outcome.results["base"].seeds], per_seed, seconds
