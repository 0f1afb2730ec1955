"""The effect atlas behind ``python -m parewire_jax atlas``: where does PA rewiring help?

The paper answers for LeNet, ResNet, ViT and ConvMixer on three image datasets
(§4, Tables 1–3) and names other settings future work (§5). The atlas asks the
same question across a grid of model families (:mod:`atlas_grids`): every
cell is a :func:`~parewire_jax.experiments.run_compare` run of the base
initializer against ``rewired`` from the same seeds and data order, so each
seed gives a pair. Per cell it reports the paired effect (rewired − base) on
epoch-1 and final validation accuracy and loss with its confidence interval
and paired t-test (:func:`~parewire_jax.experiments.stats.paired_effect`),
and the ratio of the final validation accuracy's spread over seeds with the
Pitman–Morgan test (:func:`~parewire_jax.experiments.stats.spread_ratio`,
the paper's second finding, §4.2). Many cells make many tests, so the
verdicts use Benjamini–Hochberg q-values over the whole atlas
(``scipy.stats.false_discovery_control``).

Each cell's ``compare`` results (``results.json``, ``table.md``, the chunks
of seeds; not its plots) live in ``<out>/cells/<name>/``; a finished cell is
reused when resuming, an interrupted one resumes from its chunks.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from parewire_jax.experiments import report as report_lib
from parewire_jax.experiments.atlas_grids import VARIANTS, AtlasCell, atlas_grid, check_atlas_cells
from parewire_jax.experiments.checkpoint import differing_keys
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.settings import CompareConfig
from parewire_jax.experiments.stats import PairedEffect, SpreadRatio, paired_effect, spread_ratio

# The per-seed metrics of a cell; accuracies in percent, losses as trained (cross-entropy).
METRICS = ("epoch1_val_acc", "final_val_acc", "epoch1_val_loss", "final_val_loss")
HIGHER_IS_BETTER = {"epoch1_val_acc": True, "final_val_acc": True, "epoch1_val_loss": False, "final_val_loss": False}
# The metric whose spread over seeds is compared (Table 1's standard deviations).
SPREAD_METRIC = "final_val_acc"
# Every test of a cell, named as in q-values: the paired effects, then the spread.
TESTS = (*METRICS, "spread")
VERDICTS = ("helped", "no effect", "mixed", "hurt")


class CellResult(NamedTuple):
  """One finished cell of the atlas.

  Attributes:
    cell: the cell.
    seeds: the init seeds, in the order of every per-seed array.
    per_seed: variant -> metric of ``METRICS`` -> per-seed values.
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


def cell_metrics(val_acc: Any, val_loss: Any) -> dict[str, np.ndarray]:
  """The ``METRICS`` of one variant from its ``(seeds, epochs)`` validation curves (accuracy as a fraction).

  >>> m = cell_metrics([[0.5, 0.75]], [[1.0, 0.5]])
  >>> m["epoch1_val_acc"].tolist(), m["final_val_loss"].tolist()
  ([50.0], [0.5])
  """
  acc = 100 * np.asarray(val_acc, np.float64)
  loss = np.asarray(val_loss, np.float64)
  return {
    "epoch1_val_acc": acc[:, 0],
    "final_val_acc": acc[:, -1],
    "epoch1_val_loss": loss[:, 0],
    "final_val_loss": loss[:, -1],
  }


def _analyse(
  cell: AtlasCell,
  seeds: list[int],
  per_seed: dict[str, dict[str, np.ndarray]],
  seconds: float,
  reused: bool,
  confidence: float,
) -> CellResult:
  base, rewired = per_seed["base"], per_seed["rewired"]
  effects = {m: paired_effect(base[m], rewired[m], confidence=confidence) for m in METRICS}
  spread = spread_ratio(base[SPREAD_METRIC], rewired[SPREAD_METRIC], confidence=confidence)
  return CellResult(cell, seeds, per_seed, effects, spread, seconds, reused)


def _environment() -> dict[str, str]:
  import jax

  return {"version": jax.__version__, "backend": jax.default_backend()}


def _finished_cell(
  cell: AtlasCell, cell_dir: pathlib.Path
) -> tuple[list[int], dict[str, dict[str, np.ndarray]], float] | None:
  """The seeds, per-seed metrics and training time that an earlier run of ``cell`` left in ``cell_dir``."""
  path = cell_dir / "results.json"
  if not path.exists():
    return None
  saved = json.loads(path.read_text())
  # As in the chunks' fingerprint, the device count is left out: the results do not depend on it.
  config = {k: v for k, v in cell.config._asdict().items() if k != "devices"}
  expected = json.loads(json.dumps(report_lib.to_jsonable({"config": config, "jax": _environment()})))
  saved_config = {k: v for k, v in saved.get("config", {}).items() if k != "devices"}
  differing = differing_keys({"config": saved_config, "jax": saved.get("jax")}, expected)
  if differing:
    raise ValueError(
      f"{path} was written by a run with other settings (differing: {', '.join(differing)}); "
      "use another out_dir, or delete the cell's directory to train it again."
    )
  variants = saved["variants"]
  per_seed = {v: cell_metrics(variants[v]["curves"]["val_acc"], variants[v]["curves"]["val_loss"]) for v in VARIANTS}
  seeds = [int(s) for s in variants["base"]["per_seed"]["seeds"]]
  return seeds, per_seed, float(sum(saved["train_seconds"].values()))


def _judge(cells: Sequence[CellResult], alpha: float) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
  """Benjamini–Hochberg q-values of every test of every cell, and each cell's verdict at false discovery rate alpha.

  A cell is "helped" when rewiring significantly improved at least one metric
  and worsened none, "hurt" for the reverse, "mixed" for both and "no effect"
  for neither. The spread ratio is reported beside the verdict, not in it.
  """
  p = np.array([[cell.effects[m].p for m in METRICS] + [cell.spread.p] for cell in cells], np.float64)
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
    for m in METRICS:
      if q_values[cell.cell.name][m] < alpha:  # nan compares false: an undefined test decides nothing
        improved = (cell.effects[m].mean > 0) == HIGHER_IS_BETTER[m]
        better, worse = better or improved, worse or not improved
    verdicts[cell.cell.name] = {(True, False): "helped", (False, True): "hurt", (True, True): "mixed"}.get(
      (better, worse), "no effect"
    )
  return q_values, verdicts


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
    effects = [_format_effect(m, cell.effects[m], q_values[name][m], alpha) for m in METRICS]
    spread = _format_spread(cell.spread, q_values[name]["spread"], alpha)
    rows.append(
      f"| {name} | {cell.cell.family} | {len(cell.seeds)} | {' | '.join(effects)} | {spread} | {verdicts[name]} |"
    )
  return (
    f"Rewired − base, paired by seed: mean [{confidence:.0%} confidence interval]; spread ratio = std(rewired) / "
    f"std(base) over seeds [{confidence:.0%} interval, Pitman–Morgan]. `*`: Benjamini–Hochberg q < {alpha} over "
    f"all {len(cells) * len(TESTS)} tests of the atlas.\n\n" + "\n".join(rows)
  )


def heat_values(cell: CellResult) -> np.ndarray:
  """The heatmap's colour of each of ``TESTS``: the effect over its interval's half-width, positive = better.

  Beyond ±1 the interval excludes "no effect"; the spread ratio counts on a
  log scale, a smaller spread being better.

  >>> effect = PairedEffect(mean=1.0, low=0.5, high=1.5, p=0.01, wilcoxon=0.02, n=5)
  >>> spread = SpreadRatio(ratio=0.5, low=0.25, high=1.0, p=0.04, n=5)
  >>> cell = CellResult(atlas_grid("smoke")[0], [0], {}, dict.fromkeys(METRICS, effect), spread, 0.0, False)
  >>> heat_values(cell).round(2).tolist()
  [2.0, 2.0, -2.0, -2.0, 1.0]
  """
  values = []
  for m in METRICS:
    e = cell.effects[m]
    half = (e.high - e.low) / 2
    values.append((e.mean / half if half > 0 else 0.0) * (1 if HIGHER_IS_BETTER[m] else -1))
  s = cell.spread
  half = (math.log(s.high) - math.log(s.low)) / 2 if s.low > 0 else math.nan
  values.append(-math.log(s.ratio) / half if half > 0 else 0.0)
  return np.nan_to_num(np.array(values, np.float64))


def plot_atlas(result: AtlasResult, path: str | pathlib.Path) -> None:
  """The heatmap: a row per cell, a column per test, coloured by :func:`heat_values`, annotated with the effect."""
  plt = report_lib.pyplot()
  cells = result.cells
  values = np.array([heat_values(cell) for cell in cells]).reshape(len(cells), len(TESTS))
  fig, ax = plt.subplots(figsize=(12, 1.2 + 0.42 * len(cells)))
  image = ax.imshow(np.clip(values, -4, 4), cmap="RdBu", vmin=-4, vmax=4, aspect="auto")
  for i, cell in enumerate(cells):
    q = result.q_values[cell.cell.name]
    texts = [f"{cell.effects[m].mean:+.2f}" if m.endswith("acc") else f"{cell.effects[m].mean:+.3f}" for m in METRICS]
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


def write_atlas_outputs(result: AtlasResult, out_dir: str | pathlib.Path) -> None:
  """``atlas.json`` (every per-seed number, effect, interval, p- and q-value), ``atlas.md`` and ``atlas.png``."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  payload = {
    "confidence": result.confidence,
    "alpha": result.alpha,
    "jax": _environment(),
    "cells": [
      {
        "name": cell.cell.name,
        "family": cell.cell.family,
        "config": cell.cell.config,
        "seeds": cell.seeds,
        "per_seed": cell.per_seed,
        "effects": cell.effects,
        "spread": cell.spread,
        "p_values": {**{m: cell.effects[m].p for m in METRICS}, "spread": cell.spread.p},
        "q_values": result.q_values[cell.cell.name],
        "verdict": result.verdicts[cell.cell.name],
        "train_seconds": cell.train_seconds,
        "reused": cell.reused,
      }
      for cell in result.cells
    ],
  }
  report_lib.write_json(out / "atlas.json", payload)
  (out / "atlas.md").write_text(result.table + "\n")
  plot_atlas(result, out / "atlas.png")


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

  Every cell's seeds are sharded over ``config.devices`` devices, and over
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

  from parewire_jax.experiments.compare import dataset_of, run_compare
  from parewire_jax.experiments.progress import TrainingProgress
  from parewire_jax.experiments.train import evaluation_work, evaluations_of, steps_of

  cells = atlas_grid(grid) if isinstance(grid, str) else list(grid)
  check_atlas_cells(cells)
  if resume and out_dir is None:
    raise ValueError("resume=True needs out_dir: the directory whose cells/ an earlier atlas run saved.")
  for value, name in ((confidence, "confidence"), (alpha, "alpha")):  # checked before hours of training
    if not 0 < value < 1:
      raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
  cells_dir = None if out_dir is None else pathlib.Path(out_dir) / "cells"
  finished = {
    cell.name: _finished_cell(cell, cells_dir / cell.name) if resume and cells_dir else None for cell in cells
  }
  datasets: dict[tuple, Any] = {}  # cells that share their data load it once

  def cell_dataset(config: CompareConfig) -> Dataset:
    key = (config.dataset, config.limit_train, config.limit_eval, config.standardize)
    if key not in datasets:
      datasets[key] = dataset_of(config, data_dir=data_dir, download=download)
    return datasets[key]

  def work(config: CompareConfig) -> int:
    """The bar's count of one cell: training steps and evaluations of both variants."""
    train, dataset = config.train_config(), cell_dataset(config)
    per_variant = steps_of(train, dataset, config.seeds) + evaluations_of(train, config.seeds) * evaluation_work(
      train, dataset
    )
    return len(config.variants) * per_variant

  writes = jax.process_index() == 0  # with several processes (jax.distributed), one shows progress and writes
  results = []
  total = sum(work(c.config) for c in cells if finished[c.name] is None)
  with TrainingProgress(total, enabled=progress and writes) as bar:
    for cell in cells:
      done = finished[cell.name]
      if done is not None:
        results.append(_analyse(cell, *done, reused=True, confidence=confidence))
        continue
      bar.prefix = f"{cell.name}: "
      started = time.perf_counter()
      outcome = run_compare(
        cell.config,
        dataset=cell_dataset(cell.config),
        out_dir=None if cells_dir is None else cells_dir / cell.name,
        resume=resume,
        progress=bar,
        plots=False,  # the atlas draws one picture of all cells; `compare` draws a cell's own
      )
      seconds = time.perf_counter() - started if cells_dir is None else sum(outcome.train_seconds.values())
      per_seed = {v: cell_metrics(outcome.results[v].val_acc, outcome.results[v].val_loss) for v in VARIANTS}
      seeds = [int(s) for s in outcome.results["base"].seeds]
      results.append(_analyse(cell, seeds, per_seed, seconds, reused=False, confidence=confidence))
  q_values, verdicts = _judge(results, alpha)
  table = atlas_table(results, q_values, verdicts, confidence=confidence, alpha=alpha)
  result = AtlasResult(results, q_values, verdicts, table, confidence, alpha)
  if out_dir is not None and writes:
    write_atlas_outputs(result, out_dir)
  return result
