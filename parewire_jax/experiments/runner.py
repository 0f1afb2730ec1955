"""The one runner of the experiments: train several arms from the same seeds, then compare each with the first.

An *arm* is a model (with its kernel initializer) and an optimizer: the
initializer variants of ``compare`` (§4.1–4.3), Adam and LaPerm(Adam) of
``laperm``, base and rewired in every atlas cell. :func:`run_arms` checks the
settings and the output directory before anything is trained, loads the
data, trains every arm from the same init seeds and the same data order
(:func:`~parewire_jax.experiments.train_seeds`), saving each finished
chunk of seeds for ``resume`` (:class:`~parewire_jax.experiments.ChunkStore`),
and tests every arm against the first one
(:func:`~parewire_jax.experiments.metrics.analyze`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np

from parewire_jax.experiments import metrics as metrics_lib
from parewire_jax.experiments.checkpoint import ChunkStore, dataset_digest
from parewire_jax.experiments.data import Dataset, load_dataset
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.progress import TrainingProgress, evaluation_work, run_work
from parewire_jax.experiments.runtime import ensure_writable
from parewire_jax.experiments.seeds import available_devices
from parewire_jax.experiments.settings import CompareSettings, DataSettings, LaPermSettings
from parewire_jax.experiments.train import TrainResult, train_seeds

RunSettings = CompareSettings | LaPermSettings


class Arm(NamedTuple):
  """One arm of a run: a name (tables, chunk files), a model and its optimizer.

  >>> from parewire_jax.experiments.models import build_model, kernel_initializer
  >>> Arm("rewired", build_model("mlp", 10, kernel_initializer("orthogonal", "rewired")), Optimizer("adam")).name
  'rewired'
  """

  name: str
  model: nn.Module
  optimizer: Optimizer = Optimizer()


class RunResult(NamedTuple):
  """Outcome of :func:`run_arms`.

  Attributes:
    settings: the run.
    dataset: the data it trained on.
    results: arm -> per-seed training records.
    metrics: arm -> metric of the tables -> per-seed values.
    report: summaries of every arm and tests of every other arm against ``reference``.
    train_seconds: arm -> training time of its chunks, resumed ones included.
    resumed: arm -> the seeds of each chunk loaded from ``out_dir`` instead of trained.
    reference: the arm every other one is tested against.

  >>> RunResult._fields[:3]
  ('settings', 'dataset', 'results')
  """

  settings: RunSettings
  dataset: Dataset
  results: dict[str, TrainResult]
  metrics: dict[str, dict[str, np.ndarray]]
  report: metrics_lib.MetricReport
  train_seconds: dict[str, float]
  resumed: dict[str, list[list[int]]]
  reference: str


def dataset_of(data: DataSettings, *, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
  """The data ``data`` describes: ``load_dataset`` with its name, limits and standardization.

  >>> dataset_of(DataSettings(dataset="digits", limit_train=100, limit_eval=50)).x_train.shape
  (100, 8, 8, 1)
  """
  return load_dataset(
    data.dataset,
    data_dir=data_dir,
    download=download,
    limit_train=data.limit_train,
    limit_eval=data.limit_eval,
    standardize=data.standardize,
  )


def training_fingerprint(settings: RunSettings, dataset: Dataset) -> dict[str, Any]:
  """What determines a chunk's training besides its arm and seeds (see ``ChunkStore``).

  The settings that decide the numbers (``Settings.fingerprint``), a
  digest of the data, and the software and device that train: the same code
  on another backend or device kind rounds differently, so a chunk from there
  is refused rather than mixed in. How seeds are chunked or vectorized, and
  over how many devices, is left out (results agree to float rounding), but
  chunks are found by their exact seeds, so only a run with the same chunk
  boundaries reuses them.
  """
  from parewire_jax import __version__

  environment = {
    "parewire_jax": __version__,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device_kind": jax.devices()[0].device_kind,
    "x64": bool(jax.config.read("jax_enable_x64")),
  }
  return {
    "experiment": type(settings).__name__,
    "settings": settings.fingerprint(),
    "data_digest": dataset_digest(dataset),
    "environment": environment,
  }


def planned_work(settings: RunSettings, num_arms: int, dataset: Dataset) -> int:
  """A progress bar's count for training ``num_arms`` arms of ``settings`` on ``dataset``."""
  training, seeding = settings.training, settings.seeding
  return num_arms * run_work(
    num_seeds=seeding.seeds,
    seeds_per_chunk=seeding.seeds_per_chunk,
    epochs=training.epochs,
    steps_per_epoch=len(dataset.x_train) // training.batch_size,
    evaluation_work=_evaluation_work(settings, dataset),
  )


def _evaluation_work(settings: RunSettings, dataset: Dataset) -> int:
  training = settings.training
  evaluated = len(dataset.x_val) + len(dataset.x_test) + training.train_evaluated(len(dataset.x_train))
  return evaluation_work(training.batch_size, evaluated)


def _prepare(
  settings: RunSettings,
  arms_of: Callable[[Dataset], Sequence[Arm]],
  dataset: Dataset | None,
  data_dir: str | os.PathLike | None,
  download: bool,
  out_dir: str | pathlib.Path | None,
  resume: bool,
) -> tuple[Dataset, list[Arm]]:
  """Every check that can fail before training, cheapest first; returns the data and the arms."""
  settings.check()
  if resume and out_dir is None:
    raise ValueError("resume=True needs out_dir: the directory whose chunks/ a previous run saved.")
  if out_dir is not None and jax.process_index() == 0:
    ensure_writable(out_dir)
  available_devices(settings.hardware.devices)  # fails now, not after loading the data
  if dataset is None:
    dataset = dataset_of(settings.data, data_dir=data_dir, download=download)
  arms = list(arms_of(dataset))
  if not arms or len({arm.name for arm in arms}) != len(arms):
    raise ValueError(f"arms must be distinct names, at least one; got {[arm.name for arm in arms]}.")
  model = arms[0].model  # fails now, not mid-run, on data the model cannot take
  jax.eval_shape(lambda key: model.init(key, dataset.x_train[:1]), jax.random.key(0))
  return dataset, arms


def run_arms(
  settings: RunSettings,
  arms: Callable[[Dataset], Sequence[Arm]],
  *,
  dataset: Dataset | None = None,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  out_dir: str | pathlib.Path | None = None,
  resume: bool = False,
  progress: bool | TrainingProgress = False,
  epoch_records: Callable[[Any, Any], Mapping[str, Any]] | None = None,
  reference: str | None = None,
  equal_var: bool = False,
) -> RunResult:
  """Trains every arm from ``settings``' seeds on the same data order and tests each against the first.

  Args:
    settings: the run (its data, schedule, seeds, devices).
    arms: the arms for the data (models need its number of classes), the
      reference first.
    dataset: a ready dataset, used as it is; when ``None`` it is loaded as
      ``settings.data`` says (``dataset_of``).
    data_dir, download: passed to ``load_dataset``.
    out_dir: every finished chunk of seeds is saved under ``out_dir/chunks``
      as soon as it is trained; the directory is checked to be writable
      before anything else is done. In a multi-process run
      (``jax.distributed.initialize``) every process trains its devices'
      seeds and gets all results, and only process 0 writes.
    resume: reuse the chunks a previous run with the same settings and data
      saved under ``out_dir/chunks`` (a chunk saved by a run with other
      settings is a ``ValueError``; one saved on another number of devices
      is reused).
    progress: a progress bar over every arm's training; or a
      :class:`~parewire_jax.experiments.TrainingProgress` that
      counts this run's work among others', left open.
    epoch_records: passed to ``train_seeds``: per-seed records computed from
      the evaluated parameters after every epoch, saved with the chunks.
    reference: the arm every other one is tested against (``None``: the first).
    equal_var: Student's instead of Welch's t-test.

  Returns:
    A :class:`RunResult`.

  >>> from parewire_jax.experiments import build_model, kernel_initializer
  >>> settings = CompareSettings().replace(dataset="digits", model="mlp", seeds=2, limit_train=256, batch_size=64)
  >>> def arms(data):
  ...   mlp = build_model("mlp", data.num_classes, kernel_initializer("kaiming_normal"), mlp_hidden=(16,))
  ...   return [Arm("sgd", mlp), Arm("adam", mlp, Optimizer("adam"))]
  >>> run = run_arms(settings, arms)
  >>> run.reference, run.results["adam"].val_acc.shape
  ('sgd', (2, 1))
  """
  dataset, arms_trained = _prepare(settings, arms, dataset, data_dir, download, out_dir, resume)
  writes = jax.process_index() == 0  # every process has every result; one writes them
  store = (
    None
    if out_dir is None
    else ChunkStore(pathlib.Path(out_dir) / "chunks", training_fingerprint(settings, dataset), resume=resume)
  )
  if isinstance(progress, TrainingProgress):
    bar = contextlib.nullcontext(progress)
  else:
    bar = TrainingProgress(planned_work(settings, len(arms_trained), dataset), enabled=progress and writes)
  results: dict[str, TrainResult] = {}
  seconds: dict[str, float] = {}
  with bar as observer:
    for arm in arms_trained:
      observer.start(arm.name, evaluation_work=_evaluation_work(settings, dataset))
      started = time.perf_counter()
      results[arm.name] = train_seeds(
        arm.model,
        dataset,
        settings.seeding.range,
        settings.training,
        arm.optimizer,
        data_seed=settings.data.data_seed,
        seeds_per_chunk=settings.seeding.seeds_per_chunk,
        seeds_per_vmap=settings.seeding.seeds_per_vmap,
        devices=settings.hardware.devices,
        chunks=None if store is None else store.arm(arm.name, saves=writes),
        observer=observer,
        epoch_records=epoch_records,
      )
      seconds[arm.name] = time.perf_counter() - started if store is None else store.seconds.get(arm.name, 0.0)
  metrics = {name: metrics_lib.per_seed_metrics(result) for name, result in results.items()}
  reference = arms_trained[0].name if reference is None else reference
  report = metrics_lib.analyze(metrics, base=reference, equal_var=equal_var)
  resumed = {} if store is None else store.resumed
  return RunResult(settings, dataset, results, metrics, report, seconds, resumed, reference)
