"""The experiments behind ``python -m parewire_jax compare`` and ``strength``.

:func:`run_compare` trains one model from the same init seeds with the base
initializer and its variants (§4.1–4.3), then tabulates and tests the
per-seed metrics against the base (Tables 1–2) and writes JSON and plots.
:func:`run_strength` compares strength statistics of one weight shape before
and after rewiring (§3.2–3.3, Fig. 1b–c).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from parewire_jax.experiments import models as models_lib, report as report_lib
from parewire_jax.experiments.checkpoint import ChunkStore, dataset_digest
from parewire_jax.experiments.data import Dataset, load_dataset
from parewire_jax.experiments.progress import TrainingProgress
from parewire_jax.experiments.seeds import available_devices, seed_keys
from parewire_jax.experiments.settings import (
  CompareConfig,
  check_batch_size,
  check_compare_config,
  check_strength_settings,
  train_size,
)
from parewire_jax.experiments.train import TrainResult, evaluation_work, progress_bar, train_seeds
from parewire_jax.strength import strength_stats


class CompareResult(NamedTuple):
  """Outcome of :func:`run_compare`.

  Attributes:
    config: the run.
    results: variant -> per-seed training records.
    metrics: variant -> metric of the table -> per-seed values.
    report: summaries of every variant and tests of every variant against ``base``.
    table: markdown: Tables 1–2 and the paired comparison.
    train_seconds: variant -> training time of its chunks, resumed ones included.
    resumed: variant -> the seeds of each chunk loaded from ``out_dir`` instead of trained.

  >>> CompareResult._fields[:3]
  ('config', 'results', 'metrics')
  """

  config: CompareConfig
  results: dict[str, TrainResult]
  metrics: dict[str, dict[str, np.ndarray]]
  report: report_lib.MetricReport
  table: str
  train_seconds: dict[str, float]
  resumed: dict[str, list[list[int]]]


def training_fingerprint(config: CompareConfig, dataset: Dataset) -> dict[str, Any]:
  """What determines a chunk's training besides its variant and seeds (see ``ChunkStore``).

  The settings, a digest of the data, and the software and device that train:
  the same code on another backend or device kind rounds differently, so a
  chunk from there is refused rather than mixed in. How seeds are chunked or
  vectorized, and over how many devices, is left out (results agree to float
  rounding, see ``TrainConfig.devices``), but chunks are found by their exact
  seeds, so only a run with the same chunk boundaries reuses them.
  """
  from parewire_jax import __version__

  train = config.train_config()._replace(seeds_per_chunk=None, seeds_per_vmap=None)._asdict()
  del train["devices"]  # absent from the fingerprints of chunks saved before it existed, too
  environment = {
    "parewire_jax": __version__,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "x64": bool(jax.config.read("jax_enable_x64")),
  }
  fingerprint = {
    "train": train,
    "dataset": config.dataset,
    "model": config.model,
    "init": config.init,
    "num_draws": config.num_draws,
    "mlp_hidden": list(config.mlp_hidden),
    "limit_train": config.limit_train,
    "limit_eval": config.limit_eval,
    "standardize": config.standardize,
    "data_digest": dataset_digest(dataset),
    "environment": environment,
  }
  # Recorded only when set, so that chunks saved before the field existed (all without a norm) still resume.
  # (CompareConfig.optimizer is train.optimizer, which was always recorded.)
  if config.norm != "none":
    fingerprint["norm"] = config.norm
  return fingerprint


def build(config: CompareConfig, variant: str, num_classes: int) -> nn.Module:
  """The model of ``config`` with every kernel drawn by ``config.init`` in ``variant``."""
  kernel_init = models_lib.kernel_initializer(config.init, variant, num_draws=config.num_draws)
  return models_lib.build_model(config.model, num_classes, kernel_init, mlp_hidden=config.mlp_hidden, norm=config.norm)


def _first_seed_kernels(config: CompareConfig, dataset: Dataset) -> tuple[str, dict[str, np.ndarray]]:
  """The largest kernel of the model initialized with ``first_seed``, per variant (for Fig. 1b)."""
  largest = {}
  for variant in config.variants:
    model = build(config, variant, dataset.num_classes)
    params = jax.jit(model.init)(jax.random.key(config.first_seed), jnp.asarray(dataset.x_train[:1]))["params"]
    leaves = models_lib.kernels(params)
    name = max(leaves, key=lambda n: leaves[n].size)
    largest[variant] = np.asarray(leaves[name])
  return name, largest


def dataset_of(config: CompareConfig, *, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
  """The data ``config`` trains on: ``load_dataset`` with its name, limits and standardization.

  >>> dataset_of(CompareConfig(dataset="digits", limit_train=100, limit_eval=50)).x_train.shape
  (100, 8, 8, 1)
  """
  return load_dataset(
    config.dataset,
    data_dir=data_dir,
    download=download,
    limit_train=config.limit_train,
    limit_eval=config.limit_eval,
    standardize=config.standardize,
  )


def run_compare(
  config: CompareConfig = CompareConfig(),  # noqa: B008 (a NamedTuple, immutable)
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
    config: the run; see :class:`CompareConfig`.
    dataset: a ready :class:`~parewire_jax.experiments.data.Dataset`; when
      ``None`` it is loaded with ``load_dataset(config.dataset, data_dir=...,
      download=..., limit_train=config.limit_train, limit_eval=config.limit_eval,
      standardize=config.standardize)``; a dataset passed in is used as it is.
    data_dir, download: passed to ``load_dataset``.
    out_dir: when given, receives ``results.json`` (config, per-seed curves
      and metrics, summaries, tests), ``table.md`` and the plots
      ``curves.png`` (Fig. 4), ``per_seed.png`` (every seed's table
      metrics), ``strength.png`` (Fig. 1b),
      ``strength_vs_accuracy.png`` (Fig. 3) and, with ``track_gradients``,
      ``gradients.png`` (Fig. 5); every finished chunk of seeds is saved
      under ``out_dir/chunks`` as soon as it is trained. In a multi-process
      run (``jax.distributed.initialize``) every process trains its devices'
      seeds and gets all results, and only process 0 writes.
    resume: reuse the chunks a previous run with the same settings and data
      saved under ``out_dir/chunks`` instead of training them again (a chunk
      saved by a run with other settings is a ``ValueError``; one saved on
      another number of devices is reused). Needs ``out_dir``, which every
      process must see in a multi-process run.
    progress: show a progress bar over the training steps of every variant;
      or a :class:`~parewire_jax.experiments.TrainingProgress` bar
      that counts this run's steps among others', left open.
    plots: with ``out_dir``, draw the plots too (``results.json`` and
      ``table.md`` are always written).

  Returns:
    A :class:`CompareResult`.

  >>> config = CompareConfig(dataset="digits", model="mlp", seeds=3, limit_train=256, batch_size=64, mlp_hidden=(16,))
  >>> outcome = run_compare(config)
  >>> sorted(outcome.metrics), outcome.metrics["rewired"]["epoch1_val_acc"].shape
  (['base', 'rewired'], (3,))
  """
  config = config._replace(variants=tuple(config.variants), mlp_hidden=tuple(config.mlp_hidden))
  check_compare_config(config)
  if resume and out_dir is None:
    raise ValueError("resume=True needs out_dir: the directory whose chunks/ a previous run saved.")
  available_devices(config.devices)  # fails now, not after loading the data
  if dataset is None:
    check_batch_size(config.batch_size, train_size(config.dataset, config.limit_train))  # before loading the data
    dataset = dataset_of(config, data_dir=data_dir, download=download)
  base_model = build(config, "base", dataset.num_classes)  # fails now, not mid-run, on data the model can't take
  jax.eval_shape(lambda key: base_model.init(key, dataset.x_train[:1]), jax.random.key(0))
  train_config = config.train_config()
  seeds = list(range(config.first_seed, config.first_seed + config.seeds))
  store = (
    None
    if out_dir is None
    else ChunkStore(pathlib.Path(out_dir) / "chunks", training_fingerprint(config, dataset), resume=resume)
  )
  writes = jax.process_index() == 0  # every process has every result; one writes them
  results: dict[str, TrainResult] = {}
  seconds: dict[str, float] = {}
  if isinstance(progress, TrainingProgress):
    shared_bar = contextlib.nullcontext(progress)
  else:
    shared_bar = progress_bar(len(config.variants), train_config, dataset, config.seeds, enabled=progress and writes)
  with shared_bar as bar:
    for variant in config.variants:
      bar.start(variant, evaluation_work=evaluation_work(train_config, dataset))
      started = time.perf_counter()
      results[variant] = train_seeds(
        build(config, variant, dataset.num_classes),
        dataset,
        seeds,
        train_config,
        progress=bar.update,
        compiled=bar.compiled,
        evaluated=bar.evaluated,
        load_chunk=None if store is None else functools.partial(store.load, variant),
        save_chunk=None if store is None or not writes else functools.partial(store.save, variant),
      )
      seconds[variant] = time.perf_counter() - started if store is None else store.seconds.get(variant, 0.0)

  metrics = {variant: report_lib.per_seed_metrics(result) for variant, result in results.items()}
  analysis = report_lib.analyze(metrics, equal_var=config.equal_var)
  test = "Student" if config.equal_var else "Welch"
  model = config.model + ("" if config.norm == "none" else f" ({config.norm} norm)")
  optimizer = "" if config.optimizer == "sgd" else f", {config.optimizer}"
  table = (
    f"{config.dataset} / {model} / {config.init}: {config.seeds} seeds, {config.epochs} epoch(s){optimizer}; "
    f"p: {test} t-test (mean) and Kruskal–Wallis (median) vs base\n\n"
    + report_lib.markdown_table(analysis)
    + "\n\npaired by seed (variant − base), and the spread over seeds (std ratio, Brown–Forsythe test):\n\n"
    + report_lib.paired_table(analysis)
  )
  outcome = CompareResult(config, results, metrics, analysis, table, seconds, {} if store is None else store.resumed)
  if out_dir is not None and writes:
    write_compare_outputs(outcome, dataset, out_dir, plots=plots)
  return outcome


def write_compare_outputs(
  outcome: CompareResult, dataset: Dataset, out_dir: str | pathlib.Path, *, plots: bool = True
) -> None:
  """``results.json``, ``table.md`` and (with ``plots``) the plots of a :func:`run_compare` outcome."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  config = outcome.config
  payload: dict[str, Any] = {
    "config": config._asdict(),
    "dataset": report_lib.dataset_record(dataset),
    "jax": {"version": jax.__version__, "backend": jax.default_backend()},
    "train_seconds": outcome.train_seconds,
    "resumed_chunks": outcome.resumed,
    "variants": {
      variant: {
        "per_seed": {"seeds": result.seeds, **outcome.metrics[variant]},
        "curves": report_lib.curves_record(result),
        "grad_abs": result.grad_abs,
        "layer_names": result.layer_names,
        "init_mean_variance": result.init_mean_variance,
        "init_mean_fourth_moment": result.init_mean_fourth_moment,
        "summary": outcome.report.summaries[variant],
        "vs_base": outcome.report.comparisons.get(variant),
      }
      for variant, result in outcome.results.items()
    },
  }
  report_lib.write_json(out / "results.json", payload)
  (out / "table.md").write_text(outcome.table + "\n")
  if not plots:
    return
  report_lib.plot_curves(outcome.results, out / "curves.png")
  report_lib.plot_per_seed(outcome.metrics, out / "per_seed.png")
  report_lib.plot_strength_vs_accuracy(outcome.results, out / "strength_vs_accuracy.png")
  name, kernels = _first_seed_kernels(config, dataset)
  report_lib.plot_strength_distributions(
    kernels, out / "strength.png", title=f"{config.init}, kernel {name}, seed {config.first_seed}"
  )
  if config.track_gradients:
    report_lib.plot_gradients(outcome.results, out / "gradients.png")


STRENGTH_COLUMNS = ("in σ²", "out σ²", "in μ₄", "out μ₄", "in max abs(s)", "out max abs(s)")


class StrengthResult(NamedTuple):
  """Outcome of :func:`run_strength`.

  Attributes:
    stats: variant -> column of the table -> mean over seeds.
    per_seed: variant -> :class:`~parewire_jax.StrengthStats` of arrays with one entry per seed.
    table: the markdown table.

  >>> run_strength("orthogonal", (16, 8), seeds=2).stats["base"]["in σ²"] > 0
  True
  """

  stats: dict[str, dict[str, float]]
  per_seed: dict[str, Any]
  table: str


def _draws(initializer: models_lib.Initializer, keys: Array, shape: tuple[int, ...]) -> Array:
  """One float32 draw of ``shape`` from ``initializer`` per key, stacked."""
  return jax.jit(jax.vmap(lambda k: initializer(k, shape, jnp.float32)))(keys)


def run_strength(
  init: str,
  shape: Sequence[int],
  *,
  seeds: int = 10,
  variants: Sequence[str] = ("base", "rewired"),
  num_draws: int = 100,
  out_dir: str | pathlib.Path | None = None,
) -> StrengthResult:
  """Strength statistics of ``init`` kernels of ``shape`` per variant, mean over seeds (§3.2, Fig. 1).

  The kernel is a Flax kernel: the last axis holds the output neurons, all
  others the inputs. Seed ``s`` draws with ``jax.random.key(s)``, so every
  variant of a seed starts from the same base draw. With ``out_dir``, writes
  ``strength.json``, ``strength.md`` and ``strength.png`` (Fig. 1b for seed 0).

  >>> r = run_strength("kaiming_normal", (64, 32), seeds=2)
  >>> r.stats["rewired"]["in σ²"] < r.stats["base"]["in σ²"]
  True
  """
  shape, variants = check_strength_settings(init, shape, seeds, variants, num_draws)
  keys = seed_keys(range(seeds))
  stats, per_seed, first_draw = {}, {}, {}
  for variant in variants:
    initializer = models_lib.kernel_initializer(init, variant, num_draws=num_draws)
    draws = _draws(initializer, keys, shape)
    seed_stats = jax.vmap(strength_stats)(draws)
    per_seed[variant] = jax.tree.map(np.asarray, seed_stats)
    stats[variant] = dict(
      zip(
        STRENGTH_COLUMNS,
        (
          float(np.mean(getattr(seed_stats, f)))
          for f in ("in_variance", "out_variance", "in_fourth_moment", "out_fourth_moment", "in_max_abs", "out_max_abs")
        ),
        strict=True,
      )
    )
    first_draw[variant] = np.asarray(draws[0])
  table = f"{init} {shape}: strength statistics, mean over {seeds} seed(s)\n\n" + report_lib.strength_table(
    stats, STRENGTH_COLUMNS
  )
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report_lib.write_json(
      out / "strength.json",
      {"init": init, "shape": shape, "seeds": seeds, "num_draws": num_draws, "mean": stats, "per_seed": per_seed},
    )
    (out / "strength.md").write_text(table + "\n")
    report_lib.plot_strength_distributions(first_draw, out / "strength.png", title=f"{init} {shape}, seed 0")
  return StrengthResult(stats, per_seed, table)
