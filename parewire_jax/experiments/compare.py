"""The experiments behind ``python -m parewire_jax compare`` and ``strength``.

:func:`run_compare` trains one model from the same init seeds with the base
initializer and its variants (§4.1–4.3), then tabulates and tests the
per-seed metrics against the base (Tables 1–2) and writes JSON and plots.
:func:`run_strength` compares strength statistics of one weight shape before
and after rewiring (§3.2–3.3, Fig. 1b–c).
"""

from __future__ import annotations

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

from parewire_jax._checks import check_choice, check_int
from parewire_jax.experiments import models as models_lib, report as report_lib
from parewire_jax.experiments.checkpoint import ChunkStore, dataset_digest
from parewire_jax.experiments.data import DATASETS, Dataset, load_dataset
from parewire_jax.experiments.seeds import seed_keys
from parewire_jax.experiments.train import TrainConfig, TrainResult, check_config, train_seeds
from parewire_jax.strength import strength_stats


class CompareConfig(NamedTuple):
  """Everything that defines a ``compare`` run (recorded in its JSON).

  The defaults are the CPU demonstration (see ``python -m parewire_jax
  compare --help``); the paper's Table 1 setting is ``model="lenet",
  seeds=100, epochs=100``.
  """

  dataset: str = "mnist"
  model: str = "mlp"
  init: str = "kaiming_normal"
  variants: tuple[str, ...] = ("base", "rewired")
  seeds: int = 40
  first_seed: int = 0
  epochs: int = 1
  batch_size: int = 128
  learning_rate: float = 0.01
  momentum: float = 0.9
  limit_train: int | None = None
  limit_eval: int | None = None
  standardize: bool = False
  data_seed: int = 0
  seeds_per_chunk: int | None = None
  seeds_per_vmap: int | None = None
  num_draws: int = 100
  mlp_hidden: tuple[int, ...] = (256, 256)
  equal_var: bool = False
  track_gradients: bool = False

  def train_config(self) -> TrainConfig:
    return TrainConfig(
      epochs=self.epochs,
      batch_size=self.batch_size,
      learning_rate=self.learning_rate,
      momentum=self.momentum,
      data_seed=self.data_seed,
      seeds_per_chunk=self.seeds_per_chunk,
      seeds_per_vmap=self.seeds_per_vmap,
      track_gradients=self.track_gradients,
    )


class CompareResult(NamedTuple):
  config: CompareConfig
  results: dict[str, TrainResult]  # variant -> per-seed records
  metrics: dict[str, dict[str, np.ndarray]]  # variant -> metric -> per-seed values
  report: report_lib.MetricReport
  table: str  # markdown: Tables 1–2 and the paired comparison
  train_seconds: dict[str, float]  # variant -> training time of its chunks, resumed ones included
  resumed: dict[str, list[list[int]]]  # variant -> seeds of each chunk loaded from out_dir, not trained


def training_fingerprint(config: CompareConfig, dataset: Dataset) -> dict[str, Any]:
  """What determines a chunk's training besides its variant and seeds (see ``ChunkStore``).

  The settings, a digest of the data, and the software and device that train:
  the same code on another backend or device kind rounds differently, so a
  chunk from there is refused rather than mixed in. How seeds are chunked or
  vectorized is left out, but chunks are found by their exact seeds, so only
  a run with the same chunk boundaries reuses them.
  """
  from parewire_jax import __version__

  train = config.train_config()._replace(seeds_per_chunk=None, seeds_per_vmap=None)._asdict()
  environment = {
    "parewire_jax": __version__,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "x64": bool(jax.config.jax_enable_x64),
  }
  return {
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


def check_compare_config(config: CompareConfig) -> None:
  """Raises ValueError naming the first impossible setting of ``config``."""
  check_choice(config.dataset, DATASETS, "dataset")
  check_choice(config.model, models_lib.MODELS, "model")
  check_choice(config.init, models_lib.INITIALIZERS, "init")
  variants = tuple(config.variants)
  unknown = [v for v in variants if v not in models_lib.VARIANTS]
  if unknown:
    raise ValueError(f"variants must be among {', '.join(models_lib.VARIANTS)}; got {', '.join(map(repr, unknown))}.")
  if "base" not in variants or len(variants) < 2 or len(set(variants)) != len(variants):
    raise ValueError(f"variants must be distinct and include 'base' and at least one other; got {list(variants)}.")
  try:
    check_int(config.seeds, "seeds", minimum=2)
  except ValueError as error:
    raise ValueError(f"{error} The statistical tests need two samples.") from None
  check_int(config.first_seed, "first_seed", minimum=0)
  check_int(config.limit_train, "limit_train", allow_none=True)
  check_int(config.limit_eval, "limit_eval", allow_none=True)
  check_int(config.num_draws, "num_draws")
  models_lib.check_mlp_hidden(config.mlp_hidden)
  check_config(config.train_config())  # the trainer's checks, before any data is loaded


def build(config: CompareConfig, variant: str, num_classes: int) -> nn.Module:
  """The model of ``config`` with every kernel drawn by ``config.init`` in ``variant``."""
  kernel_init = models_lib.kernel_initializer(config.init, variant, num_draws=config.num_draws)
  return models_lib.build_model(config.model, num_classes, kernel_init, mlp_hidden=config.mlp_hidden)


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


def run_compare(
  config: CompareConfig = CompareConfig(),  # noqa: B008 (a NamedTuple, immutable)
  *,
  dataset: Dataset | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  out_dir: str | pathlib.Path | None = None,
  resume: bool = False,
  progress: bool = False,
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
      ``curves.png`` (Fig. 4), ``strength.png`` (Fig. 1b),
      ``strength_vs_accuracy.png`` (Fig. 3) and, with ``track_gradients``,
      ``gradients.png`` (Fig. 5); every finished chunk of seeds is saved
      under ``out_dir/chunks`` as soon as it is trained.
    resume: reuse the chunks a previous run with the same settings and data
      saved under ``out_dir/chunks`` instead of training them again (a chunk
      saved by a run with other settings is a ``ValueError``). Needs
      ``out_dir``.
    progress: show a tqdm bar over (variant, chunk, epoch).

  Returns:
    A :class:`CompareResult`.
  """
  config = config._replace(variants=tuple(config.variants), mlp_hidden=tuple(config.mlp_hidden))
  check_compare_config(config)
  if resume and out_dir is None:
    raise ValueError("resume=True needs out_dir: the directory whose chunks/ a previous run saved.")
  if dataset is None:
    dataset = load_dataset(
      config.dataset,
      data_dir=data_dir,
      download=download,
      limit_train=config.limit_train,
      limit_eval=config.limit_eval,
      standardize=config.standardize,
    )
  base_model = build(config, "base", dataset.num_classes)  # fails now, not mid-run, on data the model can't take
  jax.eval_shape(lambda key: base_model.init(key, dataset.x_train[:1]), jax.random.key(0))
  train_config = config.train_config()
  seeds = list(range(config.first_seed, config.first_seed + config.seeds))
  chunks = -(-config.seeds // (config.seeds_per_chunk or config.seeds))

  from tqdm.auto import tqdm

  store = (
    None
    if out_dir is None
    else ChunkStore(pathlib.Path(out_dir) / "chunks", training_fingerprint(config, dataset), resume=resume)
  )
  results: dict[str, TrainResult] = {}
  seconds: dict[str, float] = {}
  with tqdm(total=len(config.variants) * chunks * config.epochs, disable=not progress, unit="epoch") as bar:
    for variant in config.variants:
      bar.set_description(variant)
      started = time.perf_counter()
      results[variant] = train_seeds(
        build(config, variant, dataset.num_classes),
        dataset,
        seeds,
        train_config,
        progress=bar.update,
        load_chunk=None if store is None else functools.partial(store.load, variant),
        save_chunk=None if store is None else functools.partial(store.save, variant),
      )
      seconds[variant] = time.perf_counter() - started if store is None else store.seconds.get(variant, 0.0)

  metrics = {variant: report_lib.per_seed_metrics(result) for variant, result in results.items()}
  analysis = report_lib.analyze(metrics, equal_var=config.equal_var)
  test = "Student" if config.equal_var else "Welch"
  table = (
    f"{config.dataset} / {config.model} / {config.init}: {config.seeds} seeds, {config.epochs} epoch(s); "
    f"p: {test} t-test (mean) and Kruskal–Wallis (median) vs base\n\n"
    + report_lib.markdown_table(analysis)
    + "\n\npaired by seed (variant − base), and the spread over seeds (std ratio, Brown–Forsythe test):\n\n"
    + report_lib.paired_table(analysis)
  )
  outcome = CompareResult(config, results, metrics, analysis, table, seconds, {} if store is None else store.resumed)
  if out_dir is not None:
    write_compare_outputs(outcome, dataset, out_dir)
  return outcome


def write_compare_outputs(outcome: CompareResult, dataset: Dataset, out_dir: str | pathlib.Path) -> None:
  """``results.json``, ``table.md`` and the plots of a :func:`run_compare` outcome."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  config = outcome.config
  payload: dict[str, Any] = {
    "config": config._asdict(),
    "dataset": {
      "name": dataset.name,
      "num_train": len(dataset.x_train),
      "num_val": len(dataset.x_val),
      "num_test": len(dataset.x_test),
      "num_classes": dataset.num_classes,
    },
    "jax": {"version": jax.__version__, "backend": jax.default_backend()},
    "train_seconds": outcome.train_seconds,
    "resumed_chunks": outcome.resumed,
    "variants": {
      variant: {
        "per_seed": {"seeds": result.seeds, **outcome.metrics[variant]},
        "curves": {
          k: getattr(result, k) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
        },
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
  report_lib.plot_curves(outcome.results, out / "curves.png")
  report_lib.plot_strength_vs_accuracy(outcome.results, out / "strength_vs_accuracy.png")
  name, kernels = _first_seed_kernels(config, dataset)
  report_lib.plot_strength_distributions(
    kernels, out / "strength.png", title=f"{config.init}, kernel {name}, seed {config.first_seed}"
  )
  if config.track_gradients:
    report_lib.plot_gradients(outcome.results, out / "gradients.png")


STRENGTH_COLUMNS = ("in σ²", "out σ²", "in μ₄", "out μ₄", "in max abs(s)", "out max abs(s)")


class StrengthResult(NamedTuple):
  stats: dict[str, dict[str, float]]  # variant -> column -> mean over seeds
  per_seed: dict[str, Any]  # variant -> StrengthStats of arrays (seeds,)
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
  check_choice(init, models_lib.INITIALIZERS, "init")
  shape = tuple(shape)
  if len(shape) < 2:
    raise ValueError(f"shape must have at least 2 positive int dimensions (…, n_out), got {shape}.")
  for i, d in enumerate(shape):
    check_int(d, f"shape[{i}]")
  check_int(seeds, "seeds")
  variants = tuple(variants)
  for v in variants:
    check_choice(v, models_lib.VARIANTS, "variant")
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
