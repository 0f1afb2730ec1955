"""LaPerm: training by reconnecting weights (Qiu & Suda, NeurIPS 2020).

Lookahead Permutation (LaPerm, §4, Algorithm 1) trains a network whose weights
only ever change place: before training it stores every weight vector of the
initial weights ``θ_0`` sorted ascending (``θ_sorted``); an inner optimizer
(e.g. Adam) then runs as usual, and every ``k`` steps (the sync period) each
weight vector is replaced by its sorted initial values permuted to the ranking
of the current weights: the k-th smallest initial value goes to the position
holding the k-th smallest current value (synchronisation,
``θ_t ← σ_{θ_t}(θ_sorted)``). After a multiple of ``k`` steps the network's
weights are a weight-vector-wise permutation of ``θ_0``.

A *weight vector* is the incoming weights of one output neuron: a column of a
Flax ``(n_in, n_out)`` kernel, or the ``kh·kw·c_in`` weights of one output
channel of a convolution kernel. The layout comes from
:func:`parewire_jax.as_matrices` with ``out_axis=-1``, the one place that knows
about axes; the sorted copy is stored in the original shape (each weight vector
sorted along the flattened input axes).

Contents:

* :func:`laperm`, an ``optax`` transformation wrapping an inner optimizer, with
  :class:`LaPermState`; :func:`find_laperm_state` locates that state inside
  chained or wrapped optimizer states.
* :func:`laperm_project`: the bit-exact synchronisation of a set of parameters
  (for evaluation, checkpoints and the end of training).
* :func:`random_prune`: random per-weight-vector pruning for the sparse
  experiments of §5.4–5.5 (the zeros become part of the permuted multiset).
* Diagnostics usable as training metrics under ``jit``:
  :func:`ranking_distance` (§3) and :func:`weight_deviation` (how far weights
  move from their initial values, arXiv:2012.02550).

Exactness of the sync update. ``optax`` applies updates by addition, and
``p + (t - p)`` is not always exactly ``t`` in floating point. The sync update
takes ``fl(t - p)``, or, where ``fl(p + fl(t - p)) != t``, its neighbouring
float on the side of ``t`` if that one lands on ``t``. Because ``u ↦ fl(p +
u)`` is monotone and ``fl(t - p)`` is the float nearest to the real ``t - p``,
one of the two is exact whenever *any* float update is, so
``optax.apply_updates`` reproduces the target bit for bit except where no
float update can; there (typically ``|t - p| ≫ |t|``: a weight whose synced
value is much smaller in magnitude than its pre-sync value) the result is
within 2 ulp of ``max(|p|, |t|)``. The neighbour is needed only when ``t`` is a
power of two (signed-constant initial weights, §5.5); for continuous initial
weights ``fl(t - p)`` is already the best. :func:`laperm_project` removes the
residue. Measured (``pytest -m slow -s tests/test_laperm.py -k exactness``;
784×100 float32 kernel, Adam, k = 20, random normal gradients, 10 syncs),
fraction of entries exactly synchronised by ``apply_updates``:

* He-uniform init, learning rate 1e-3: 99.58 % (the rest: impossible);
* He-uniform init, learning rate 1e-1 (weights move ~20× their initial
  scale between syncs): 23.6 %;
* signed constant ±2⁻⁵, learning rate 1e-3: 100 %.

In every case the exact entries are precisely those for which some float
update exists (checked against a search over neighbouring floats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax

from parewire_jax.axes import MatrixLayout, as_matrices, from_matrices
from parewire_jax.rewiring import (
  sort_exact,
  stable_argsort,
)
from parewire_jax.tree import is_weight_matrix, leaf_key

Where = Callable[[Any, Any], bool]


# ---------------------------------------------------------------------------
# Leaf selection and the weight-vector layout.


def _is_floating(path, leaf) -> bool:
  del path
  dtype = getattr(leaf, "dtype", None)
  return dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def _selection(where: Where | None, tree, eligible=is_weight_matrix):
  """A tree of Python bools: the leaves of ``tree`` that ``where`` selects.

  ``where=None`` selects the weight matrices; a selected leaf must be
  ``eligible`` (by default: hold weight vectors).
  """
  where = is_weight_matrix if where is None else where
  if not callable(where):
    raise ValueError(f"where must be None or a callable (path, leaf) -> bool, got {where!r}.")

  def select(path, leaf):
    chosen = where(path, leaf)
    if not isinstance(chosen, (bool, np.bool_)):
      raise ValueError(
        f"where must return a Python bool (it runs at trace time, once per "
        f"leaf); got {type(chosen).__name__} for leaf {jax.tree_util.keystr(path)}."
      )
    if chosen and not eligible(path, leaf):
      required = (
        "only floating arrays with ndim >= 2 have weight vectors"
        if eligible is is_weight_matrix
        else "only floating arrays can be selected"
      )
      raise ValueError(
        f"where selected leaf {jax.tree_util.keystr(path)} of shape "
        f"{getattr(leaf, 'shape', None)} and dtype {getattr(leaf, 'dtype', type(leaf))}; "
        f"{required}."
      )
    return bool(chosen)

  return jax.tree_util.tree_map_with_path(select, tree)


def _columns(x: Array) -> tuple[Array, MatrixLayout]:
  """``(n_out, n_in)``: row ``j`` is the weight vector of output neuron ``j``."""
  matrices, layout = as_matrices(x, out_axis=-1)
  return matrices[0].T, layout


def _from_columns(columns: Array, layout: MatrixLayout) -> Array:
  return from_matrices(columns.T[None], layout)


def _sort_weight_vectors(x: Array) -> Array:
  columns, layout = _columns(x)
  return _from_columns(sort_exact(columns), layout)


def _scatter_rows(indices: Array, values: Array) -> Array:
  """``out[r, indices[r, k]] = values[r, k]``; a permutation of each row."""
  return jax.vmap(lambda i, v: jnp.zeros_like(v).at[i].set(v, unique_indices=True))(indices, values)


def _permute_to_ranking(sorted_init: Array, reference: Array) -> Array:
  """Each weight vector of ``sorted_init`` permuted to the ranking of ``reference``.

  The k-th smallest value goes where ``reference`` holds its k-th smallest
  (ties by position), so the result is a bit-exact permutation per vector.
  """
  if reference.shape != sorted_init.shape:
    raise ValueError(
      f"params leaf has shape {reference.shape} but the LaPerm state holds weight vectors of shape {sorted_init.shape}."
    )
  if sorted_init.size == 0:
    return sorted_init
  sorted_columns, layout = _columns(sorted_init)
  reference_columns, _ = _columns(reference)
  order = stable_argsort(reference_columns)
  return _from_columns(_scatter_rows(order, sorted_columns), layout)


def _is_masked(x) -> bool:
  return isinstance(x, optax.MaskedNode)


def _map_weight_vectors(fn, masked_fn, sorted_init, *trees):
  """``fn`` on leaves holding weight vectors, ``masked_fn`` on the others."""
  return jax.tree.map(
    lambda s, *xs: masked_fn(*xs) if _is_masked(s) else fn(s, *xs),
    sorted_init,
    *trees,
    is_leaf=_is_masked,
  )


# ---------------------------------------------------------------------------
# The optimizer.


class LaPermState(NamedTuple):
  """State of :func:`laperm`.

  Attributes:
    count: int32 number of updates so far; update ``count`` (1-based) is a
      synchronisation when ``sync_period`` divides it (Algorithm 1).
    inner_state: the inner optimizer's state.
    sorted_init: a tree like the parameters: every selected leaf holds its
      initial weight vectors sorted ascending (``θ_sorted``, in the leaf's own
      shape, vectors laid out as by ``as_matrices(x, out_axis=-1)``); every
      unselected leaf is ``optax.MaskedNode()``.
  """

  count: Array
  inner_state: optax.OptState
  sorted_init: optax.Params


def _check_sync_period(sync_period) -> None:
  if isinstance(sync_period, jax.core.Tracer):
    return  # injected by optax.inject_hyperparams and traced: checked by the caller
  value = np.asarray(sync_period)
  if (
    value.shape != ()
    or isinstance(sync_period, bool)
    or value.dtype == np.bool_
    or not np.issubdtype(value.dtype, np.integer)
    or value < 1
  ):
    raise ValueError(f"sync_period must be a positive integer, got {sync_period!r}.")


def laperm(
  inner: optax.GradientTransformation,
  sync_period: int,
  *,
  where: Where | None = None,
  reset_state: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Lookahead Permutation around an inner optimizer (Algorithm 1, §4).

  ``init(params)`` stores every selected weight vector sorted ascending.
  ``update(grads, state, params)`` runs ``inner``; on updates whose 1-based
  count is a multiple of ``sync_period`` it instead returns, for every selected
  leaf, the update that moves ``params`` to its sorted initial weight vectors
  permuted to the ranking of ``optax.apply_updates(params, inner_updates)``
  (synchronisation, §4). Between syncs the updates are the inner optimizer's,
  bit for bit, and unselected leaves always follow it.

  The sync update is built so that ``optax.apply_updates`` lands exactly on the
  permuted values wherever a float update can (see the module docstring for
  the measured fraction); :func:`laperm_project` makes the rest exact. Apply
  the updates unchanged: put gradient transformations such as clipping before
  ``laperm`` in an ``optax.chain`` (or inside ``inner``), never after it.

  The sync is a ``lax.cond`` on the step count. Under ``jax.vmap`` over seeds
  keep the count unbatched (every seed takes the same steps): with a batched
  count the cond becomes a select that computes the sync (a sort of every
  weight vector) at every step. ``experiments.seeds`` shows one way to do it.

  Args:
    inner: the inner optimizer ``Opt`` (the paper uses Adam). Extra arguments
      to ``update`` are passed on to it.
    sync_period: the sync period ``k`` (a positive integer; may be an array,
      e.g. injected or scheduled by ``optax.inject_hyperparams``).
    where: ``where(path, leaf) -> bool`` selects the leaves that LaPerm
      permutes; it runs once per leaf at ``init``. Default: every floating leaf
      with ``ndim >= 2`` (kernels; biases and norms follow ``inner``). With
      ``optax.inject_hyperparams`` pass ``static_args="where"``.
    reset_state: re-initialise the inner optimizer state (``inner.init`` on the
      synchronised parameters) at every sync. This also restarts step counts
      inside ``inner``, such as a learning-rate schedule's; to keep a schedule
      running, wrap LaPerm instead, e.g. ``optax.inject_hyperparams(lambda
      learning_rate: laperm(optax.adam(learning_rate), k, reset_state=True))
      (learning_rate=schedule)``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is
    :class:`LaPermState`. ``update`` requires ``params``.

  >>> import jax, jax.numpy as jnp, optax
  >>> params = {"w": jax.random.normal(jax.random.key(0), (4, 3)), "b": jnp.zeros(3)}
  >>> opt = laperm(optax.adam(0.1), sync_period=2)
  >>> state = opt.init(params)
  >>> for _ in range(2):
  ...   grads = jax.tree.map(jnp.ones_like, params)
  ...   updates, state = opt.update(grads, state, params)
  ...   params = optax.apply_updates(params, updates)
  >>> w = laperm_project(params, state)["w"]
  >>> bool((jnp.sort(w, 0) == state.sorted_init["w"]).all())
  True
  """
  if not isinstance(inner, optax.GradientTransformation):
    raise ValueError(f"inner must be an optax.GradientTransformation, got {type(inner).__name__}.")
  _check_sync_period(sync_period)
  if not isinstance(reset_state, (bool, np.bool_)):
    raise ValueError(f"reset_state must be a bool, got {reset_state!r}.")
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    selected = _selection(where, params)
    sorted_init = jax.tree.map(
      lambda chosen, x: _sort_weight_vectors(x) if chosen else optax.MaskedNode(),
      selected,
      params,
    )
    return LaPermState(
      count=jnp.zeros([], jnp.int32),
      inner_state=inner.init(params),
      sorted_init=sorted_init,
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError("laperm needs params: call update(grads, state, params).")
    inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    count = optax.safe_increment(state.count)

    def synchronise():
      proposed = optax.apply_updates(params, inner_updates)
      targets = _map_weight_vectors(_permute_to_ranking, lambda q: q, state.sorted_init, proposed)
      sync_updates = _map_weight_vectors(
        lambda _, p, t, u: _exact_update(p, t, u.dtype),
        lambda p, t, u: u,
        state.sorted_init,
        params,
        targets,
        inner_updates,
      )
      if not reset_state:
        return sync_updates, inner_state
      fresh = optax.tree.cast_like(inner.init(targets), inner_state)
      return sync_updates, fresh

    is_sync = count % jnp.asarray(sync_period) == 0
    new_updates, new_inner_state = lax.cond(is_sync, synchronise, lambda: (inner_updates, inner_state))
    return new_updates, LaPermState(count, new_inner_state, state.sorted_init)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _apply_one(p: Array, u: Array) -> Array:
  """``optax.apply_updates`` on one leaf."""
  return jnp.asarray(p + u).astype(p.dtype)


def _exact_update(p: Array, t: Array, dtype) -> Array:
  """An update ``u`` with ``apply_updates(p, u) == t`` wherever one exists.

  ``fl(t - p)`` is the float nearest to the real ``t - p``; ``fl(p + u)`` is
  monotone in ``u``, and the ``u`` with ``fl(p + u) == t`` form an interval
  around the real ``t - p``. So if ``fl(t - p)`` misses, the only other
  candidate is its neighbour on the side of ``t``: any further float is
  outside the interval too.
  """
  first = jnp.asarray(t, dtype) - jnp.asarray(p, dtype)
  landed = _apply_one(p, first)
  toward = jnp.where(landed < t, jnp.inf, -jnp.inf).astype(first.dtype)
  second = jnp.nextafter(first, toward)
  use_second = (landed != t) & (_apply_one(p, second) == t)
  return jnp.where(use_second, second, first)


def find_laperm_state(opt_state) -> LaPermState:
  """The one :class:`LaPermState` inside a (chained, wrapped) optimizer state.

  Searches tuples, NamedTuples, dicts and other pytree nodes, so it finds the
  state under ``optax.chain``, ``optax.inject_hyperparams`` or
  ``optax.MultiSteps``.

  Raises:
    ValueError: if ``opt_state`` contains no LaPerm state, or more than one.

  >>> import jax.numpy as jnp, optax
  >>> opt = optax.chain(optax.clip(1.0), laperm(optax.sgd(0.1), 5))
  >>> find_laperm_state(opt.init({"w": jnp.eye(3)})).count.item()
  0
  """
  found = [
    node
    for node in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, LaPermState))
    if isinstance(node, LaPermState)
  ]
  if len(found) != 1:
    raise ValueError(
      f"opt_state must contain exactly one LaPermState, found {len(found)}; "
      "pass the LaPermState itself to disambiguate."
    )
  return found[0]


def laperm_project(params, opt_state):
  """Synchronises ``params`` exactly: ``σ_params(θ_sorted)`` (§4).

  Every leaf selected by :func:`laperm` is set to its sorted initial weight
  vectors permuted to the ranking of ``params`` (ties by position), bit for
  bit a permutation of the initial weight vectors; other leaves are returned
  unchanged. Use it for evaluation, checkpoints and at the end of training,
  where the rounding of ``optax.apply_updates`` must not remain.

  Args:
    params: a parameter tree with the structure given to ``init``.
    opt_state: the :class:`LaPermState`, or any optimizer state containing
      exactly one (see :func:`find_laperm_state`).

  Returns:
    The projected parameter tree.

  >>> import jax.numpy as jnp, optax
  >>> opt = laperm(optax.sgd(1.0), 10)
  >>> state = opt.init({"w": jnp.array([[1., 5.], [2., 6.], [3., 7.]])})
  >>> laperm_project({"w": jnp.array([[0., 9.], [-1., 8.], [4., 7.]])}, state)["w"].tolist()
  [[2.0, 7.0], [1.0, 6.0], [3.0, 5.0]]
  """
  state = find_laperm_state(opt_state)
  return _map_weight_vectors(_permute_to_ranking, lambda p: p, state.sorted_init, params)


# ---------------------------------------------------------------------------
# Random pruning (§5.4, §5.5).


def _check_fraction(fraction) -> float:
  try:
    value = float(fraction)
  except (TypeError, jax.errors.ConcretizationTypeError) as e:
    raise ValueError(f"fraction must be a concrete number in [0, 1], got {fraction!r}.") from e
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction!r}.")
  return value


def _prune_weight_vectors(key: Array, x: Array, fraction: float) -> Array:
  columns, layout = _columns(x)
  n_out, n_in = columns.shape
  num_pruned = round(fraction * n_in)
  if num_pruned == 0 or columns.size == 0:
    return x
  noise = jax.random.uniform(key, (n_out, n_in))
  pruned = jnp.argsort(noise, axis=-1)[:, :num_pruned]  # distinct positions per vector
  columns = jnp.put_along_axis(columns, pruned, jnp.zeros((), columns.dtype), axis=-1, inplace=False)
  return _from_columns(columns, layout)


def random_prune(key: Array, params, fraction: float, *, where: Where | None = None):
  """Sets a random ``fraction`` of every selected weight vector to zero (§5.4).

  LaPerm on sparse initial weights (§5.4, Fig. 5f, 7, 8; and the weight
  agnostic networks of §5.5) prunes ``θ_0`` before training; the zeros then
  belong to the multiset that synchronisation permutes, so connections move.
  In each weight vector (a column as laid out by ``as_matrices(x,
  out_axis=-1)``) of ``n`` entries exactly ``round(fraction * n)`` distinct
  entries (Python's ``round``, ties to even) chosen uniformly at random are
  set to ``0``; the others keep their values bit for bit.

  Args:
    key: a PRNG key. The leaf at ``path`` uses
      :func:`parewire_jax.leaf_key` ``(key, path)`` (a bare array has path
      ``()``), so adding or removing another leaf does not change which entries
      of this one are pruned.
    params: a parameter tree, or a single array.
    fraction: the pruned fraction ``p`` in ``[0, 1]`` (a concrete number).
    where: selects the leaves, as in :func:`laperm` (default: floating leaves
      with ``ndim >= 2``); a bare array is always pruned.

  Returns:
    ``params`` with the selected leaves pruned.

  >>> import jax, jax.numpy as jnp
  >>> w = random_prune(jax.random.key(0), jnp.ones((10, 3)), 0.3)
  >>> (w == 0).sum(axis=0).tolist()
  [3, 3, 3]
  """
  fraction = _check_fraction(fraction)
  if isinstance(params, jax.Array):
    if not is_weight_matrix((), params):
      raise ValueError(
        f"params must be a tree or a floating array with ndim >= 2, got shape {params.shape} and dtype {params.dtype}."
      )
    return _prune_weight_vectors(leaf_key(key, ()), params, fraction)
  selected = _selection(where, params)
  return jax.tree_util.tree_map_with_path(
    lambda path, chosen, x: _prune_weight_vectors(leaf_key(key, path), x, fraction) if chosen else x,
    selected,
    params,
  )


# ---------------------------------------------------------------------------
# Diagnostics.


class RankingDistance(NamedTuple):
  """Ranking distance of one weight array between two steps (§3, Fig. 3).

  Attributes:
    mean: ``D̄ / n``: the mean over all entries of ``|R_t − R_{t−1}|`` divided
      by the weight-vector size ``n`` (the paper plots ``D̄_t / 784``).
    std: ``SD[D] / n``: the population standard deviation, likewise relative.
  """

  mean: Array
  std: Array


class WeightDeviation(NamedTuple):
  """Distribution summary of ``Δ = w − w_init`` for one array (arXiv:2012.02550).

  Attributes:
    mean: mean of ``Δ``.
    std: population standard deviation of ``Δ``.
    mean_abs: mean of ``|Δ|``.
    max_abs: max of ``|Δ|``.
    relative: ``‖Δ‖ / ‖w_init‖`` (Frobenius norms; IEEE ``inf``/``nan`` when
      ``w_init`` is all zeros).
  """

  mean: Array
  std: Array
  mean_abs: Array
  max_abs: Array
  relative: Array


def _rankings(x: Array) -> Array:
  """``(n_out, n_in)`` rankings ``R_j`` (§3) of the weight vectors of ``x``."""
  columns, _ = _columns(x)
  order = stable_argsort(columns)
  positions = jnp.broadcast_to(jnp.arange(columns.shape[1], dtype=jnp.int32), order.shape)
  return _scatter_rows(order, positions)


def _ranking_distance_one(w_prev: Array, w_cur: Array) -> RankingDistance:
  if w_prev.shape != w_cur.shape:
    raise ValueError(f"w_prev and w_cur must have the same shape, got {w_prev.shape} and {w_cur.shape}.")
  distance = jnp.abs(_rankings(w_cur) - _rankings(w_prev))
  distance = distance.astype(jnp.promote_types(w_cur.dtype, jnp.float32))
  n_in = distance.shape[1]
  return RankingDistance(distance.mean() / n_in, distance.std() / n_in)


def _weight_deviation_one(w_init: Array, w: Array) -> WeightDeviation:
  if w_init.shape != w.shape:
    raise ValueError(f"params_init and params leaves must have the same shape, got {w_init.shape} and {w.shape}.")
  dtype = jnp.promote_types(jnp.result_type(w_init, w), jnp.float32)
  w_init = w_init.astype(dtype)
  delta = w.astype(dtype) - w_init
  magnitude = jnp.abs(delta)
  return WeightDeviation(
    mean=delta.mean(),
    std=delta.std(),
    mean_abs=magnitude.mean(),
    max_abs=magnitude.max(),
    relative=jnp.linalg.norm(delta.ravel()) / jnp.linalg.norm(w_init.ravel()),
  )


def _per_leaf(fn, where: Where | None, first, second, eligible):
  """``fn`` on every selected leaf pair; ``None`` at unselected leaves."""
  if isinstance(first, jax.Array) and isinstance(second, jax.Array):
    return fn(first, second)
  selected = _selection(where, first, eligible)
  return jax.tree.map(lambda chosen, a, b: fn(a, b) if chosen else None, selected, first, second)


def ranking_distance(w_prev, w_cur, *, where: Where | None = None):
  """Mean and SD of the change in rank within each weight vector (§3, Fig. 3).

  The ranking ``R_j`` of weight vector ``w_j`` holds the rank of each entry
  within the vector (ties by position); ``D_j = |R_{j,t} − R_{j,t−1}|``. Over
  all entries of a weight array the mean and population SD of ``D`` are
  returned divided by the weight-vector size ``n_in`` (Fig. 3 plots
  ``D̄_t / 784``). Weight vectors are laid out as by ``as_matrices(w,
  out_axis=-1)``.

  Args:
    w_prev: the weights at the earlier step: an array (ndim ≥ 2) or a tree.
    w_cur: the weights at the later step, same structure and shapes.
    where: for trees, selects the leaves (default: floating, ``ndim >= 2``).

  Returns:
    A :class:`RankingDistance` for arrays; for trees, a tree with a
    :class:`RankingDistance` at every selected leaf and ``None`` elsewhere.

  >>> import jax.numpy as jnp
  >>> d = ranking_distance(jnp.array([[1.], [2.], [3.], [4.]]),
  ...                      jnp.array([[4.], [2.], [3.], [1.]]))
  >>> float(d.mean), float(d.std)
  (0.375, 0.375)
  """
  return _per_leaf(_ranking_distance_one, where, w_prev, w_cur, is_weight_matrix)


def weight_deviation(params_init, params, *, where: Where | None = None):
  """Per-array distribution summary of ``w − w_init`` (arXiv:2012.02550).

  Large networks trained well stay close to their initial weights; this
  tracks how far, per layer: mean, SD, mean and max of ``|Δ|``, and
  ``‖Δ‖/‖w_init‖``, computed in at least float32. Usable under ``jit`` as a
  metric.

  Args:
    params_init: the initial weights: an array or a tree.
    params: the current weights, same structure and shapes.
    where: for trees, selects the leaves (default: floating, ``ndim >= 2``;
      pass ``lambda path, leaf: True`` to include biases).

  Returns:
    A :class:`WeightDeviation` for arrays; for trees, a tree with one at every
    selected leaf and ``None`` elsewhere.

  >>> import jax.numpy as jnp
  >>> d = weight_deviation(jnp.array([3., 4.]), jnp.array([6., 8.]))
  >>> float(d.mean), float(d.max_abs), float(d.relative)
  (3.5, 4.0, 1.0)
  """
  return _per_leaf(_weight_deviation_one, where, params_init, params, _is_floating)
