"""The jitted computations of training over a seed axis: init, epoch, evaluation.

:func:`make_step_functions` builds them for one model and optimizer. An
epoch runs as a few segments, each one ``lax.scan`` of training steps over a
slice of the epoch's batches (so progress can be reported on completed work);
an evaluation is a ``lax.scan`` over fixed-size batches of the evaluation set
(:func:`eval_batches`). Every function takes and returns trees with a leading
seed axis, mapped by :func:`~parewire_jax.experiments.seeds.over_seeds`, and
the optimizer state travels as ``(per-seed leaves, step counts)`` (see
:func:`~parewire_jax.experiments.seeds.step_count_mask`). With LaPerm, the
evaluated parameters are the exactly synchronised ones
(:func:`~parewire_jax.lookahead_permutation.laperm_project`), so the
evaluated kernels are weight-vector-wise permutations of the initial ones.

Each function is a ``jax.shard_map`` over a 1-D mesh of devices
(:func:`~parewire_jax.experiments.seeds.seed_mesh`): the seed axis is split
over the devices and everything else (data, batch indices, step counts) is
replicated, so every device runs, on its own seeds, the program one device
runs on as many seeds, and nothing crosses devices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh, PartitionSpec

from parewire_jax.experiments.models import kernels
from parewire_jax.experiments.seeds import (
  SEED_AXIS,
  merge_counts,
  over_seeds,
  seed_keys,
  split_counts,
  step_count_mask,
)
from parewire_jax.lookahead_permutation import laperm_project
from parewire_jax.strength import strength_stats


class StepFunctions(NamedTuple):
  """What :func:`make_step_functions` builds; all but ``layer_names`` jitted, over a leading seed axis.

  Attributes:
    init: ``(seeds, x) -> (params, state, opt_state, counts, variance,
      fourth)``: from ``uint32`` init seeds (``jax.random.key(s)``), the
      initial model of every seed, its optimizer state and step counts, and
      its kernels' mean strength variance and fourth moment.
    segment: ``(((params, state, opt_state), counts), x_train, y_train,
      batch_indices) -> (carry, loss, acc, grad_abs)``: one training step per
      row of ``batch_indices`` and the per-seed records averaged over them.
    evaluate: ``(params, state, xs, ys, masks) -> (loss, acc)`` on
      :func:`eval_batches`.
    evaluated_params: ``(params, opt_state, counts) -> params`` to evaluate.
    layer_names: the kernels' paths, e.g. ``"Dense_0/kernel"``.
  """

  init: Callable
  segment: Callable
  evaluate: Callable
  evaluated_params: Callable
  layer_names: tuple[str, ...]


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[Array, Array, Array]:
  """An evaluation set cut into ``(num_batches, batch_size, ...)`` with a validity mask."""
  n = len(x)
  num_batches = max(1, -(-n // batch_size))
  pad = num_batches * batch_size - n
  mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
  x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
  y = np.concatenate([y, np.zeros(pad, y.dtype)])
  shape = (num_batches, batch_size)
  return (jnp.asarray(x.reshape(shape + x.shape[1:])), jnp.asarray(y.reshape(shape)), jnp.asarray(mask.reshape(shape)))


def _apply(model: nn.Module, params: Any, state: dict, x: Array, train: bool) -> tuple[Any, dict]:
  variables = {"params": params, **state}
  if train and state:
    logits, new_state = model.apply(variables, x, train=True, mutable=list(state))
    return logits, dict(new_state)
  return model.apply(variables, x, train=train), state


def _init_strength(params: Any) -> tuple[Array, Array]:
  stats = [strength_stats(w) for w in kernels(params).values()]
  variance = jnp.mean(jnp.stack([s.mean_variance for s in stats]))
  fourth = jnp.mean(jnp.stack([(s.in_fourth_moment + s.out_fourth_moment) / 2 for s in stats]))
  return variance, fourth


def _segment(
  model: nn.Module, tx: optax.GradientTransformation, mask: Any, *, seeds_per_vmap: int | None, track_gradients: bool
) -> Callable:
  """``(carry, x_train, y_train, batch_indices) -> (carry, loss, acc, grad_abs)``: a scan of training steps."""

  def train_step_one(carry, shared):
    params, state, opt_state = carry
    (x, y), counts = shared

    def loss_fn(p):
      logits, new_state = _apply(model, p, state, x, train=True)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (new_state, jnp.mean(jnp.argmax(logits, -1) == y))

    (loss, (state, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, merge_counts(mask, opt_state, counts), params)
    params = optax.apply_updates(params, updates)
    opt_state, counts = split_counts(mask, opt_state)
    grad_abs = (
      jnp.stack([jnp.mean(jnp.abs(g)) for g in kernels(grads).values()]) if track_gradients else jnp.zeros(())
    )  # placeholder, dropped
    return ((params, state, opt_state), (loss, acc, grad_abs)), counts

  train_step = over_seeds(train_step_one, seeds_per_vmap, shared_output=True)

  def segment(carry, x_train, y_train, batch_indices):
    def body(carry, idx):
      per_seed, counts = carry
      (per_seed, records), counts = train_step(per_seed, ((x_train[idx], y_train[idx]), counts))
      return (per_seed, counts), records

    carry, (loss, acc, grad_abs) = jax.lax.scan(body, carry, batch_indices)
    # Per-step records averaged over the segment; seed axis first.
    return carry, loss.mean(0), acc.mean(0), grad_abs.mean(0)

  return segment


def _evaluate(model: nn.Module, seeds_per_vmap: int | None) -> Callable:
  """``(params, state, xs, ys, masks) -> (loss, acc)`` per seed, over :func:`eval_batches`."""

  def eval_one(variables, batch):
    params, state = variables
    x, y, valid = batch
    logits, _ = _apply(model, params, state, x, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(jnp.where(valid, losses, 0.0)), jnp.sum(valid & (jnp.argmax(logits, -1) == y))

  eval_batch = over_seeds(eval_one, seeds_per_vmap)

  def evaluate(params, state, xs, ys, masks):
    def body(totals, batch):
      loss, correct = eval_batch((params, state), batch)
      return (totals[0] + loss, totals[1] + correct), None

    seeds = jax.tree.leaves(params)[0].shape[0]
    # Per-seed totals vary over the devices' seeds, as shard_map's scan must be told.
    zeros = jax.lax.pcast((jnp.zeros(seeds, jnp.float32), jnp.zeros(seeds, jnp.int32)), SEED_AXIS, to="varying")
    (loss, correct), _ = jax.lax.scan(body, zeros, (xs, ys, masks))
    count = jnp.sum(masks)
    return loss / count, correct / count

  return evaluate


def make_step_functions(
  model: nn.Module,
  tx: optax.GradientTransformation,
  example_x: Array,
  *,
  seeds_per_vmap: int | None,
  track_gradients: bool,
  laperm_evaluation: bool,
  mesh: Mesh,
) -> StepFunctions:
  """The jitted steps of training ``model`` with ``tx`` from many seeds at once.

  Args:
    model: a Flax linen module called as ``model(x, train=...)``.
    tx: the optimizer.
    example_x: one batch of inputs, to trace the model.
    seeds_per_vmap: seeds vectorized together (``None``: all), see
      :func:`~parewire_jax.experiments.seeds.over_seeds`.
    track_gradients: record the mean |gradient| of every kernel per step;
      otherwise the epoch's ``grad_abs`` is a placeholder.
    laperm_evaluation: evaluate ``laperm_project(params, opt_state)`` (``tx``
      must contain a LaPerm state) instead of ``params``.
    mesh: the devices, a 1-D mesh with the axis ``"seeds"``; the seed axis
      of every argument and result is split over it, so its length must be a
      multiple of the mesh's size.
  """
  per_seed, replicated = PartitionSpec(SEED_AXIS), PartitionSpec()

  def sharded(fn: Callable, in_specs: tuple, out_specs: Any) -> Callable:
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))

  one_seed = jax.eval_shape(lambda key: model.init(key, example_x, train=False), jax.random.key(0))
  mask = step_count_mask(jax.eval_shape(tx.init, one_seed["params"]))

  def init_one(key, x):
    variables = dict(model.init(key, x, train=False))
    params = variables.pop("params")
    variance, fourth = _init_strength(params)
    opt_state, counts = split_counts(mask, tx.init(params))
    return params, variables, opt_state, counts, variance, fourth

  segment = _segment(model, tx, mask, seeds_per_vmap=seeds_per_vmap, track_gradients=track_gradients)
  evaluate = _evaluate(model, seeds_per_vmap)

  def evaluated_params(params, opt_state, counts):
    if laperm_evaluation:
      # Evaluate the exactly synchronised network (LaPerm §4 evaluates right after a sync).
      return jax.vmap(lambda p, o: laperm_project(p, merge_counts(mask, o, counts)))(params, opt_state)
    return params

  def init(seeds, x):
    return jax.vmap(init_one, in_axes=(0, None), out_axes=(0, 0, 0, None, 0, 0))(seed_keys(seeds), x)

  return StepFunctions(
    sharded(init, (per_seed, replicated), (per_seed, per_seed, per_seed, replicated, per_seed, per_seed)),
    sharded(
      segment,
      ((per_seed, replicated), replicated, replicated, replicated),
      ((per_seed, replicated), per_seed, per_seed, per_seed),
    ),
    sharded(evaluate, (per_seed, per_seed, replicated, replicated, replicated), per_seed),
    sharded(evaluated_params, (per_seed, per_seed, replicated), per_seed),
    tuple(kernels(one_seed["params"])),
  )
