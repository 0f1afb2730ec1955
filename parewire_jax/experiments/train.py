"""Training many init seeds at once, everything else fixed (§4.1).

:func:`train_seeds` trains one model (one kernel initializer) from several
init seeds in a single ``jax.vmap`` over the seed axis. Only the init seed
differs between the models: the data order, the batches and the
learning-rate schedule come from ``TrainConfig.data_seed`` and are shared by
all seeds and, when the caller uses the same config, by all variants, as the
paper fixes "all other stochastic factors" (§4.1).

One epoch is one jitted ``lax.scan`` over the batches; evaluation is a scan
over fixed-size batches of the evaluation set. Seeds are trained in chunks of
``seeds_per_chunk`` when they do not fit at once (the last chunk is padded
with repeats of its last seed, so every chunk reuses the same compiled code).

The optimizer is SGD with momentum (§4.1) or, by name, Adam or LaPerm around
Adam (Qiu & Suda 2020, :mod:`parewire_jax.lookahead_permutation`); with
LaPerm every evaluation sees the exactly synchronised parameters
(:func:`laperm_project`), so the evaluated kernels are weight-vector-wise
permutations of the initial ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from parewire_jax.lookahead_permutation import laperm, laperm_project
from parewire_jax.strength import strength_stats

OPTIMIZERS = ("sgd", "adam", "laperm_adam")


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
    optimizer: one of :data:`OPTIMIZERS`: ``"sgd"`` (§4.1), ``"adam"``
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


class BestEpoch(NamedTuple):
  """Model selection by validation accuracy (§4.2, Table 1)."""

  convergence_epoch: np.ndarray  # 1-based epoch of the best validation accuracy, (S,)
  test_acc: np.ndarray  # test accuracy at that epoch, (S,)


def select_best_epoch(val_acc, test_acc) -> BestEpoch:
  """Per seed: the epoch of the highest validation accuracy and the test accuracy there.

  Ties go to the earliest epoch (the first time the best accuracy is reached
  is when training converged). Epochs are 1-based.

  >>> best = select_best_epoch([[0.5, 0.9, 0.9, 0.8]], [[0.4, 0.85, 0.95, 0.9]])
  >>> best.convergence_epoch.tolist(), best.test_acc.tolist()
  ([2], [0.85])
  """
  val_acc = np.asarray(val_acc)
  test_acc = np.asarray(test_acc)
  if val_acc.ndim != 2 or val_acc.shape != test_acc.shape or val_acc.shape[1] < 1:
    raise ValueError(
      f"val_acc and test_acc must have the same shape (seeds, epochs >= 1), got {val_acc.shape} and {test_acc.shape}."
    )
  best = np.argmax(val_acc, axis=1)  # argmax returns the first maximum
  return BestEpoch(best + 1, np.take_along_axis(test_acc, best[:, None], axis=1)[:, 0])


def seed_keys(seeds: Sequence[int]) -> Array:
  """Typed PRNG keys ``jax.random.key(s)`` for the init seeds, stacked."""
  return jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32))


def _kernel_paths(params) -> list[tuple[str, Any]]:
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return [
    (jax.tree_util.keystr(path, simple=True, separator="/"), leaf)
    for path, leaf in leaves
    if getattr(path[-1], "key", None) == "kernel"
  ]


def kernels(params) -> dict[str, Any]:
  """The kernels (weights with a strength) of a parameter tree by path, e.g. ``"Dense_0/kernel"``."""
  return dict(_kernel_paths(params))


def _init_strength(params) -> tuple[Array, Array]:
  stats = [strength_stats(w) for _, w in _kernel_paths(params)]
  variance = jnp.mean(jnp.stack([s.mean_variance for s in stats]))
  fourth = jnp.mean(jnp.stack([(s.in_fourth_moment + s.out_fourth_moment) / 2 for s in stats]))
  return variance, fourth


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
  return int(value)


def check_config(config: TrainConfig, num_train: int | None = None) -> None:
  """Raises ValueError for settings that cannot be trained (on ``num_train`` examples, when given)."""
  _check_positive_int(config.epochs, "epochs")
  _check_positive_int(config.batch_size, "batch_size")
  _check_positive_int(config.eval_batch_size, "eval_batch_size")
  for name in ("seeds_per_chunk", "seeds_per_vmap"):
    if getattr(config, name) is not None:
      _check_positive_int(getattr(config, name), name)
  if not (config.learning_rate > 0 and np.isfinite(config.learning_rate)):
    raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}.")
  if not 0 <= config.momentum < 1:
    raise ValueError(f"momentum must be in [0, 1), got {config.momentum!r}.")
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {config.optimizer!r}.")
  _check_positive_int(config.sync_period, "sync_period")
  if num_train is not None and config.batch_size > num_train:
    raise ValueError(f"batch_size ({config.batch_size}) exceeds the {num_train} training examples; lower batch_size.")


def epoch_cosine_schedule(learning_rate: float, epochs: int, steps_per_epoch: int) -> optax.Schedule:
  """Cosine annealing from ``learning_rate`` to 0, stepped once per epoch (§4.1).

  Epoch ``e`` (0-based) uses ``learning_rate · (1 + cos(π e / epochs)) / 2``,
  like PyTorch's ``CosineAnnealingLR(T_max=epochs)`` stepped after each epoch.

  >>> schedule = epoch_cosine_schedule(0.01, 2, 10)
  >>> [round(float(schedule(s)), 6) for s in (0, 9, 10, 19)]
  [0.01, 0.01, 0.005, 0.005]
  """
  per_epoch = optax.cosine_decay_schedule(learning_rate, decay_steps=epochs)
  return lambda step: per_epoch(step // steps_per_epoch)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """``config.optimizer`` with the epoch-wise cosine schedule of ``config.learning_rate``.

  >>> tx = make_optimizer(TrainConfig(optimizer="laperm_adam", sync_period=5), 10)
  >>> import jax.numpy as jnp
  >>> type(tx.init({"w": jnp.eye(2)})).__name__
  'LaPermState'
  """
  schedule = epoch_cosine_schedule(config.learning_rate, config.epochs, steps_per_epoch)
  if config.optimizer == "sgd":
    return optax.sgd(schedule, momentum=config.momentum)
  if config.optimizer == "adam":
    return optax.adam(schedule)
  if config.optimizer == "laperm_adam":
    return laperm(optax.adam(schedule), config.sync_period)
  raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {config.optimizer!r}.")


def _padded_batches(x: np.ndarray, y: np.ndarray, batch_size: int):
  """Evaluation set cut into (num_batches, batch_size, ...) with a validity mask."""
  n = len(x)
  num_batches = max(1, -(-n // batch_size))
  pad = num_batches * batch_size - n
  mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
  x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
  y = np.concatenate([y, np.zeros(pad, y.dtype)])
  shape = (num_batches, batch_size)
  return (jnp.asarray(x.reshape(shape + x.shape[1:])), jnp.asarray(y.reshape(shape)), jnp.asarray(mask.reshape(shape)))


def _apply(model: nn.Module, params, state, x, train: bool):
  variables = {"params": params, **state}
  if train and state:
    logits, new_state = model.apply(variables, x, train=True, mutable=list(state))
    return logits, dict(new_state)
  return model.apply(variables, x, train=train), state


def _over_seeds(fn: Callable, seeds_per_vmap: int | None, *, shared_output: bool = False) -> Callable:
  """``fn(per_seed, shared)`` mapped over the leading (seed) axis of ``per_seed``.

  With ``shared_output``, ``fn`` returns ``(per_seed_output, same)`` where
  ``same`` does not depend on the seed; it is returned once, without a seed
  axis.
  """
  if seeds_per_vmap is None:
    return jax.vmap(fn, in_axes=(0, None), out_axes=(0, None) if shared_output else 0)
  if not shared_output:
    return lambda per_seed, shared: jax.lax.map(lambda p: fn(p, shared), per_seed, batch_size=seeds_per_vmap)

  def mapped(per_seed, shared):
    outputs, same = jax.lax.map(lambda p: fn(p, shared), per_seed, batch_size=seeds_per_vmap)
    return outputs, jax.tree.map(lambda x: x[0], same)  # one copy per seed, all equal

  return mapped


def _step_count_mask(opt_state_shapes):
  """``True`` at the integer scalars of one seed's optimizer state: step counts.

  optax's and LaPerm's ``count`` fields are the only integer scalars of the
  states of :data:`OPTIMIZERS`. Every seed takes the same steps, so they are
  equal across seeds and are kept out of the ``vmap`` over seeds: a
  ``lax.cond`` on a batched predicate computes both branches at every step,
  which would run LaPerm's synchronisation (a sort of every weight vector) at
  every step instead of every ``sync_period``-th.
  """
  return jax.tree.map(lambda x: x.ndim == 0 and jnp.issubdtype(x.dtype, jnp.integer), opt_state_shapes)


def _split_counts(mask, opt_state):
  """``(opt_state without its step counts, the step counts)``, ``None`` in the holes."""
  return (
    jax.tree.map(lambda is_count, x: None if is_count else x, mask, opt_state),
    jax.tree.map(lambda is_count, x: x if is_count else None, mask, opt_state),
  )


def _merge_counts(mask, per_seed, counts):
  return jax.tree.map(lambda is_count, x, c: c if is_count else x, mask, per_seed, counts)


def _make_functions(model: nn.Module, tx: optax.GradientTransformation, config: TrainConfig, example_x):
  """Jitted (init, epoch, evaluate, evaluated_params) over a leading seed axis, and the kernels' names.

  The optimizer state travels as ``(per-seed leaves, step counts)``, see
  :func:`_step_count_mask`.
  """
  one_seed = jax.eval_shape(lambda key: model.init(key, example_x, train=False), jax.random.key(0))
  mask = _step_count_mask(jax.eval_shape(tx.init, one_seed["params"]))

  def init_one(key, x):
    variables = dict(model.init(key, x, train=False))
    params = variables.pop("params")
    variance, fourth = _init_strength(params)
    opt_state, counts = _split_counts(mask, tx.init(params))
    return params, variables, opt_state, counts, variance, fourth

  def train_step_one(carry, shared):
    params, state, opt_state = carry
    (x, y), counts = shared

    def loss_fn(p):
      logits, new_state = _apply(model, p, state, x, train=True)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (new_state, jnp.mean(jnp.argmax(logits, -1) == y))

    (loss, (state, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, _merge_counts(mask, opt_state, counts), params)
    params = optax.apply_updates(params, updates)
    opt_state, counts = _split_counts(mask, opt_state)
    grad_abs = (
      jnp.stack([jnp.mean(jnp.abs(g)) for _, g in _kernel_paths(grads)]) if config.track_gradients else jnp.zeros(())
    )  # placeholder, dropped
    return ((params, state, opt_state), (loss, acc, grad_abs)), counts

  train_step = _over_seeds(train_step_one, config.seeds_per_vmap, shared_output=True)

  @jax.jit
  def epoch(carry, x_train, y_train, batch_indices):
    def body(carry, idx):
      per_seed, counts = carry
      (per_seed, records), counts = train_step(per_seed, ((x_train[idx], y_train[idx]), counts))
      return (per_seed, counts), records

    carry, (loss, acc, grad_abs) = jax.lax.scan(body, carry, batch_indices)
    # Per-step records averaged over the epoch; seed axis first.
    return carry, loss.mean(0), acc.mean(0), grad_abs.mean(0)

  def eval_one(variables, batch):
    params, state = variables
    x, y, mask = batch
    logits, _ = _apply(model, params, state, x, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(jnp.where(mask, losses, 0.0)), jnp.sum(mask & (jnp.argmax(logits, -1) == y))

  eval_batch = _over_seeds(eval_one, config.seeds_per_vmap)

  @jax.jit
  def evaluate(params, state, xs, ys, masks):
    def body(totals, batch):
      loss, correct = eval_batch((params, state), batch)
      return (totals[0] + loss, totals[1] + correct), None

    seeds = jax.tree.leaves(params)[0].shape[0]
    zeros = (jnp.zeros(seeds, jnp.float32), jnp.zeros(seeds, jnp.int32))
    (loss, correct), _ = jax.lax.scan(body, zeros, (xs, ys, masks))
    count = jnp.sum(masks)
    return loss / count, correct / count

  if config.optimizer == "laperm_adam":
    # Evaluate the exactly synchronised network (LaPerm §4 evaluates right after a sync).
    evaluated_params = jax.jit(
      jax.vmap(
        lambda params, opt_state, counts: laperm_project(params, _merge_counts(mask, opt_state, counts)),
        in_axes=(0, 0, None),
      )
    )
  else:
    evaluated_params = lambda params, opt_state, counts: params

  init = jax.jit(jax.vmap(init_one, in_axes=(0, None), out_axes=(0, 0, 0, None, 0, 0)))
  return init, epoch, evaluate, evaluated_params, tuple(kernels(one_seed["params"]))


def epoch_batches(data_seed: int, epoch: int, num_train: int, batch_size: int) -> np.ndarray:
  """Indices of epoch ``epoch``'s batches, ``(num_batches, batch_size)``, the same for every init seed."""
  order = np.random.default_rng([data_seed, epoch]).permutation(num_train)
  num_batches = num_train // batch_size
  return order[: num_batches * batch_size].reshape(num_batches, batch_size).astype(np.int32)


def train_seeds(
  model: nn.Module,
  dataset,
  seeds: Sequence[int],
  config: TrainConfig = TrainConfig(),
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
  init, epoch, evaluate, evaluated_params, layer_names = _make_functions(model, tx, config, x_train[:1])

  val = _padded_batches(dataset.x_val, dataset.y_val, config.eval_batch_size)
  test = _padded_batches(dataset.x_test, dataset.y_test, config.eval_batch_size)
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
    padded = chunk_seeds + [chunk_seeds[-1]] * (chunk - len(chunk_seeds))
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
        inspect(chunk_seeds, e, jax.tree.map(lambda x: x[: len(chunk_seeds)], evaluated))
      if progress is not None:
        progress(1)
    keep = len(chunk_seeds)
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
