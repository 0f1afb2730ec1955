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

from parewire_jax._checks import check_choice, check_int
from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.optimizers import OPTIMIZERS, make_optimizer
from parewire_jax.experiments.seeds import seed_keys
from parewire_jax.experiments.steps import eval_batches, make_step_functions


class TrainConfig(NamedTuple):
  """Training hyper-parameters; the defaults are §4.1's simple schedule.

  Attributes:
    epochs: planned epochs; the cosine schedule reaches 0 after the last one.
    batch_size: training batch size; the last incomplete batch of every
      (shuffled) epoch is dropped so all batches have one shape.
    learning_rate: initial learning rate of the cosine schedule.
    momentum: SGD momentum (PyTorch's heavy ball, as ``optax.sgd``); unused
      by the Adam optimizers.
    data_seed: seed of the shuffling, shared by all init seeds.
    seeds_per_chunk: seeds trained at once (``None``: all of them); bounds
      memory, each chunk is a separate training run on the host.
    seeds_per_vmap: within a chunk, seeds vectorized together by ``vmap``
      (``None``: the whole chunk); smaller groups run one after the other
      (``lax.map(..., batch_size=seeds_per_vmap)``), which on a CPU is
      often faster than one wide ``vmap``. Results do not depend on it beyond
      float rounding.
    eval_batch_size: batch size of the evaluations.
    track_gradients: record the mean |gradient| of every kernel per epoch
      (Fig. 5).
    optimizer: one of
      :data:`~parewire_jax.experiments.optimizers.OPTIMIZERS`: ``"sgd"`` (§4.1), ``"adam"``
      (``optax.adam``, default betas), or ``"laperm_adam"``
      (``laperm(optax.adam(schedule), sync_period)``: every kernel is
      permuted, biases and norms follow Adam). All use the cosine schedule.
    sync_period: LaPerm's sync period ``k`` in steps (LaPerm §4); used only by
      ``"laperm_adam"``.
  """

  epochs: int = 100
  batch_size: int = 128
  learning_rate: float = 0.01
  momentum: float = 0.9
  data_seed: int = 0
  seeds_per_chunk: int | None = None
  seeds_per_vmap: int | None = None
  eval_batch_size: int = 1000
  track_gradients: bool = False
  optimizer: str = "sgd"
  sync_period: int = 20


class TrainResult(NamedTuple):
  """Per-seed training records (NumPy; accuracies are fractions in [0, 1]).

  Attributes:
    seeds: the init seeds, shape ``(S,)``.
    train_loss, train_acc: running mean over the epoch's batches, as seen
      during training, shape ``(S, E)``.
    val_loss, val_acc, test_loss, test_acc: evaluations after every epoch,
      shape ``(S, E)``.
    grad_abs: mean |gradient| of every kernel averaged over the epoch's steps,
      shape ``(S, E, L)``, or ``None`` when not tracked.
    layer_names: the ``L`` kernels, as parameter paths.
    init_mean_variance: strength variance (mean of input and output) averaged
      over the kernels of the initial model, shape ``(S,)`` (Fig. 3's x-axis).
    init_mean_fourth_moment: the same for the fourth central moment μ₄(s)
      (Fig. 3's y-axis).
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


def check_config(config: TrainConfig, num_train: int | None = None) -> None:
  """Raises ValueError for settings that cannot be trained (on ``num_train`` examples, when given)."""
  check_int(config.epochs, "epochs")
  check_int(config.batch_size, "batch_size")
  check_int(config.eval_batch_size, "eval_batch_size")
  check_int(config.seeds_per_chunk, "seeds_per_chunk", allow_none=True)
  check_int(config.seeds_per_vmap, "seeds_per_vmap", allow_none=True)
  if not (config.learning_rate > 0 and np.isfinite(config.learning_rate)):
    raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}.")
  if not 0 <= config.momentum < 1:
    raise ValueError(f"momentum must be in [0, 1), got {config.momentum!r}.")
  check_choice(config.optimizer, OPTIMIZERS, "optimizer")
  check_int(config.sync_period, "sync_period")
  if num_train is not None and config.batch_size > num_train:
    raise ValueError(f"batch_size ({config.batch_size}) exceeds the {num_train} training examples; lower batch_size.")


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
    progress: called with 1 after every trained epoch of every chunk.
    inspect: called after every evaluation as ``inspect(chunk_seeds, epoch,
      params)``: the chunk's init seeds, the 0-based epoch and the evaluated
      parameters (a leading axis with one row per seed of ``chunk_seeds``;
      with LaPerm the exactly synchronised ones), e.g. to check or record
      them.
    load_chunk: called with each chunk's init seeds before training it; a
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
  """
  seeds = [int(s) for s in seeds]
  if not seeds:
    raise ValueError("seeds must name at least one init seed.")
  num_train = len(dataset.x_train)
  check_config(config, num_train)
  tx = make_optimizer(config, num_train // config.batch_size)
  x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
  init, epoch, evaluate, evaluated_params, layer_names = make_step_functions(
    model,
    tx,
    x_train[:1],
    seeds_per_vmap=config.seeds_per_vmap,
    track_gradients=config.track_gradients,
    laperm_evaluation=config.optimizer == "laperm_adam",
  )

  val = eval_batches(dataset.x_val, dataset.y_val, config.eval_batch_size)
  test = eval_batches(dataset.x_test, dataset.y_test, config.eval_batch_size)
  batches = [
    jnp.asarray(epoch_batches(config.data_seed, e, num_train, config.batch_size)) for e in range(config.epochs)
  ]

  chunk = config.seeds_per_chunk or len(seeds)
  results: list[TrainResult] = []
  for start in range(0, len(seeds), chunk):
    chunk_seeds = seeds[start : start + chunk]
    saved = load_chunk(chunk_seeds) if load_chunk is not None else None
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
        progress(config.epochs)
      continue
    started = time.perf_counter()
    keep = len(chunk_seeds)  # rows of the chunk's own seeds; the padding follows
    padded = chunk_seeds + [chunk_seeds[-1]] * (chunk - keep)
    params, state, opt_state, counts, variance, fourth = init(seed_keys(padded), x_train[:1])
    record: dict[str, list] = {
      k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "grad_abs")
    }
    for e in range(config.epochs):
      ((params, state, opt_state), counts), loss, acc, grad_abs = epoch(
        ((params, state, opt_state), counts), x_train, y_train, batches[e]
      )
      record["train_loss"].append(loss)
      record["train_acc"].append(acc)
      record["grad_abs"].append(grad_abs)
      evaluated = evaluated_params(params, opt_state, counts)
      for split, data in (("val", val), ("test", test)):
        split_loss, split_acc = evaluate(evaluated, state, *data)
        record[f"{split}_loss"].append(split_loss)
        record[f"{split}_acc"].append(split_acc)
      if inspect is not None:
        inspect(chunk_seeds, e, jax.tree.map(operator.itemgetter(slice(keep)), evaluated))
      if progress is not None:
        progress(1)
    curves = {k: np.stack([np.asarray(v) for v in vals], axis=1)[:keep] for k, vals in record.items()}
    grad_abs = curves.pop("grad_abs") if config.track_gradients else None
    curves.pop("grad_abs", None)
    results.append(
      TrainResult(
        seeds=np.asarray(chunk_seeds),
        grad_abs=grad_abs,
        layer_names=layer_names,
        init_mean_variance=np.asarray(variance)[:keep],
        init_mean_fourth_moment=np.asarray(fourth)[:keep],
        **curves,
      )
    )
    if save_chunk is not None:
      save_chunk(results[-1], seconds=time.perf_counter() - started)
  return concatenate_results(results)


def concatenate_results(results: Sequence[TrainResult]) -> TrainResult:
  """The chunks' :class:`TrainResult` s joined along the seed axis, in order."""
  if not results or len({r.layer_names for r in results}) != 1:
    raise ValueError("results must be a non-empty sequence of chunks of one model (same layer_names).")
  if len({r.grad_abs is None for r in results}) != 1:
    raise ValueError("results must all have grad_abs, or all not have it.")
  joined = {
    field: None if getattr(results[0], field) is None else np.concatenate([getattr(r, field) for r in results])
    for field in TrainResult._fields
    if field != "layer_names"
  }
  return TrainResult(layer_names=results[0].layer_names, **joined)
