"""The experiment behind ``python -m parewire_jax compare``: initializer variants from the same seeds (§4.1–4.3).

:func:`run_compare` trains one model from the same init seeds with the base
initializer and its variants, one arm each (:func:`~parewire_jax.experiments.run_arms`),
then tabulates and tests the per-seed metrics against the base (Tables 1–2)
and writes ``results.json``, ``table.md`` and the plots.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from parewire_jax.experiments import metrics as metrics_lib, models as models_lib, plots as plots_lib, records, tables
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.progress import TrainingProgress
from parewire_jax.experiments.runner import Arm, RunResult, run_arms
from parewire_jax.experiments.settings import CompareSettings
from parewire_jax.experiments.train import TrainResult


class CompareResult(NamedTuple):
  """Outcome of :func:`run_compare`.

  Attributes:
    settings: the run.
    results: variant -> per-seed training records.
    metrics: variant -> metric of the table -> per-seed values.
    report: summaries of every variant and tests of every variant against ``base``.
    table: markdown: Tables 1–2 and the paired comparison.
    train_seconds: variant -> training time of its chunks, resumed ones included.
    resumed: variant -> the seeds of each chunk loaded from ``out_dir`` instead of trained.

  >>> CompareResult._fields[:3]
  ('settings', 'results', 'metrics')
  """

  settings: CompareSettings
  results: dict[str, TrainResult]
  metrics: dict[str, dict[str, np.ndarray]]
  report: metrics_lib.MetricReport
  table: str
  train_seconds: dict[str, float]
  resumed: dict[str, list[list[int]]]


def _first_seed_kernels(settings: CompareSettings, dataset: Dataset) -> tuple[str, dict[str, np.ndarray]]:
  """The largest kernel of the model initialized with ``first_seed``, per variant (for Fig. 1b)."""
  largest = {}
  for variant in settings.variants:
    model = models_lib.build_network(settings.network, dataset.num_classes, variant, num_draws=settings.num_draws)
    key = jax.random.key(settings.seeding.first_seed)
    params = jax.jit(model.init)(key, jnp.asarray(dataset.x_train[:1]))["params"]
    leaves = models_lib.kernels(params)
    name = max(leaves, key=lambda n: leaves[n].size)
    largest[variant] = np.asarray(leaves[name])
  return name, largest


def run_compare(
  settings: CompareSettings = CompareSettings(),  # noqa: B008 (frozen)
  *,
  dataset: Dataset | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  out_dir: str | pathlib.Path | None = None,
  resume: bool = False,
  progress: bool | TrainingProgress = False,
  plots: bool = True,
) -> CompareResult:
  """Trains every variant from the same seeds and compares each with ``base`` (§4.1–4.3).

  Args:
    settings: the run; see :class:`~parewire_jax.experiments.CompareSettings`.
    dataset: a ready :class:`~parewire_jax.experiments.Dataset`, used as
      it is; when ``None`` it is loaded as ``settings.data`` says.
    data_dir, download: passed to ``load_dataset``.
    out_dir: when given, receives ``results.json`` (settings, per-seed curves
      and metrics, summaries, tests), ``table.md`` and the plots
      ``curves.png`` (Fig. 4), ``per_seed.png`` (every seed's table
      metrics), ``strength.png`` (Fig. 1b),
      ``strength_vs_accuracy.png`` (Fig. 3) and, with ``track_gradients``,
      ``gradients.png`` (Fig. 5); every finished chunk of seeds is saved
      under ``out_dir/chunks`` as soon as it is trained. It is checked to be
      writable before anything is trained. In a multi-process run only
      process 0 writes.
    resume: reuse the chunks a previous run with the same settings and data
      saved under ``out_dir/chunks`` (see
      :func:`~parewire_jax.experiments.run_arms`).
    progress: a progress bar over every variant's training, or a
      :class:`~parewire_jax.experiments.TrainingProgress` bar that counts
      this run's work among others', left open.
    plots: with ``out_dir``, draw the plots too (``results.json`` and
      ``table.md`` are always written).

  Returns:
    A :class:`CompareResult`.

  >>> settings = CompareSettings().replace(
  ...   dataset="digits", model="mlp", seeds=3, limit_train=256, batch_size=64, mlp_hidden=(16,))
  >>> outcome = run_compare(settings)
  >>> sorted(outcome.metrics), outcome.metrics["rewired"]["epoch1_val_acc"].shape
  (['base', 'rewired'], (3,))
  """
  settings = settings.replace(variants=tuple(settings.variants), mlp_hidden=tuple(settings.network.mlp_hidden))
  optimizer = Optimizer(settings.optimizer, momentum=settings.momentum)
  run = run_arms(
    settings,
    lambda data: [
      Arm(v, models_lib.build_network(settings.network, data.num_classes, v, num_draws=settings.num_draws), optimizer)
      for v in settings.variants
    ],
    dataset=dataset,
    data_dir=data_dir,
    download=download,
    out_dir=out_dir,
    resume=resume,
    progress=progress,
    reference="base",
    equal_var=settings.equal_var,
  )
  table = tables.compare_table(settings, run.report)
  outcome = CompareResult(settings, run.results, run.metrics, run.report, table, run.train_seconds, run.resumed)
  if out_dir is not None and jax.process_index() == 0:
    write_compare_outputs(run, table, out_dir, plots=plots)
  return outcome


def write_compare_outputs(run: RunResult, table: str, out_dir: str | pathlib.Path, *, plots: bool = True) -> None:
  """``results.json``, ``table.md`` and (with ``plots``) the plots of a ``compare`` run."""
  out = pathlib.Path(out_dir)
  records.write_results(out, run)
  (out / "table.md").write_text(table + "\n")
  if not plots:
    return
  settings = run.settings
  assert isinstance(settings, CompareSettings)
  plots_lib.plot_curves(run.results, out / "curves.png")
  plots_lib.plot_per_seed(run.metrics, out / "per_seed.png")
  plots_lib.plot_strength_vs_accuracy(run.results, out / "strength_vs_accuracy.png")
  name, kernels = _first_seed_kernels(settings, run.dataset)
  title = f"{settings.network.init}, kernel {name}, seed {settings.seeding.first_seed}"
  plots_lib.plot_strength_distributions(kernels, out / "strength.png", title=title)
  if settings.training.track_gradients:
    plots_lib.plot_gradients(run.results, out / "gradients.png")
