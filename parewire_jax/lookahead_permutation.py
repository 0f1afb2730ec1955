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

A *weight vector* is the incoming weights of one output neuron (see
:mod:`parewire_jax.weight_vectors`); the sorted copy is stored in the leaf's
own shape. :func:`laperm` is the ``optax`` transformation, with
:class:`LaPermState`; :func:`find_laperm_state` locates that state inside
chained or wrapped optimizer states; :func:`laperm_project` is the bit-exact
synchronisation of a set of parameters (for evaluation, checkpoints and the
end of training). Pruning (§5.4) lives in :mod:`parewire_jax.pruning`, the
ranking and deviation metrics in :mod:`parewire_jax.diagnostics`.

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
residue. How often plain ``apply_updates`` is exact in practice is measured
in ``benchmarks/RESULTS.md`` (LaPerm section).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax
from jax.typing import DTypeLike

from parewire_jax._checks import check_scalar_int
from parewire_jax.selection import Where, select
from parewire_jax.weight_vectors import permute_to_ranking, sort_weight_vectors


def _is_masked(x: Any) -> bool:
  return isinstance(x, optax.MaskedNode)


def _map_weight_vectors(fn: Callable, masked_fn: Callable, sorted_init: Any, *trees: Any) -> Any:
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

  >>> import jax.numpy as jnp, optax
  >>> state = laperm(optax.sgd(0.1), 5).init({"w": jnp.array([[3.0], [1.0], [2.0]]), "b": jnp.zeros(1)})
  >>> int(state.count), state.sorted_init["w"].ravel().tolist(), state.sorted_init["b"]
  (0, [1.0, 2.0, 3.0], MaskedNode())
  """

  count: Array
  inner_state: optax.OptState
  sorted_init: optax.Params


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
  weight vector) at every step. ``parewire_jax.experiments.seeds`` shows one way to do it.

  Args:
    inner: the inner optimizer ``Opt`` (the paper uses Adam). Extra arguments
      to ``update`` are passed on to it.
    sync_period: the sync period ``k`` (a positive integer; may be an array,
      e.g. injected or scheduled by ``optax.inject_hyperparams``).
    where: ``(path, leaf) -> bool`` narrows the weight matrices that LaPerm
      permutes (default: the dense and convolution kernels, not embedding
      tables; ``where=parewire_jax.is_weight_matrix`` for every floating leaf
      with ``ndim >= 2``; see :mod:`parewire_jax.selection`); it runs once
      per weight matrix at ``init``. Unselected leaves (embeddings, biases,
      norms) follow ``inner``. With
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
  check_scalar_int(sync_period, "sync_period")
  if not isinstance(reset_state, (bool, np.bool_)):
    raise ValueError(f"reset_state must be a bool, got {reset_state!r}.")
  inner = optax.with_extra_args_support(inner)

  def init_fn(params: optax.Params) -> LaPermState:
    selected = select(params, where)
    sorted_init = jax.tree.map(
      lambda chosen, x: sort_weight_vectors(x) if chosen else optax.MaskedNode(),
      selected,
      params,
    )
    return LaPermState(
      count=jnp.zeros([], jnp.int32),
      inner_state=inner.init(params),
      sorted_init=sorted_init,
    )

  def update_fn(
    updates: optax.Updates, state: LaPermState, params: optax.Params | None = None, **extra_args: Any
  ) -> tuple[optax.Updates, LaPermState]:
    if params is None:
      raise ValueError("laperm needs params: call update(grads, state, params).")
    inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    count = optax.safe_increment(state.count)

    def synchronise():
      proposed = optax.apply_updates(params, inner_updates)
      targets = _map_weight_vectors(permute_to_ranking, lambda q: q, state.sorted_init, proposed)
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
    return new_updates, LaPermState(jnp.asarray(count), new_inner_state, state.sorted_init)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


def _apply_one(p: Array, u: Array) -> Array:
  """``optax.apply_updates`` on one leaf."""
  return jnp.asarray(p + u).astype(p.dtype)


def _exact_update(p: Array, t: Array, dtype: DTypeLike) -> Array:
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


def find_laperm_state(opt_state: optax.OptState) -> LaPermState:
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


def laperm_project(params: optax.Params, opt_state: optax.OptState) -> optax.Params:
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
  return _map_weight_vectors(permute_to_ranking, lambda p: p, state.sorted_init, params)
