"""The experiment behind ``python -m parewire_jax laperm``: LaPerm against Adam.

LaPerm (Qiu & Suda, NeurIPS 2020, §4) trains by permuting every weight vector
of the initial weights; §5.1 reports it on par with (or slightly above) plain
Adam on MNIST. :func:`run_laperm` trains one model from the same init seeds
with the same data order twice, with ``optax.adam`` and with
``laperm(optax.adam, sync_period)`` (two arms of
:func:`~parewire_jax.experiments.run_arms`), then tabulates per-epoch
validation accuracy and the test accuracy at the best validation epoch, with
paired tests by seed (:mod:`parewire_jax.experiments.stats`).

Two diagnostics come with it, computed after every epoch and saved with the
chunks of seeds (so a resumed run has them too):

* after every epoch, every evaluated kernel's weight vectors (columns, laid out
  by :func:`parewire_jax.as_matrices`) are compared bit for bit, as
  multisets, with the same weight vectors of the initial kernels recomputed
  from the init seeds: with LaPerm all of them must match, with Adam none is
  expected to;
* :func:`parewire_jax.diagnostics.weight_deviation` of
  the evaluated kernels from the initial ones, per layer, for both optimizers
  (how far trained weights move from their initialization, arXiv:2012.02550).

The defaults are CPU-sized; they follow the LaPerm paper where it applies
(see :class:`~parewire_jax.experiments.LaPermSettings`).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from parewire_jax.axes import as_matrices
from parewire_jax.diagnostics import WeightDeviation, weight_deviation
from parewire_jax.experiments import metrics as metrics_lib, models as models_lib, plots, records, stats, tables
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.runner import Arm, RunResult, run_arms
from parewire_jax.experiments.settings import LAPERM_ARMS, LaPermSettings
from parewire_jax.experiments.train import TrainResult
from parewire_jax.sorting import sort_exact

# The per-seed records of the diagnostics: weight vectors checked, those exact, "deviation/<kernel>/<field>".
_CHECKED = "weight_vectors"
_EXACT = "exact_columns"


class LaPermResult(NamedTuple):
  """Outcome of :func:`run_laperm`.

  Attributes:
    settings: the run.
    results: arm (``"adam"``, ``"laperm_adam"``) -> per-seed records.
    metrics: arm -> metric of the table -> per-seed values.
    report: summaries of every arm and tests of LaPerm against Adam.
    epoch_tests: per epoch (0-based), the paired comparison of the validation
      accuracies (LaPerm − Adam).
    exact_columns: arm -> ``(epochs,)`` number of evaluated kernel weight
      vectors, over all seeds and kernels, that are a bit-exact permutation of
      their initial values.
    columns_per_epoch: weight vectors checked per epoch (all seeds and
      kernels).
    deviation: arm -> kernel path -> ``WeightDeviation`` of per-seed arrays,
      final evaluated kernels against initial ones.
    train_seconds: arm -> training time of its chunks, resumed ones included.
    resumed: arm -> the seeds of each chunk loaded from ``out_dir`` instead of trained.
    table: the markdown report.

  >>> LaPermResult._fields[:2]
  ('settings', 'results')
  """

  settings: LaPermSettings
  results: dict[str, TrainResult]
  metrics: dict[str, dict[str, np.ndarray]]
  report: metrics_lib.MetricReport
  epoch_tests: list[stats.Comparison]
  exact_columns: dict[str, np.ndarray]
  columns_per_epoch: int
  deviation: dict[str, dict[str, Any]]
  table: str
  train_seconds: dict[str, float]
  resumed: dict[str, list[list[int]]]


def _bit_patterns(x: Array) -> Array:
  return lax.bitcast_convert_type(x, jnp.dtype(f"uint{jnp.finfo(x.dtype).bits}"))


@jax.jit
def exact_permutation_columns(initial: Array, evaluated: Array) -> Array:
  """Per seed: how many weight vectors of ``evaluated`` are bit-exact permutations of ``initial``'s.

  Both are kernels with a leading seed axis, ``(S, ..., n_out)``; a weight
  vector is a column of ``as_matrices(w, out_axis=-1)`` (all axes but the
  last are inputs). Column ``j`` counts when its values sorted by bit pattern
  (:func:`parewire_jax.sorting.sort_exact`) equal, bit for bit, those of
  column ``j`` of ``initial``. Returns ``(S,)`` int32.

  >>> w0 = jnp.array([[[1., 4.], [2., 5.], [3., 6.]]])
  >>> w = jnp.array([[[3., 4.], [1., 5.], [2., 7.]]])
  >>> exact_permutation_columns(w0, w).tolist()
  [1]
  """
  if initial.shape != evaluated.shape or initial.dtype != evaluated.dtype:
    raise ValueError(
      f"initial and evaluated must have the same shape and dtype, got {initial.shape} "
      f"{initial.dtype} and {evaluated.shape} {evaluated.dtype}."
    )

  def sorted_columns(w: Array) -> Array:
    matrices, _ = as_matrices(w, out_axis=-1, batch_axis=0)  # (S, n_in, n_out)
    return _bit_patterns(sort_exact(jnp.swapaxes(matrices, 1, 2)))  # (S, n_out, n_in)

  same = jnp.all(sorted_columns(initial) == sorted_columns(evaluated), axis=-1)
  return jnp.sum(same, axis=-1, dtype=jnp.int32)


def diagnostics(initial: Any, evaluated: Any) -> dict[str, Any]:
  """``train_seeds``' ``epoch_records`` of LaPerm: per seed, the exact weight vectors and every kernel's deviation.

  ``weight_vectors``: how many weight vectors (kernel columns) all kernels
  have; ``exact_columns``: how many of them are bit-exact permutations of
  their initial values (:func:`exact_permutation_columns`);
  ``deviation/<kernel>/<field>``: the fields of ``weight_deviation`` of each
  kernel from its initial values.
  """
  initial, evaluated = models_lib.kernels(initial, seed_axis=True), models_lib.kernels(evaluated, seed_axis=True)
  seeds = len(next(iter(evaluated.values())))
  found: dict[str, Any] = {
    _CHECKED: np.full(seeds, sum(w.shape[-1] for w in evaluated.values()), np.int64),
    _EXACT: sum(exact_permutation_columns(initial[n], evaluated[n]) for n in evaluated),
  }
  for name, w in evaluated.items():
    deviation = jax.vmap(weight_deviation)(initial[name], w)
    found.update({f"deviation/{name}/{field}": value for field, value in deviation._asdict().items()})
  return found


def final_deviation(result: TrainResult) -> dict[str, WeightDeviation]:
  """Kernel path -> the ``WeightDeviation`` (per-seed arrays) of the last evaluated kernels from the initial ones."""
  fields = WeightDeviation._fields
  names = [key[len("deviation/") : -len("/" + fields[0])] for key in result.records if key.endswith("/" + fields[0])]
  return {name: WeightDeviation._make(result.records[f"deviation/{name}/{f}"][:, -1] for f in fields) for name in names}


def run_laperm(
  settings: LaPermSettings = LaPermSettings(),  # noqa: B008 (frozen)
  *,
  dataset: Dataset | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  out_dir: str | pathlib.Path | None = None,
  resume: bool = False,
  progress: bool = False,
) -> LaPermResult:
  """Trains the same init seeds with Adam and with LaPerm(Adam) and compares them (LaPerm §5.1).

  Args:
    settings: the run; see :class:`~parewire_jax.experiments.LaPermSettings`.
    dataset: a ready :class:`~parewire_jax.experiments.Dataset`, used as
      it is; when ``None`` it is loaded as ``settings.data`` says.
    data_dir, download: passed to ``load_dataset``.
    out_dir: when given, receives ``results.json`` (settings, per-seed curves
      and metrics, summaries, tests, diagnostics), ``table.md``,
      ``curves.png`` and ``per_seed.png``, and every finished chunk of seeds
      under ``out_dir/chunks``; in a multi-process run only process 0 writes.
    resume: reuse the chunks a previous run with the same settings saved
      under ``out_dir/chunks`` (their diagnostics included).
    progress: show a progress bar over the training steps of both arms.

  Returns:
    A :class:`LaPermResult`.

  >>> settings = LaPermSettings().replace(
  ...   dataset="digits", model="mlp", seeds=2, epochs=1, limit_train=300, batch_size=30, sync_period=5)
  >>> outcome = run_laperm(settings)
  >>> int(outcome.exact_columns["laperm_adam"][0]) == outcome.columns_per_epoch
  True

  Raises:
    RuntimeError: if a LaPerm-evaluated weight vector is not a bit-exact
      permutation of its initial values (a bug, never expected).
  """
  settings = settings.replace(mlp_hidden=tuple(settings.network.mlp_hidden))
  optimizers = {"adam": Optimizer("adam"), "laperm_adam": Optimizer("laperm_adam", sync_period=settings.sync_period)}

  def arms(data: Dataset) -> list[Arm]:
    model = models_lib.build_network(settings.network, data.num_classes)
    return [Arm(name, model, optimizers[name]) for name in LAPERM_ARMS]

  run = run_arms(
    settings,
    arms,
    dataset=dataset,
    data_dir=data_dir,
    download=download,
    out_dir=out_dir,
    resume=resume,
    progress=progress,
    epoch_records=diagnostics,
  )
  outcome = _outcome(run)
  if out_dir is not None and jax.process_index() == 0:
    write_laperm_outputs(run, outcome, out_dir)
  return outcome


def _outcome(run: RunResult) -> LaPermResult:
  """The :class:`LaPermResult` of a finished run; checks that every LaPerm-evaluated weight vector was exact."""
  settings = run.settings
  assert isinstance(settings, LaPermSettings)
  results = run.results
  exact = {arm: results[arm].records[_EXACT].sum(axis=0) for arm in LAPERM_ARMS}
  columns_per_epoch = int(results[LAPERM_ARMS[0]].records[_CHECKED][:, 0].sum())
  if (exact["laperm_adam"] != columns_per_epoch).any():
    raise RuntimeError(
      f"LaPerm evaluated {columns_per_epoch} weight vectors per epoch but only "
      f"{exact['laperm_adam'].tolist()} were exact permutations of the initial ones."
    )
  deviation = {arm: final_deviation(results[arm]) for arm in LAPERM_ARMS}
  reference, other = (results[arm].val_acc for arm in LAPERM_ARMS)
  epoch_tests = [stats.compare(reference[:, e], other[:, e]) for e in range(settings.training.epochs)]
  outcome = LaPermResult(
    settings,
    results,
    run.metrics,
    run.report,
    epoch_tests,
    exact,
    columns_per_epoch,
    deviation,
    "",
    run.train_seconds,
    run.resumed,
  )
  return outcome._replace(table=tables.laperm_table(outcome, run.dataset.name))


def write_laperm_outputs(run: RunResult, outcome: LaPermResult, out_dir: str | pathlib.Path) -> None:
  """``results.json``, ``table.md``, ``curves.png`` and ``per_seed.png`` of a ``laperm`` run."""
  out = pathlib.Path(out_dir)
  diagnostics_of = {
    arm: {"exact_permutation_columns": outcome.exact_columns[arm], "weight_deviation": outcome.deviation[arm]}
    for arm in LAPERM_ARMS
  }
  records.write_results(
    out,
    run,
    arms=diagnostics_of,
    columns_per_epoch=outcome.columns_per_epoch,
    epoch_val_acc_tests=outcome.epoch_tests,
  )
  (out / "table.md").write_text(outcome.table + "\n")
  plots.plot_curves(run.results, out / "curves.png")
  plots.plot_per_seed(run.metrics, out / "per_seed.png")
