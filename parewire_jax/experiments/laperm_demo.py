"""The experiment behind ``python -m parewire_jax laperm``: LaPerm against Adam.

LaPerm (Qiu & Suda, NeurIPS 2020, §4) trains by permuting every weight vector
of the initial weights; §5.1 reports it on par with (or slightly above) plain
Adam on MNIST. :func:`run_laperm` trains one model from the same init seeds
with the same data order twice, with ``optax.adam`` and with
``laperm(optax.adam, sync_period)`` (:func:`parewire_jax.experiments.train.train_seeds`,
``optimizer="adam"`` and ``"laperm_adam"``), then tabulates per-epoch
validation accuracy and the test accuracy at the best validation epoch, with
paired tests by seed (:mod:`parewire_jax.experiments.stats`).

Two diagnostics come with it, computed during the run:

* after every epoch, every evaluated kernel's weight vectors (columns, laid out
  by :func:`parewire_jax.as_matrices`) are compared bit for bit, as
  multisets, with the same weight vectors of the initial kernels recomputed
  from the init seeds: with LaPerm all of them must match, with Adam none is
  expected to;
* at the end, :func:`parewire_jax.lookahead_permutation.weight_deviation` of
  the evaluated kernels from the initial ones, per layer, for both optimizers
  (how far trained weights move from their initialization, arXiv:2012.02550).

The defaults are CPU-sized; they follow the LaPerm paper where it applies
(see :class:`LaPermConfig`).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from parewire_jax.axes import as_matrices
from parewire_jax.diagnostics import weight_deviation
from parewire_jax.experiments import models as models_lib, report as report_lib, stats as stats_lib
from parewire_jax.experiments.data import Dataset, load_dataset
from parewire_jax.experiments.seeds import available_devices, seed_keys
from parewire_jax.experiments.settings import ARMS, LaPermConfig, check_batch_size, check_laperm_config, train_size
from parewire_jax.experiments.train import TrainResult, progress_bar, train_seeds
from parewire_jax.sorting import sort_exact

# WeightDeviation fields shown in the table: field -> header.
DEVIATION_COLUMNS = {"relative": "‖Δ‖/‖W₀‖", "mean_abs": "mean abs(Δ)", "max_abs": "max abs(Δ)"}


class LaPermResult(NamedTuple):
  """Outcome of :func:`run_laperm`.

  Attributes:
    config: the run.
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
    table: the markdown report.

  >>> LaPermResult._fields[:2]
  ('config', 'results')
  """

  config: LaPermConfig
  results: dict[str, TrainResult]
  metrics: dict[str, dict[str, np.ndarray]]
  report: report_lib.MetricReport
  epoch_tests: list[stats_lib.Comparison]
  exact_columns: dict[str, np.ndarray]
  columns_per_epoch: int
  deviation: dict[str, dict[str, Any]]
  table: str


def _bit_patterns(x: Array) -> Array:
  return lax.bitcast_convert_type(x, jnp.dtype(f"uint{jnp.finfo(x.dtype).bits}"))


@jax.jit
def exact_permutation_columns(initial: Array, evaluated: Array) -> Array:
  """Per seed: how many weight vectors of ``evaluated`` are bit-exact permutations of ``initial``'s.

  Both are kernels with a leading seed axis, ``(S, ..., n_out)``; a weight
  vector is a column of ``as_matrices(w, out_axis=-1)`` (all axes but the
  last are inputs). Column ``j`` counts when its values sorted by bit pattern
  (:func:`parewire_jax.rewiring.sort_exact`) equal, bit for bit, those of
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


def _initial_kernels(model: nn.Module, dataset: Dataset, seeds: list[int]) -> dict[str, Array]:
  """The kernels ``train_seeds`` starts from: ``model.init(jax.random.key(s), x, train=False)``."""
  init = jax.jit(jax.vmap(lambda key, x: model.init(key, x, train=False)["params"], in_axes=(0, None)))
  return models_lib.kernels(init(seed_keys(seeds), jnp.asarray(dataset.x_train[:1])), seed_axis=True)


class _Diagnostics:
  """The ``inspect`` callback of ``train_seeds``: permutation checks and final weight deviation."""

  def __init__(self, initial: dict[str, Array], seeds: list[int], epochs: int):
    self.initial = initial
    self.row = {seed: i for i, seed in enumerate(seeds)}
    self.epochs = epochs
    self.exact = np.zeros(epochs, np.int64)
    self.deviation: dict[str, list[Any]] = {name: [] for name in initial}

  def __call__(self, chunk_seeds: list[int], epoch: int, params) -> None:
    rows = jnp.asarray([self.row[s] for s in chunk_seeds])
    evaluated = models_lib.kernels(params, seed_axis=True)
    initial = {name: w[rows] for name, w in self.initial.items()}
    self.exact[epoch] += sum(int(exact_permutation_columns(initial[n], evaluated[n]).sum()) for n in evaluated)
    if epoch == self.epochs - 1:
      for name, w in evaluated.items():
        self.deviation[name].append(jax.vmap(weight_deviation)(initial[name], w))

  def final_deviation(self) -> dict[str, Any]:
    """Kernel path -> ``WeightDeviation`` of NumPy per-seed arrays, chunks concatenated."""
    return {
      name: jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *chunks)
      for name, chunks in self.deviation.items()
    }


def _mean_std(x: np.ndarray, scale: float) -> str:
  return f"{np.mean(x) * scale:.2f} ± {np.std(x, ddof=1) * scale:.2f}"


def epoch_table(results: dict[str, TrainResult], epoch_tests: list[stats_lib.Comparison]) -> str:
  """Markdown: validation accuracy (%) per epoch, mean ± std per arm, paired difference and p-values."""
  lines = [
    "| epoch | "
    + " | ".join(f"{arm} val. acc." for arm in ARMS)
    + " | mean difference | paired t-test | Wilcoxon signed-rank |",
    "|---|" + "---|" * (len(ARMS) + 3),
  ]
  for e, test in enumerate(epoch_tests):
    cells = [_mean_std(results[arm].val_acc[:, e], 100.0) for arm in ARMS]
    lines.append(
      f"| {e + 1} | " + " | ".join(cells) + f" | {test.mean_difference * 100:+.2f} pp | "
      f"{report_lib.format_p(test.paired_ttest)} | {report_lib.format_p(test.wilcoxon)} |"
    )
  return "\n".join(lines)


def deviation_table(deviation: dict[str, dict[str, Any]]) -> str:
  """Markdown: weight deviation of the final kernels from the initial ones, mean over seeds, per layer."""
  headers = [f"{arm} {header}" for header in DEVIATION_COLUMNS.values() for arm in ARMS]
  lines = ["| kernel | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
  for name in deviation[ARMS[0]]:
    cells = [f"{np.mean(getattr(deviation[arm][name], field)):.4g}" for field in DEVIATION_COLUMNS for arm in ARMS]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def run_laperm(
  config: LaPermConfig = LaPermConfig(),  # noqa: B008 (a NamedTuple, immutable)
  *,
  dataset: Dataset | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  out_dir: str | pathlib.Path | None = None,
  progress: bool = False,
) -> LaPermResult:
  """Trains the same init seeds with Adam and with LaPerm(Adam) and compares them (LaPerm §5.1).

  Args:
    config: the run; see :class:`LaPermConfig`.
    dataset: a ready :class:`~parewire_jax.experiments.data.Dataset`; when
      ``None`` it is loaded with ``load_dataset(config.dataset, data_dir=...,
      download=..., limit_train=config.limit_train)``.
    data_dir, download: passed to ``load_dataset``.
    out_dir: when given, receives ``results.json`` (config, per-seed curves
      and metrics, summaries, tests, diagnostics), ``table.md`` and
      ``curves.png`` (accuracy and loss per epoch, mean ± std over seeds);
      in a multi-process run only process 0 writes.
    progress: show a progress bar over the training steps of every arm.

  Returns:
    A :class:`LaPermResult`.

  >>> config = LaPermConfig(dataset="digits", seeds=2, epochs=1, limit_train=300, batch_size=30, sync_period=5)
  >>> outcome = run_laperm(config)
  >>> int(outcome.exact_columns["laperm_adam"][0]) == outcome.columns_per_epoch
  True

  Raises:
    RuntimeError: if a LaPerm-evaluated weight vector is not a bit-exact
      permutation of its initial values (a bug, never expected).
  """
  config = config._replace(mlp_hidden=tuple(config.mlp_hidden))
  check_laperm_config(config)
  available_devices(config.devices)  # fails now, not after loading the data
  if dataset is None:
    check_batch_size(config.batch_size, train_size(config.dataset, config.limit_train))  # before loading the data
    dataset = load_dataset(config.dataset, data_dir=data_dir, download=download, limit_train=config.limit_train)
  seeds = list(range(config.first_seed, config.first_seed + config.seeds))
  kernel_init = models_lib.kernel_initializer(config.init)
  model = models_lib.build_model(config.model, dataset.num_classes, kernel_init, mlp_hidden=config.mlp_hidden)
  initial = _initial_kernels(model, dataset, seeds)
  columns_per_epoch = sum(w.shape[0] * w.shape[-1] for w in initial.values())
  results: dict[str, TrainResult] = {}
  diagnostics = {arm: _Diagnostics(initial, seeds, config.epochs) for arm in ARMS}
  writes = jax.process_index() == 0  # every process has every result; one writes them
  with progress_bar(len(ARMS), config.train_config(ARMS[0]), dataset, config.seeds, enabled=progress and writes) as bar:
    for arm in ARMS:
      bar.start(arm)
      results[arm] = train_seeds(
        model,
        dataset,
        seeds,
        config.train_config(arm),
        progress=bar.update,
        compiled=bar.compiled,
        evaluated=bar.evaluated,
        inspect=diagnostics[arm],
      )
  exact = {arm: diagnostics[arm].exact for arm in ARMS}
  if (exact["laperm_adam"] != columns_per_epoch).any():
    raise RuntimeError(
      f"LaPerm evaluated {columns_per_epoch} weight vectors per epoch but only "
      f"{exact['laperm_adam'].tolist()} were exact permutations of the initial ones."
    )
  deviation = {arm: diagnostics[arm].final_deviation() for arm in ARMS}

  metrics = {arm: report_lib.per_seed_metrics(result) for arm, result in results.items()}
  analysis = report_lib.analyze(metrics, base=ARMS[0])
  epoch_tests = [
    stats_lib.compare(results[ARMS[0]].val_acc[:, e], results[ARMS[1]].val_acc[:, e]) for e in range(config.epochs)
  ]
  table = _markdown(config, dataset, results, analysis, epoch_tests, exact, columns_per_epoch, deviation)
  outcome = LaPermResult(config, results, metrics, analysis, epoch_tests, exact, columns_per_epoch, deviation, table)
  if out_dir is not None and writes:
    write_laperm_outputs(outcome, dataset, out_dir)
  return outcome


def _markdown(
  config: LaPermConfig,
  dataset: Dataset,
  results: dict[str, TrainResult],
  analysis: report_lib.MetricReport,
  epoch_tests: list[stats_lib.Comparison],
  exact: dict[str, np.ndarray],
  columns_per_epoch: int,
  deviation: dict[str, dict[str, Any]],
) -> str:
  total = columns_per_epoch * config.epochs
  exact_lines = "\n".join(f"- {arm}: {int(exact[arm].sum())} / {total}" for arm in ARMS)
  return (
    f"{dataset.name} / {config.model} {list(config.mlp_hidden) if config.model == 'mlp' else ''} / "
    f"{config.init}: {config.seeds} seeds, {config.epochs} epoch(s), batch {config.batch_size}, "
    f"Adam lr {config.learning_rate:g} (cosine), LaPerm sync period k = {config.sync_period}\n\n"
    "validation accuracy (%) per epoch, mean ± std over seeds; paired by seed (laperm_adam − adam):\n\n"
    + epoch_table(results, epoch_tests)
    + "\n\nper-seed metrics, mean ± std (Welch t-test) and median ± MAD (Kruskal–Wallis) vs adam; "
    "test acc. at the best validation epoch:\n\n"
    + report_lib.markdown_table(analysis, base=ARMS[0])
    + "\n\npaired by seed (laperm_adam − adam):\n\n"
    + report_lib.paired_table(analysis)
    + f"\n\nevaluated kernel weight vectors (columns) that are bit-exact permutations of their initial "
    f"values, over {config.epochs} epoch(s) × {config.seeds} seeds × {columns_per_epoch // config.seeds} "
    f"columns:\n\n"
    + exact_lines
    + "\n\nweight deviation of the final kernels from the initial ones (Δ = W − W₀), mean over seeds:\n\n"
    + deviation_table(deviation)
  )


def write_laperm_outputs(outcome: LaPermResult, dataset: Dataset, out_dir: str | pathlib.Path) -> None:
  """``results.json``, ``table.md`` and ``curves.png`` of a :func:`run_laperm` outcome."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  payload: dict[str, Any] = {
    "config": outcome.config._asdict(),
    "dataset": report_lib.dataset_record(dataset),
    "jax": {"version": jax.__version__, "backend": jax.default_backend()},
    "arms": {
      arm: {
        "per_seed": {"seeds": result.seeds, **outcome.metrics[arm]},
        "curves": report_lib.curves_record(result),
        "summary": outcome.report.summaries[arm],
        "vs_adam": outcome.report.comparisons.get(arm),
        "exact_permutation_columns": outcome.exact_columns[arm],
        "weight_deviation": outcome.deviation[arm],
      }
      for arm, result in outcome.results.items()
    },
    "columns_per_epoch": outcome.columns_per_epoch,
    "epoch_val_acc_tests": outcome.epoch_tests,
  }
  report_lib.write_json(out / "results.json", payload)
  (out / "table.md").write_text(outcome.table + "\n")
  report_lib.plot_curves(outcome.results, out / "curves.png")
  report_lib.plot_per_seed(outcome.metrics, out / "per_seed.png")
