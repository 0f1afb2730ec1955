"""Training many init seeds at once, everything else fixed (§4.1): the chunk trainer and the loop over chunks.

:func:`train_seeds` trains one model (one kernel initializer) from several
init seeds in a single ``jax.vmap`` over the seed axis
(:mod:`parewire_jax.experiments.seeds`). Only the init seed differs between
the models: the data order (:func:`epoch_batches`), the batches and the
learning-rate schedule come from ``data_seed`` and the
:class:`~parewire_jax.experiments.TrainSettings`, shared by all
seeds and by every arm trained with them, as the paper fixes "all other
stochastic factors" (§4.1).

Seeds are trained in chunks of ``seeds_per_chunk`` when they do not fit at
once: a :class:`ChunkTrainer` trains one chunk (the last one is padded with
repeats of its last seed, so every chunk reuses the same compiled code), with
one call of the jitted step functions of
:mod:`parewire_jax.experiments.steps` per segment of an epoch and per
evaluation, and the optimizer of :mod:`parewire_jax.experiments.optimizers`.
Finished chunks can be saved and loaded back (resuming, see
:class:`~parewire_jax.experiments.ChunkStore`), and the work done
is reported to a :class:`~parewire_jax.experiments.Observer`.

Every chunk is sharded over ``devices`` devices (all of them by default,
every host's in a multi-process run): each device trains its own share of
the seeds (:func:`~parewire_jax.experiments.seeds.device_shares`) on the
replicated data, and the per-seed records are gathered to every process when
the chunk ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import Optimizer, make_optimizer
from parewire_jax.experiments.progress import SILENT, Observer
from parewire_jax.experiments.seeds import SEED_AXIS, available_devices, device_shares, seed_mesh
from parewire_jax.experiments.settings import TrainSettings
from parewire_jax.experiments.steps import eval_batches, make_step_functions

if TYPE_CHECKING:
  from parewire_jax.experiments.checkpoint import ArmChunks


class TrainResult(NamedTuple):
  """Per-seed training records (NumPy; accuracies are fractions in [0, 1]).

  Attributes:
    seeds: the init seeds, shape ``(S,)``.
    train_loss: mean training loss over the epoch's steps, as seen during
      training, shape ``(S, E)``.
    train_acc: the same for the training accuracy.
    val_loss: validation loss after every epoch, shape ``(S, E)``.
    val_acc: validation accuracy after every epoch.
    test_loss: test loss after every epoch.
    test_acc: test accuracy after every epoch.
    grad_abs: mean ``|gradient|`` of every kernel averaged over the epoch's steps,
      shape ``(S, E, L)``, or ``None`` when not tracked.
    layer_names: the ``L`` kernels, as parameter paths.
    init_mean_variance: strength variance (mean of input and output) averaged
      over the kernels of the initial model, shape ``(S,)`` (Fig. 3's x-axis).
    init_mean_fourth_moment: the same for the fourth central moment μ₄(s)
      (Fig. 3's y-axis).
    train_curve_loss: the training curve within epochs: mean training loss
      over each of the ``R`` equal segments of every epoch
      (``TrainSettings.segments_per_epoch``), shape ``(S, E, R)``; its mean over
      the last axis is ``train_loss``.
    train_curve_acc: the same for the training accuracy.
    records: further per-seed records of every epoch, name -> shape
      ``(S, E, ...)``: the evaluation of training examples
      (``train_eval_acc``, ``train_eval_loss``, with
      ``TrainSettings.eval_train``) and what ``train_seeds``' ``epoch_records``
      computed from the evaluated parameters.

  >>> TrainResult._fields[:3]
  ('seeds', 'train_loss', 'train_acc')
  """

  seeds: np.ndarray
  train_loss: np.ndarray
  train_acc: np.ndarray
  val_loss: np.ndarray
  val_acc: np.ndarray
  test_loss: np.ndarray
  test_acc: np.ndarray
  grad_abs: np.ndarray | None
  layer_names: tuple[str, ...]
  init_mean_variance: np.ndarray
  init_mean_fourth_moment: np.ndarray
  train_curve_loss: np.ndarray
  train_curve_acc: np.ndarray
  records: dict[str, np.ndarray] = {}  # noqa: RUF012 (a NamedTuple's default, never mutated)


def segments_per_epoch(steps_per_epoch: int, requested: int) -> int:
  """The largest divisor of ``steps_per_epoch`` that is at most ``requested``: equal segments, one compiled scan.

  >>> segments_per_epoch(390, 10), segments_per_epoch(7, 10), segments_per_epoch(8, 3)
  (10, 7, 2)
  """
  return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


_EVALUATIONS = ("val_loss", "val_acc", "test_loss", "test_acc")


def _placed(x: np.ndarray, sharding: NamedSharding) -> Array:
  """``x``, the same on every process, as a global array laid out by ``sharding`` (multi-process too)."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _gathered(x: Array) -> Array | np.ndarray:
  """``x`` where this process can read all of it: itself, or (multi-process) its values from every process."""
  return x if x.is_fully_addressable else multihost_utils.process_allgather(x, tiled=True)


def epoch_batches(data_seed: int, epoch: int, num_train: int, batch_size: int) -> np.ndarray:
  """Indices of epoch ``epoch``'s batches, ``(num_batches, batch_size)``, the same for every init seed."""
  order = np.random.default_rng([data_seed, epoch]).permutation(num_train)
  num_batches = num_train // batch_size
  return order[: num_batches * batch_size].reshape(num_batches, batch_size).astype(np.int32)


class ChunkTrainer:
  """Trains chunks of at most ``chunk_size`` seeds of ``model`` on ``dataset``, each on the same compiled code.

  >>> from parewire_jax.experiments import build_model, kernel_initializer, load_dataset
  >>> data = load_dataset("digits", limit_train=128)
  >>> mlp = build_model("mlp", 10, kernel_initializer("kaiming_normal"), mlp_hidden=(8,))
  >>> trainer = ChunkTrainer(mlp, data, TrainSettings(batch_size=64), Optimizer(), data_seed=0, chunk_size=2,
  ...                        seeds_per_vmap=None, devices=1)
  >>> trainer.train([0]).val_acc.shape  # a chunk of 1 seed, padded to 2
  (1, 1)

  Args:
    model: a Flax linen module called as ``model(x, train=...)``.
    dataset: the data, placed on every device once.
    training: the schedule and the evaluation batch.
    optimizer: the arm's optimizer.
    data_seed: seed of the data order.
    chunk_size: seeds per chunk; a shorter chunk is padded to it.
    seeds_per_vmap: seeds vectorized together within a device's share.
    devices: the devices every chunk is sharded over (``None``: all).
  """

  def __init__(
    self,
    model: nn.Module,
    dataset: Dataset,
    training: TrainSettings,
    optimizer: Optimizer,
    *,
    data_seed: int,
    chunk_size: int,
    seeds_per_vmap: int | None,
    devices: int | None,
  ):
    self.training, self.data_seed = training, data_seed
    self.num_train = len(dataset.x_train)
    self.steps_per_epoch = self.num_train // training.batch_size
    self.segments = segments_per_epoch(self.steps_per_epoch, training.segments_per_epoch)
    share, num_devices = device_shares(chunk_size, available_devices(devices))
    self.padded_size = share * num_devices  # every chunk is padded to this, so all reuse the same compiled code
    mesh = seed_mesh(num_devices)
    self.seed_sharding = NamedSharding(mesh, PartitionSpec(SEED_AXIS))
    self._replicated_sharding = NamedSharding(mesh, PartitionSpec())
    self.x_train, self.y_train = self.replicated(dataset.x_train), self.replicated(dataset.y_train)
    self.example_x = self.replicated(dataset.x_train[:1])
    self.fns = make_step_functions(
      model,
      make_optimizer(optimizer, training, self.steps_per_epoch),
      self.example_x,
      seeds_per_vmap=seeds_per_vmap,
      track_gradients=training.track_gradients,
      laperm_evaluation=optimizer.evaluates_projection,
      mesh=mesh,
    )
    batch = training.eval_batch_size
    self.val = tuple(map(self.replicated, eval_batches(dataset.x_val, dataset.y_val, batch)))
    self.test = tuple(map(self.replicated, eval_batches(dataset.x_test, dataset.y_test, batch)))
    evaluated = training.train_evaluated(self.num_train)
    self.train_eval = (
      tuple(map(self.replicated, eval_batches(dataset.x_train[:evaluated], dataset.y_train[:evaluated], batch)))
      if evaluated
      else None
    )
    self._compiled = False  # for the first trained chunk; every chunk has the same shapes

  def replicated(self, x: np.ndarray | Array) -> Array:
    """``x``, the same on every device of every process."""
    return _placed(np.asarray(x), self._replicated_sharding)

  def epoch_segments(self, epoch: int) -> Array:
    """Epoch ``epoch``'s batch indices, ``(segments, steps per segment, batch)``."""
    indices = epoch_batches(self.data_seed, epoch, self.num_train, self.training.batch_size)
    return self.replicated(indices.reshape(self.segments, self.steps_per_epoch // self.segments, -1))

  def _compile(self, carry: Any) -> None:
    """Compiles every step function now, so that jit reuses them and compiling stays out of the training time."""
    (params, state, opt_state), counts = carry
    self.fns.segment.lower(carry, self.x_train, self.y_train, self.epoch_segments(0)[0]).compile()
    for data in (self.val, self.test, self.train_eval):
      if data is not None:
        self.fns.evaluate.lower(params, state, *data).compile()
    self.fns.evaluated_params.lower(params, opt_state, counts).compile()
    self._compiled = True

  def train(
    self,
    seeds: list[int],
    observer: Observer = SILENT,
    epoch_records: Callable[[Any, Any], Mapping[str, Any]] | None = None,
  ):
    """The :class:`TrainResult` of one chunk of ``seeds`` (at most ``chunk_size``), reporting to ``observer``."""
    seeds = [int(s) for s in seeds]
    if not 0 < len(seeds) <= self.padded_size:
      raise ValueError(f"seeds must name 1 to {self.padded_size} init seeds (the chunk size), got {len(seeds)}.")
    keep = len(seeds)  # rows of the chunk's own seeds; the padding follows
    padded = np.asarray(seeds + [seeds[-1]] * (self.padded_size - keep), np.uint32)
    params, state, opt_state, counts, variance, fourth = self.fns.init(
      _placed(padded, self.seed_sharding), self.example_x
    )
    carry = ((params, state, opt_state), counts)
    if not self._compiled:
      self._compile(carry)
    jax.block_until_ready(carry)
    observer.compiled()
    record: dict[str, list] = {k: [] for k in ("train_curve_loss", "train_curve_acc", "grad_abs", *_EVALUATIONS)}
    extra: dict[str, list] = {}
    initial = None if epoch_records is None else jax.tree.map(lambda x: _gathered(x)[:keep], params)
    for epoch in range(self.training.epochs):
      carry = self._train_epoch(carry, epoch, record, observer)
      (params, state, opt_state), counts = carry
      evaluated_params = self.fns.evaluated_params(params, opt_state, counts)
      self._evaluate(evaluated_params, state, record, extra, keep, observer)
      if epoch_records is not None:
        readable = jax.tree.map(lambda x: _gathered(x)[:keep], evaluated_params)
        for name, values in epoch_records(initial, readable).items():
          extra.setdefault(name, []).append(np.asarray(values))
    return self._result(seeds, record, extra, variance, fourth)

  def _train_epoch(self, carry: Any, epoch: int, record: dict[str, list], observer: Observer) -> Any:
    losses, accuracies, grads = [], [], []
    for indices in self.epoch_segments(epoch):
      carry, loss, acc, grad_abs = self.fns.segment(carry, self.x_train, self.y_train, indices)
      losses.append(jax.block_until_ready(loss))  # progress counts completed steps, not dispatched ones
      accuracies.append(acc)
      grads.append(grad_abs)
      observer.trained(len(indices))
    record["train_curve_loss"].append(jnp.stack(losses, axis=1))
    record["train_curve_acc"].append(jnp.stack(accuracies, axis=1))
    record["grad_abs"].append(jnp.mean(jnp.stack(grads), axis=0))
    return carry

  def _evaluate(
    self, params: Any, state: Any, record: dict[str, list], extra: dict[str, list], keep: int, observer: Observer
  ) -> None:
    """The epoch's evaluations: validation and test into ``record``, the training examples (if any) into ``extra``."""
    for split, data in (("val", self.val), ("test", self.test)):
      split_loss, split_acc = self.fns.evaluate(params, state, *data)
      record[f"{split}_loss"].append(split_loss)
      record[f"{split}_acc"].append(split_acc)
    if self.train_eval is not None:
      losses_and_accuracies = self.fns.evaluate(params, state, *self.train_eval)
      for name, values in zip(("train_eval_loss", "train_eval_acc"), losses_and_accuracies, strict=True):
        extra.setdefault(name, []).append(np.asarray(_gathered(values))[:keep])
    jax.block_until_ready(record["test_acc"][-1])  # completed, not dispatched
    observer.evaluated()

  def _result(self, seeds: list[int], record: dict[str, list], extra: dict[str, list], variance, fourth):
    keep = len(seeds)
    curves: dict[str, np.ndarray] = {
      k: np.stack([np.asarray(_gathered(v)) for v in vals], axis=1)[:keep] for k, vals in record.items()
    }
    grad_abs = curves.pop("grad_abs") if self.training.track_gradients else None
    curves.pop("grad_abs", None)
    return TrainResult(
      seeds=np.asarray(seeds),
      train_loss=curves["train_curve_loss"].mean(axis=2),
      train_acc=curves["train_curve_acc"].mean(axis=2),
      grad_abs=grad_abs,
      layer_names=self.fns.layer_names,
      init_mean_variance=np.asarray(_gathered(variance))[:keep],
      init_mean_fourth_moment=np.asarray(_gathered(fourth))[:keep],
      records={name: np.stack(values, axis=1) for name, values in extra.items()},
      **curves,
    )


def train_seeds(
  model: nn.Module,
  dataset: Dataset,
  seeds: Sequence[int],
  training: TrainSettings = TrainSettings(),  # noqa: B008 (frozen)
  optimizer: Optimizer = Optimizer(),  # noqa: B008 (a NamedTuple, immutable)
  *,
  data_seed: int = 0,
  seeds_per_chunk: int | None = None,
  seeds_per_vmap: int | None = None,
  devices: int | None = None,
  chunks: ArmChunks | None = None,
  observer: Observer = SILENT,
  epoch_records: Callable[[Any, Any], Mapping[str, Any]] | None = None,
) -> TrainResult:
  """Trains ``model`` from every init seed in ``seeds`` on ``dataset`` (§4.1), chunk by chunk.

  Args:
    model: a Flax linen module called as ``model(x, train=...)``; its kernel
      initializer decides the variant.
    dataset: a :class:`parewire_jax.experiments.Dataset` (NHWC float32
      images, int32 labels, train/val/test splits).
    seeds: init seeds; seed ``s`` initializes with ``jax.random.key(s)``.
    training: the schedule, batch sizes and what is recorded.
    optimizer: the optimizer, with the cosine schedule of ``training``.
    data_seed: the data order depends only on it.
    seeds_per_chunk: seeds trained at once (``None``: all of them); bounds
      memory, each chunk is a separate training run on the host.
    seeds_per_vmap: within a chunk, seeds vectorized together by ``vmap``
      (``None``: the whole chunk); smaller groups run one after the other.
      Results do not depend on it beyond float rounding.
    devices: the devices (of ``jax.devices()``, every process's) every
      chunk's seeds are sharded over, ``None``: all of them (see
      :class:`~parewire_jax.experiments.DeviceSettings`).
    chunks: the arm's saved chunks (``ChunkStore.arm``): every chunk found
      there (for exactly its seeds and ``training.epochs``) is loaded instead
      of trained, and every trained chunk is saved there with its wall time
      from initialization to the last evaluation.
    observer: told when a chunk is compiled, when training steps have
      *completed* (not only been dispatched) and when an epoch's evaluation
      has; a loaded chunk counts as all its steps and evaluations.
    epoch_records: computed after every evaluation from the chunk's initial
      and evaluated parameters (each with a leading axis of one row per seed;
      with LaPerm the evaluated ones are the exactly synchronised ones); each
      returned per-seed value becomes ``TrainResult.records[name]`` with an
      epoch axis, and is saved with the chunk.

  With ``optimizer.name == "laperm_adam"`` the validation and test
  evaluations use ``laperm_project(params, opt_state)``: after a sync step
  (the epoch's step count a multiple of ``sync_period``) this is exactly the
  synchronised network, otherwise the sync applied for evaluation only
  (training goes on from the unsynchronised weights). The training loss and
  accuracy are those seen by the steps, between syncs.

  Returns:
    A :class:`TrainResult` with one row per seed.

  >>> from parewire_jax.experiments import TrainSettings, build_model, kernel_initializer, load_dataset
  >>> model = build_model("mlp", 10, kernel_initializer("kaiming_normal", "rewired"), mlp_hidden=(16,))
  >>> data = load_dataset("digits", limit_train=256)
  >>> result = train_seeds(model, data, [0, 1], TrainSettings(epochs=2, batch_size=64, learning_rate=0.1))
  >>> result.val_acc.shape, result.train_curve_acc.shape, bool((result.val_acc > 0.1).all())
  ((2, 2), (2, 2, 4), True)
  """
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError("seeds must name at least one init seed.")
  training.check(len(dataset.x_train))
  size = seeds_per_chunk or len(seeds)
  planned = [seeds[start : start + size] for start in range(0, len(seeds), size)]
  # Every saved chunk is looked up before any device is touched, so a refused one fails at once.
  steps_per_epoch = len(dataset.x_train) // training.batch_size
  segments = segments_per_epoch(steps_per_epoch, training.segments_per_epoch)
  saved = [None if chunks is None else chunks.load(chunk, training.epochs, segments) for chunk in planned]
  trainer = ChunkTrainer(
    model,
    dataset,
    training,
    optimizer,
    data_seed=data_seed,
    chunk_size=size,
    seeds_per_vmap=seeds_per_vmap,
    devices=devices,
  )
  results: list[TrainResult] = []
  for chunk, loaded in zip(planned, saved, strict=True):
    if loaded is not None:
      observer.trained(training.epochs * steps_per_epoch)
      for _ in range(training.epochs):
        observer.evaluated()
      results.append(loaded)
      continue
    started = time.perf_counter()
    results.append(trainer.train(chunk, observer, epoch_records))
    if chunks is not None:
      chunks.save(results[-1], seconds=time.perf_counter() - started)
  return concatenate_results(results)


def concatenate_results(results: Sequence[TrainResult]) -> TrainResult:
  """The chunks' :class:`TrainResult` s joined along the seed axis, in order.

  >>> import numpy as np
  >>> def chunk(seeds):
  ...   curve = np.zeros((len(seeds), 1))
  ...   return TrainResult(np.array(seeds), *[curve] * 6, None, ("Dense_0/kernel",), np.ones(len(seeds)),
  ...                      np.ones(len(seeds)), curve[..., None], curve[..., None])
  >>> concatenate_results([chunk([0, 1]), chunk([2])]).seeds.tolist()
  [0, 1, 2]
  """
  if not results or len({r.layer_names for r in results}) != 1:
    raise ValueError("results must be a non-empty sequence of chunks of one model (same layer_names).")
  if len({r.grad_abs is None for r in results}) != 1:
    raise ValueError("results must all have grad_abs, or all not have it.")
  if len({tuple(sorted(r.records)) for r in results}) != 1:
    raise ValueError("results must all have the same records.")
  joined = {
    field: np.concatenate([getattr(r, field) for r in results])
    for field in TrainResult._fields
    if field not in ("layer_names", "grad_abs", "records")
  }
  grads = [r.grad_abs for r in results if r.grad_abs is not None]
  grad_abs = np.concatenate(grads) if grads else None
  records = {name: np.concatenate([r.records[name] for r in results]) for name in results[0].records}
  return TrainResult(layer_names=results[0].layer_names, grad_abs=grad_abs, records=records, **joined)
