"""The chunk loop: training many init seeds at once, everything else fixed (§4.1).

:func:`train_seeds` trains one model (one kernel initializer) from several
init seeds in a single ``jax.vmap`` over the seed axis
(:mod:`parewire_jax.experiments.seeds`). Only the init seed differs between
the models: the data order (:func:`epoch_batches`), the batches and the
learning-rate schedule come from ``TrainConfig.data_seed`` and are shared by
all seeds and, when the caller uses the same config, by all variants, as the
paper fixes "all other stochastic factors" (§4.1).

Seeds are trained in chunks of ``seeds_per_chunk`` when they do not fit at
once (the last chunk is padded with repeats of its last seed, so every chunk
reuses the same compiled code); each epoch and each evaluation is one call of
the jitted step functions of :mod:`parewire_jax.experiments.steps`, with the
optimizer of :mod:`parewire_jax.experiments.optimizers`. Finished chunks can
be saved and loaded back (resuming, see
:class:`~parewire_jax.experiments.checkpoint.ChunkStore`).

Every chunk is sharded over ``TrainConfig.devices`` devices (all of them by
default, every host's in a multi-process run): each device trains its own
share of the seeds (:func:`~parewire_jax.experiments.seeds.device_shares`)
on the replicated data, and the per-seed records are gathered to every
process when the chunk ends.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import make_optimizer
from parewire_jax.experiments.progress import TrainingProgress
from parewire_jax.experiments.seeds import SEED_AXIS, available_devices, device_shares, seed_mesh
from parewire_jax.experiments.settings import TrainConfig, check_train_config
from parewire_jax.experiments.steps import eval_batches, make_step_functions


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
      (``TrainConfig.segments_per_epoch``), shape ``(S, E, R)``; its mean over
      the last axis is ``train_loss``.
    train_curve_acc: the same for the training accuracy.

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


def segments_per_epoch(steps_per_epoch: int, requested: int) -> int:
  """The largest divisor of ``steps_per_epoch`` that is at most ``requested``: equal segments, one compiled scan.

  >>> segments_per_epoch(390, 10), segments_per_epoch(7, 10), segments_per_epoch(8, 3)
  (10, 7, 2)
  """
  return max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


_EVALUATIONS = ("val_loss", "val_acc", "test_loss", "test_acc")


def steps_of(config: TrainConfig, dataset: Dataset, num_seeds: int) -> int:
  """The training steps :func:`train_seeds` reports through ``progress`` for ``num_seeds`` seeds (all chunks)."""
  return _chunks(config, num_seeds) * config.epochs * (len(dataset.x_train) // config.batch_size)


def evaluations_of(config: TrainConfig, num_seeds: int) -> int:
  """The calls of ``evaluated`` :func:`train_seeds` makes for ``num_seeds`` seeds: one per epoch of each chunk."""
  return _chunks(config, num_seeds) * config.epochs


def evaluation_work(config: TrainConfig, dataset: Dataset) -> int:
  """One epoch's evaluation (validation and test) in training steps of about the same time, at least 1.

  An evaluated image weighs 3/4 of a trained one: ``n`` images are
  ``3n / (4 · batch_size)`` steps. By FLOPs a forward pass is a third of a
  training step, but on XLA:CPU the default ``compare`` run (LeNet, 30 seeds,
  4000 evaluated images) measured 0.72–0.82 of a training step's time per
  image, and a third made the bar's ETA 20–30 % short (``benchmarks/RESULTS.md``).

  >>> from parewire_jax.experiments.data import load_dataset
  >>> evaluation_work(TrainConfig(batch_size=128), load_dataset("digits"))  # 2 × 360 images
  4
  """
  images = len(dataset.x_val) + len(dataset.x_test)
  return max(1, round(3 * images / (4 * config.batch_size)))


def progress_bar(
  runs: int, config: TrainConfig, dataset: Dataset, num_seeds: int, *, enabled: bool = True
) -> TrainingProgress:
  """A ``TrainingProgress`` bar over ``runs`` calls of :func:`train_seeds`.

  Each call trains ``num_seeds`` seeds on ``dataset`` with ``config``; the
  bar's total is their training steps and their evaluations.
  """
  return TrainingProgress(
    runs * steps_of(config, dataset, num_seeds),
    evaluations=runs * evaluations_of(config, num_seeds),
    evaluation_work=evaluation_work(config, dataset),
    enabled=enabled,
  )


def _chunks(config: TrainConfig, num_seeds: int) -> int:
  return -(-num_seeds // (config.seeds_per_chunk or num_seeds))


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


def train_seeds(
  model: nn.Module,
  dataset: Dataset,
  seeds: Sequence[int],
  config: TrainConfig = TrainConfig(),  # noqa: B008 (a NamedTuple, immutable)
  *,
  progress: Callable[[int], Any] | None = None,
  compiled: Callable[[], Any] | None = None,
  evaluated: Callable[[], Any] | None = None,
  inspect: Callable[[list[int], int, Any], Any] | None = None,
  load_chunk: Callable[[list[int]], TrainResult | None] | None = None,
  save_chunk: Callable[..., Any] | None = None,
) -> TrainResult:
  """Trains ``model`` from every init seed in ``seeds`` on ``dataset`` (§4.1).

  Args:
    model: a Flax linen module called as ``model(x, train=...)``; its kernel
      initializer decides the variant.
    dataset: a :class:`parewire_jax.experiments.data.Dataset` (NHWC float32
      images, int32 labels, train/val/test splits).
    seeds: init seeds; seed ``s`` initializes with ``jax.random.key(s)``.
    config: hyper-parameters; the data order depends only on
      ``config.data_seed``.
    progress: called as ``progress(n)`` each time ``n`` more training steps
      of a chunk have *completed* (their records are computed, not only
      dispatched): after every segment of an epoch, and with a whole chunk's
      steps for a chunk ``load_chunk`` returns.
    compiled: called once a chunk's step functions are compiled and its
      models initialized, right before its first training step (a progress
      bar can leave compilation out of its rate).
    evaluated: called each time an epoch's evaluation (validation and test)
      of a chunk has completed, and once per epoch for a chunk ``load_chunk``
      returns (a progress bar can count evaluations as work, see
      ``evaluation_work`` in this module).
    inspect: called after every evaluation as ``inspect(chunk_seeds, epoch,
      params)``: the chunk's init seeds, the 0-based epoch and the evaluated
      parameters (a leading axis with one row per seed of ``chunk_seeds``;
      with LaPerm the exactly synchronised ones), e.g. to check or record
      them.
    load_chunk: called with each chunk's init seeds before training any; a
      :class:`TrainResult` it returns (for exactly these seeds and
      ``config.epochs``) is used instead of training the chunk, and
      ``inspect`` is not called for it (resuming, see
      :class:`~parewire_jax.experiments.checkpoint.ChunkStore`).
    save_chunk: called as ``save_chunk(chunk_result, seconds=...)`` after each
      trained chunk, with the chunk's records and its wall time from
      initialization to the last evaluation (the first trained chunk's time
      includes compiling).

  With ``config.optimizer == "laperm_adam"`` the validation and test
  evaluations use ``laperm_project(params, opt_state)``: after a sync step
  (the epoch's step count a multiple of ``sync_period``) this is exactly the
  synchronised network, otherwise the sync applied for evaluation only
  (training goes on from the unsynchronised weights). The training loss and
  accuracy are those seen by the steps, between syncs.

  Returns:
    A :class:`TrainResult` with one row per seed.

  >>> from parewire_jax.experiments import TrainConfig, build_model, kernel_initializer, load_dataset
  >>> model = build_model("mlp", 10, kernel_initializer("kaiming_normal", "rewired"), mlp_hidden=(16,))
  >>> data = load_dataset("digits", limit_train=256)
  >>> result = train_seeds(model, data, [0, 1], TrainConfig(epochs=2, batch_size=64, learning_rate=0.1))
  >>> result.val_acc.shape, result.train_curve_acc.shape, bool((result.val_acc > 0.1).all())
  ((2, 2), (2, 2, 4), True)
  """
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError("seeds must name at least one init seed.")
  num_train = len(dataset.x_train)
  check_train_config(config, num_train)
  steps_per_epoch = num_train // config.batch_size
  segments = segments_per_epoch(steps_per_epoch, config.segments_per_epoch)
  tx = make_optimizer(config, steps_per_epoch)
  chunk = config.seeds_per_chunk or len(seeds)
  chunks = [seeds[start : start + chunk] for start in range(0, len(seeds), chunk)]
  # Every saved chunk is looked up before any device is touched, so a refused one fails at once.
  saved_chunks = [None if load_chunk is None else load_chunk(chunk_seeds) for chunk_seeds in chunks]
  share, devices = device_shares(chunk, available_devices(config.devices))
  padded_chunk = share * devices  # every chunk is padded to this, so all reuse the same compiled code
  mesh = seed_mesh(devices)
  seed_sharding = NamedSharding(mesh, PartitionSpec(SEED_AXIS))

  def replicated(x: np.ndarray | Array) -> Array:  # the same value on every device of every process
    return _placed(np.asarray(x), NamedSharding(mesh, PartitionSpec()))

  x_train, y_train = replicated(dataset.x_train), replicated(dataset.y_train)
  example_x = replicated(dataset.x_train[:1])
  fns = make_step_functions(
    model,
    tx,
    example_x,
    seeds_per_vmap=config.seeds_per_vmap,
    track_gradients=config.track_gradients,
    laperm_evaluation=config.optimizer == "laperm_adam",
    mesh=mesh,
  )
  val = tuple(map(replicated, eval_batches(dataset.x_val, dataset.y_val, config.eval_batch_size)))
  test = tuple(map(replicated, eval_batches(dataset.x_test, dataset.y_test, config.eval_batch_size)))

  def epoch_segments(e: int) -> Array:
    indices = epoch_batches(config.data_seed, e, num_train, config.batch_size)
    return replicated(indices.reshape(segments, steps_per_epoch // segments, config.batch_size))

  compiled_ahead = False  # for the first trained chunk; every chunk has the same shapes
  results: list[TrainResult] = []
  for chunk_seeds, saved in zip(chunks, saved_chunks, strict=True):
    if saved is not None:
      saved_seeds = np.asarray(saved.seeds).tolist()
      if saved_seeds != chunk_seeds or np.shape(saved.val_acc) != (len(chunk_seeds), config.epochs):
        raise ValueError(
          f"load_chunk returned seeds {saved_seeds} with curves of shape "
          f"{np.shape(saved.val_acc)}; expected seeds {chunk_seeds} and ({len(chunk_seeds)}, "
          f"{config.epochs})."
        )
      results.append(saved)
      if progress is not None:
        progress(config.epochs * steps_per_epoch)
      if evaluated is not None:
        for _ in range(config.epochs):
          evaluated()
      continue
    started = time.perf_counter()
    keep = len(chunk_seeds)  # rows of the chunk's own seeds; the padding follows
    padded = np.asarray(chunk_seeds + [chunk_seeds[-1]] * (padded_chunk - keep), np.uint32)
    params, state, opt_state, counts, variance, fourth = fns.init(_placed(padded, seed_sharding), example_x)
    carry = ((params, state, opt_state), counts)
    if not compiled_ahead:  # jit reuses these executables; compiling now keeps it out of the training time
      fns.segment.lower(carry, x_train, y_train, epoch_segments(0)[0]).compile()
      for data in (val, test):
        fns.evaluate.lower(params, state, *data).compile()
      fns.evaluated_params.lower(params, opt_state, counts).compile()
      compiled_ahead = True
    jax.block_until_ready(carry)
    if compiled is not None:
      compiled()
    record: dict[str, list] = {k: [] for k in ("train_curve_loss", "train_curve_acc", "grad_abs", *_EVALUATIONS)}
    for e in range(config.epochs):
      losses, accuracies, grads = [], [], []
      for indices in epoch_segments(e):
        carry, loss, acc, grad_abs = fns.segment(carry, x_train, y_train, indices)
        losses.append(jax.block_until_ready(loss))  # progress counts completed steps, not dispatched ones
        accuracies.append(acc)
        grads.append(grad_abs)
        if progress is not None:
          progress(len(indices))
      record["train_curve_loss"].append(jnp.stack(losses, axis=1))
      record["train_curve_acc"].append(jnp.stack(accuracies, axis=1))
      record["grad_abs"].append(jnp.mean(jnp.stack(grads), axis=0))
      (params, state, opt_state), counts = carry
      evaluated_params = fns.evaluated_params(params, opt_state, counts)
      for split, data in (("val", val), ("test", test)):
        split_loss, split_acc = fns.evaluate(evaluated_params, state, *data)
        record[f"{split}_loss"].append(split_loss)
        record[f"{split}_acc"].append(split_acc)
      if evaluated is not None:
        jax.block_until_ready(record["test_acc"][-1])  # completed, not dispatched
        evaluated()
      if inspect is not None:
        readable = jax.tree.map(_gathered, evaluated_params)
        inspect(chunk_seeds, e, jax.tree.map(operator.itemgetter(slice(keep)), readable))
    curves: dict[str, np.ndarray] = {
      k: np.stack([np.asarray(_gathered(v)) for v in vals], axis=1)[:keep] for k, vals in record.items()
    }
    grad_abs = curves.pop("grad_abs") if config.track_gradients else None
    curves.pop("grad_abs", None)
    results.append(
      TrainResult(
        seeds=np.asarray(chunk_seeds),
        train_loss=curves["train_curve_loss"].mean(axis=2),
        train_acc=curves["train_curve_acc"].mean(axis=2),
        grad_abs=grad_abs,
        layer_names=fns.layer_names,
        init_mean_variance=np.asarray(_gathered(variance))[:keep],
        init_mean_fourth_moment=np.asarray(_gathered(fourth))[:keep],
        **curves,
      )
    )
    if save_chunk is not None:
      save_chunk(results[-1], seconds=time.perf_counter() - started)
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
  joined = {
    field: np.concatenate([getattr(r, field) for r in results])
    for field in TrainResult._fields
    if field not in ("layer_names", "grad_abs")
  }
  grads = [r.grad_abs for r in results if r.grad_abs is not None]
  grad_abs = np.concatenate(grads) if grads else None
  return TrainResult(layer_names=results[0].layer_names, grad_abs=grad_abs, **joined)
