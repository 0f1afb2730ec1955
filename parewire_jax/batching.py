"""``batch_rewiring``: the rewiring calls of one traced function, one batched scan per shape.

A jitted ``model.init`` calls every kernel's initializer inside one trace, and
XLA inlines every call: a model whose kernels are ``rewired(...)`` compiles
and runs two scans per kernel, one kernel after another, even when dozens of
kernels share a shape. The calls never depend on each other (each kernel is
drawn from its own key), so they can run together.

:func:`batch_rewiring` is a function transformation in the manner of
:func:`jax.vmap`: it traces the function to a jaxpr, finds the calls of the
rewiring engine (:func:`parewire_jax.rewiring.rewire_stack`, through which
every entry point goes), and evaluates the jaxpr with the calls of equal
shape that do not depend on each other stacked into one call of one compiled
program: batched (``vmap``) on a GPU or TPU, a loop around the one scan on
the CPU (:func:`parewire_jax.rewiring.over_stack`). Each result is bit for
bit what the call alone returns; only the schedule changes.

The schedule: a call's *stage* is the number of rewiring calls on the
longest chain of calls its operands depend on (0 for every kernel of an
ordinary init). The evaluation runs stage by stage: first every other
equation of the stage, in program order, then the stage's calls, grouped by
(engine program, operand types) and stacked in chunks of at most
``max_group_bytes``. Nested ``jit`` calls that contain rewiring (``nnx.jit``,
a jitted sub-initializer) are inlined so that their calls join the groups;
calls inside loops or conditionals (``nn.scan``, ``lax.cond``) stay where
they are, as do all calls of a function with side effects.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np

from parewire_jax._checks import check_int
from parewire_jax.rewiring import over_stack
from parewire_jax.tree import chunk_sizes, default_group_bytes

_ENGINE_NAME = "rewire_stack"
_ENGINE_MODULE = "parewire_jax/rewiring.py"


def _is_rewiring_call(eqn) -> bool:
  """Whether a jaxpr equation is a call of the rewiring engine (a ``jit`` of ``rewire_stack``)."""
  if eqn.params.get("name") != _ENGINE_NAME or "jaxpr" not in eqn.params:
    return False
  if len(eqn.invars) != 2 or len(eqn.outvars) != 1:  # (keys, matrices) -> matrices
    return False
  info = eqn.params["jaxpr"].jaxpr.debug_info
  return info is None or _ENGINE_MODULE in (info.func_src_info or "").replace("\\", "/")


@functools.lru_cache(maxsize=256)
def _contains_rewiring(jaxpr) -> bool:
  return any(_is_rewiring_call(eqn) or _inlinable(eqn) for eqn in jaxpr.eqns)


def _inlinable(eqn) -> bool:
  """A nested ``jit`` whose body (at any depth) calls the engine; it is evaluated inline."""
  return (
    eqn.primitive.name in ("jit", "pjit")
    and not _is_rewiring_call(eqn)
    and "jaxpr" in eqn.params
    and _contains_rewiring(eqn.params["jaxpr"].jaxpr)
  )


class _Node(NamedTuple):
  """One equation of the flattened program, its operands and results as keys into the environment."""

  eqn: Any
  inputs: tuple  # each an environment key, or ("literal", value)
  outputs: tuple  # environment keys; None for a dropped result


class _Flattener:
  """Flattens a closed jaxpr into nodes, inlining the nested jits that call the engine."""

  def __init__(self):
    self.nodes: list[_Node] = []
    self.constants: dict = {}
    self._scopes = 0

  def flatten(self, jaxpr, consts: Sequence[Any], inputs: Sequence[Any]) -> list:
    """Adds ``jaxpr``'s equations, its invars bound to ``inputs`` (keys); returns its outvars' keys."""
    scope = self._scopes
    self._scopes += 1
    env: dict = {}
    for var, value in zip(jaxpr.constvars, consts, strict=True):
      env[var] = ("const", scope, var)
      self.constants[env[var]] = value
    for var, key in zip(jaxpr.invars, inputs, strict=True):
      env[var] = key

    def read(atom):
      return ("literal", atom.val) if isinstance(atom, jex.core.Literal) else env[atom]

    for eqn in jaxpr.eqns:
      operands = tuple(read(v) for v in eqn.invars)
      if _inlinable(eqn):
        inner = eqn.params["jaxpr"]
        results = self.flatten(inner.jaxpr, inner.consts, operands)
      else:
        results = [None if isinstance(v, jex.core.DropVar) else ("var", scope, v) for v in eqn.outvars]
        self.nodes.append(_Node(eqn, operands, tuple(results)))
      for var, key in zip(eqn.outvars, results, strict=True):
        if not isinstance(var, jex.core.DropVar):
          env[var] = key
    return [read(v) for v in jaxpr.outvars]


def _stages(nodes: list[_Node]) -> list[int]:
  """Each node's stage: the most engine calls on a chain of dependencies leading to its operands."""
  depth: dict = {}
  stages = []
  for node in nodes:
    stage = max((depth.get(k, 0) for k in node.inputs if k[0] != "literal"), default=0)
    stages.append(stage)
    after = stage + 1 if _is_rewiring_call(node.eqn) else stage
    for key in node.outputs:
      if key is not None:
        depth[key] = after
  return stages


def _bind(eqn, operands: Sequence[Any]) -> list:
  """Evaluates one equation as ``jax.core.eval_jaxpr`` does (in its recorded context: compute type, …)."""
  bound = eqn.primitive.get_bind_params(eqn.params)
  subfuns, params = bound if isinstance(bound, tuple) else ((), bound)  # jax < 0.8 returned (subfuns, params)
  context = getattr(getattr(eqn, "ctx", None), "manager", contextlib.nullcontext())
  with context:
    results = eqn.primitive.bind(*subfuns, *operands, **params)
  return list(results) if eqn.primitive.multiple_results else [results]


@functools.lru_cache(maxsize=256)
def _batched_engine(closed_jaxpr) -> Callable:
  """The engine call ``closed_jaxpr`` over a new leading axis, compiled once per shape.

  Batched on a GPU or TPU, a loop over the one call on the CPU, as the engine
  does with a stack (:func:`parewire_jax.rewiring.over_stack`).
  """
  engine = jex.core.jaxpr_as_fun(closed_jaxpr)  # (keys, matrices) -> [matrices]
  return jax.jit(over_stack(lambda keys, matrices: engine(keys, matrices)[0]))


def _matrix_bytes(operands: Sequence[Any]) -> int:
  """The bytes of an engine call's matrices (its floating operand; keys are not counted, as in rewire_params)."""
  types = [jax.typeof(x) for x in operands]
  return sum(t.size * t.dtype.itemsize for t in types if jnp.issubdtype(t.dtype, jnp.floating))


def _run_group(calls: list[tuple[_Node, list]], max_group_bytes: int) -> list[list]:
  """Runs same-typed engine calls stacked, in balanced chunks of at most ``max_group_bytes``."""
  engine = _batched_engine(calls[0][0].eqn.params["jaxpr"])
  per_call = max(1, _matrix_bytes(calls[0][1]))
  results: list[list] = []
  start = 0
  for size in chunk_sizes(len(calls), max(1, max_group_bytes // per_call)):
    chunk = calls[start : start + size]
    start += size
    if size == 1:
      results.append(_bind(chunk[0][0].eqn, chunk[0][1]))
      continue
    stacked = [jnp.stack(column) for column in zip(*(operands for _, operands in chunk), strict=True)]
    outputs = engine(*stacked)
    results.extend([outputs[i]] for i in range(size))
  return results


def _evaluate(nodes: list[_Node], env: dict, max_group_bytes: int) -> None:
  """Evaluates the nodes stage by stage, the engine calls of a stage grouped and batched."""

  def read(key):
    return key[1] if key[0] == "literal" else env[key]

  def write(node, values):
    for key, value in zip(node.outputs, values, strict=True):
      if key is not None:
        env[key] = value

  stages = _stages(nodes)
  for stage in range(max(stages, default=-1) + 1):
    groups: dict[tuple, list[tuple[_Node, list]]] = {}
    for node, node_stage in zip(nodes, stages, strict=True):
      if node_stage != stage:
        continue
      operands = [read(k) for k in node.inputs]
      if _is_rewiring_call(node.eqn):
        signature = (id(node.eqn.params["jaxpr"]), tuple(jax.typeof(x) for x in operands))
        groups.setdefault(signature, []).append((node, operands))
      else:
        write(node, _bind(node.eqn, operands))
    for calls in groups.values():
      for (node, _), values in zip(calls, _run_group(calls, max_group_bytes), strict=True):
        write(node, values)


def batch_rewiring(fn: Callable[..., Any], *, max_group_bytes: int | None = None) -> Callable[..., Any]:
  """Transforms ``fn`` so that its rewiring calls compile once per shape and run together.

  ``batch_rewiring(fn)(*args)`` returns exactly ``fn(*args)``, bit for bit,
  but the independent calls of :func:`parewire_jax.rewired` initializers (and
  of :func:`parewire_jax.rewire`, :func:`parewire_jax.pa_rewire`) inside
  ``fn`` that have the same matrix shape, dtype and settings run together, in
  one compiled program per shape instead of one per kernel (one batched scan
  on a GPU or TPU, a loop around one scan on the CPU). Wrap a model's
  ``init`` (``jax.jit(batch_rewiring(model.init))``) or a function that
  builds an ``nnx`` module; keep ``kernel_init=rewired(...)`` as it is.

  Arrays among ``args``/``kwargs`` (and their pytrees) are traced; every other
  leaf (a Python ``bool`` such as ``train=False``, a string, ``None``) is
  passed to ``fn`` as it is, like a static argument. ``fn`` is traced anew on
  every call; put ``jax.jit`` outside to compile once. Eagerly, each group
  still compiles once per shape and runs as one call.

  Args:
    fn: any function whose outputs are a pytree of arrays (``nnx`` modules
      included).
    max_group_bytes: the most bytes of matrices stacked into one call, as in
      :func:`parewire_jax.rewire_params` (default: the device's free memory
      over 16 where it reports it, else 256 MiB).

  Returns:
    A function with ``fn``'s signature and results.

  Calls inside ``lax.scan``/``nn.scan`` bodies or conditionals are left where
  they are (rewire stacked layers with ``rewired(..., batch_axis=0)`` instead),
  and a function with side effects (callbacks, prints) is called unchanged.

  >>> import jax, jax.numpy as jnp, flax.linen as nn
  >>> from jax.nn.initializers import he_normal
  >>> from parewire_jax import rewired
  >>> class MLP(nn.Module):
  ...   @nn.compact
  ...   def __call__(self, x):
  ...     for _ in range(3):
  ...       x = nn.relu(nn.Dense(32, kernel_init=rewired(he_normal()))(x))
  ...     return x
  >>> model, x = MLP(), jnp.ones((1, 32))
  >>> batched = jax.jit(batch_rewiring(model.init))(jax.random.key(0), x)
  >>> alone = jax.jit(model.init)(jax.random.key(0), x)
  >>> jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), batched, alone))
  True
  """
  if not callable(fn):
    raise ValueError(f"fn must be callable, got {fn!r}.")
  check_int(max_group_bytes, "max_group_bytes", allow_none=True)

  @functools.wraps(fn)
  def batched(*args, **kwargs):
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array | np.ndarray | np.generic)]

    def with_traced(*values):
      merged = list(leaves)
      for i, value in zip(traced, values, strict=True):
        merged[i] = value
      inner_args, inner_kwargs = jax.tree_util.tree_unflatten(treedef, merged)
      return fn(*inner_args, **inner_kwargs)

    values = [leaves[i] for i in traced]
    closed, out_shape = jax.make_jaxpr(with_traced, return_shape=True)(*values)
    if closed.effects or not _contains_rewiring(closed.jaxpr):
      return fn(*args, **kwargs)
    flat = _Flattener()
    input_keys = [("input", i) for i in range(len(values))]
    output_keys = flat.flatten(closed.jaxpr, closed.consts, input_keys)
    env = dict(flat.constants)
    env.update(zip(input_keys, values, strict=True))
    _evaluate(flat.nodes, env, default_group_bytes() if max_group_bytes is None else max_group_bytes)
    outputs = [k[1] if k[0] == "literal" else env[k] for k in output_keys]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outputs)

  return batched
