"""Every compiled path of the library lowers for GPUs and TPUs: ``jax.export`` on the CPU, checked on the text.

The suite runs on CPUs, but ``jax.export`` traces and lowers a jitted
function for any platform on any machine (it does not compile). Each case in
``CASES`` is exported for ``ACCELERATORS`` and the exported StableHLO module
is checked:

- the export succeeds, for exactly those platforms, and the serialized
  artifact (what would be shipped to a GPU machine; needs ``flatbuffers``)
  round-trips;
- it has no host callback and no effects, and no custom call beyond those of
  JAX's own base initializers (an orthogonal draw's QR factorisation): the
  custom calls of a rewired program are those of the same program without
  rewiring, which are in ``BASE_INIT_TARGETS``;
- the CPU-only paths of ``parewire_jax/sorting.py`` (single-operand int32
  sorts and a ``searchsorted`` in the sorted keys, chosen by
  ``lax.platform_dependent``) are absent: the accelerators get the key–index
  pair sort. The same case exported for the CPU must show that path, so the
  check sees it when it is there (and
  ``test_the_detectors_see_what_they_look_for`` runs the detectors on programs
  that hold what they look for).

A new public path gets one line in ``CASES``; whatever it adds must lower for
every platform.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import export
from jax.nn.initializers import he_normal, orthogonal

import parewire_jax as pw
from parewire_jax.experiments import models
from parewire_jax.experiments.seeds import seed_mesh
from parewire_jax.experiments.steps import make_step_functions

ACCELERATORS = ("cuda", "rocm", "tpu")

# The custom calls JAX's own base initializers lower to on ACCELERATORS: an orthogonal draw's QR (cuSOLVER on
# CUDA, hipSOLVER on ROCm, XLA's Qr / Householder expanders on TPU). The rewiring adds none.
BASE_INIT_TARGETS = frozenset(
  {
    "cusolver_geqrf_ffi",
    "cusolver_orgqr_ffi",
    "hipsolver_geqrf_ffi",
    "hipsolver_orgqr_ffi",
    "Qr",
    "ProductOfElementaryHouseholderReflectors",
  }
)

KEY = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
F32, BF16 = jnp.float32, jnp.bfloat16


def spec(shape: tuple[int, ...], dtype=F32) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(shape, dtype)


# ------------------------------------------------------------------------------------- what a module holds


def custom_call_targets(text: str) -> set[str]:
  """Every custom-call target of a StableHLO module (pretty and generic forms)."""
  pretty = re.findall(r"stablehlo\.custom_call\s+@([\w.$-]+)", text)
  generic = re.findall(r'call_target_name\s*=\s*"([^"]+)"', text)
  return set(pretty) | set(generic)


def host_callbacks(text: str) -> set[str]:
  return {t for t in custom_call_targets(text) if "callback" in t.lower()}


_DEF = re.compile(r'^\s*(%[\w$.-]+)(?::\d+)?\s*=\s*"?([\w.]+)"?\(?\s*(%[\w$.-]+)?')
_SORT = re.compile(r'"stablehlo\.sort"\(([^)]*)\)')
_RESHAPES = {"stablehlo.broadcast_in_dim", "stablehlo.reshape", "stablehlo.transpose", "stablehlo.convert"}


def _ops(text: str):
  """``(line, made_by)`` for every line of a module, ``made_by`` mapping each SSA name defined so far in the
  function to the op that made it, looked through _RESHAPES (which ``vmap`` adds); a sort with one operand is
  ``stablehlo.sort/1``."""
  made_by: dict[str, str] = {}
  for line in text.splitlines():
    if line.lstrip().startswith("func.func"):
      made_by = {}  # SSA names are per function
    yield line, made_by
    definition = _DEF.match(line)
    if definition:
      name, op, operand = definition.groups()
      if op in _RESHAPES:
        op = made_by.get(operand or "", "?")
      elif op == "stablehlo.sort" and _SORT.search(line) and "," not in _SORT.search(line).group(1):
        op = "stablehlo.sort/1"
      made_by[name] = op


def _made_by(made_by: dict[str, str], operands: str) -> list[str]:
  return [made_by.get(o.strip().split("#")[0], "?") for o in operands.split(",")]


def sorts(text: str) -> dict[str, int]:
  """The module's sorts by kind, from the ops that make their operands.

  ``packed``: one operand made by ``stablehlo.or``, the ``rank << b | index`` key of the CPU-only argsort;
  ``pair``: several operands, one of them an ``iota``: the key–index argsort of every other platform;
  ``other``: the rest (e.g. sorting every column of a matrix once, on every platform).
  """
  counts = {"packed": 0, "pair": 0, "other": 0}
  for line, made_by in _ops(text):
    sort = _SORT.search(line)
    if sort:
      operands = _made_by(made_by, sort.group(1))
      if operands == ["stablehlo.or"]:
        counts["packed"] += 1
      elif len(operands) > 1 and "stablehlo.iota" in operands:
        counts["pair"] += 1
      else:
        counts["other"] += 1
  return counts


_SEARCH = re.compile(r"call @\w*searchsorted\w*\(([^)]*)\)")


def cpu_argsort_signature(text: str) -> dict[str, int]:
  """What only the CPU paths of ``parewire_jax/sorting.py`` lower to; all 0: they are absent.

  ``binary search in sorted keys``: a ``searchsorted`` call on the result of a single-operand sort (the
  argsort and the rank of the CPU find each key's place among the sorted keys instead of sorting key–index
  pairs): the mark of the CPU path, which the CPU lowering must show; ``packed sort``: the CPU argsort's sort of
  ``rank << b | index`` keys; ``searchsorted``: any binary search at all.
  """
  searches = []  # the made_by of each searchsorted call's operands
  for line, made_by in _ops(text):
    call = _SEARCH.search(line)
    if call:
      searches.append(_made_by(made_by, call.group(1)))
  return {
    "binary search in sorted keys": sum("stablehlo.sort/1" in operands for operands in searches),
    "packed sort": sorts(text)["packed"],
    "searchsorted": len(searches),
  }


# ------------------------------------------------------------------------------------- the cases


class Case(NamedTuple):
  """A program to export: ``fn(*args)``; ``base``: the same program without rewiring (its custom calls are
  allowed), ``None`` when none is; ``argsorts``: it runs the library's argsort (rewiring or a LaPerm sync)."""

  fn: Callable
  args: tuple
  base: tuple[Callable, tuple] | None = None
  argsorts: bool = True


class ConvNet(nn.Module):
  kernel_init: Callable
  dense_init: Callable

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3), kernel_init=self.kernel_init)(x))
    return nn.Dense(12, kernel_init=self.dense_init)(x.reshape(x.shape[0], -1))


IMAGES = spec((2, 6, 6, 3))


def convnet(rewire: bool) -> ConvNet:
  wrap = pw.rewired if rewire else (lambda init: init)
  return ConvNet(wrap(he_normal()), wrap(orthogonal()))


def laperm_update() -> Case:
  params = {"dense": {"kernel": spec((16, 12)), "bias": spec((12,))}, "conv": {"kernel": spec((3, 3, 2, 8))}}
  tx = pw.laperm(optax.sgd(0.1), sync_period=2)
  return Case(lambda g, s, p: tx.update(g, s, p), (params, jax.eval_shape(tx.init, params), params))


MLP_X = spec((1, 6))


@functools.cache
def step_functions(variant: str, laperm: bool):
  model = models.build_model("mlp", 3, models.kernel_initializer("orthogonal", variant), mlp_hidden=(8, 8))
  tx = pw.laperm(optax.sgd(0.1, momentum=0.9), sync_period=2) if laperm else optax.sgd(0.1, momentum=0.9)
  kwargs = dict(seeds_per_vmap=None, track_gradients=False, laperm_evaluation=laperm, mesh=seed_mesh(1))
  return make_step_functions(model, tx, jnp.zeros(MLP_X.shape), **kwargs)


SEEDS = spec((2,), jnp.uint32)


def training_segment(laperm: bool) -> Case:
  """Two training steps of the experiments (``make_step_functions``'s segment) on a 2-seed MLP."""
  fns = step_functions("base", laperm)
  params, state, opt_state, counts, _, _ = jax.eval_shape(fns.init, SEEDS, MLP_X)
  args = (((params, state, opt_state), counts), spec((16, 6)), spec((16,), jnp.int32), spec((2, 4), jnp.int32))
  return Case(fns.segment, args, argsorts=laperm)


CASES: dict[str, Callable[[], Case]] = {
  "jit(model.init) with rewired()": lambda: Case(
    convnet(True).init, (KEY, IMAGES), base=(convnet(False).init, (KEY, IMAGES))
  ),
  "pa_rewire float32": lambda: Case(pw.pa_rewire, (KEY, spec((16, 24)))),
  "pa_rewire bfloat16": lambda: Case(pw.pa_rewire, (KEY, spec((16, 24), BF16))),
  "rewire conv float32": lambda: Case(pw.rewire, (KEY, spec((3, 3, 4, 24)))),
  "rewire conv bfloat16": lambda: Case(pw.rewire, (KEY, spec((3, 3, 4, 24), BF16))),
  "rewire_params stacked": lambda: Case(
    functools.partial(pw.rewire_params, batch_axis=0), (KEY, {"kernel": spec((4, 16, 24)), "bias": spec((24,))})
  ),
  "laperm update": laperm_update,
  "experiments init (rewired)": lambda: Case(
    step_functions("rewired", False).init, (SEEDS, MLP_X), base=(step_functions("base", False).init, (SEEDS, MLP_X))
  ),
  "experiments training steps": lambda: training_segment(laperm=False),
  "experiments training steps (LaPerm)": lambda: training_segment(laperm=True),
  "batch_rewiring(model.init)": lambda: Case(
    pw.batch_rewiring(convnet(True).init), (KEY, IMAGES), base=(convnet(False).init, (KEY, IMAGES))
  ),
}


def flat(fn: Callable, args: tuple) -> tuple[Callable, list]:
  """``fn`` on the leaves of ``args``, returning leaves: the same program, serializable whatever its trees."""
  leaves, tree = jax.tree.flatten(args)
  return (lambda *xs: jax.tree.leaves(fn(*jax.tree.unflatten(tree, xs)))), leaves


@functools.cache
def exported(name: str, platforms: tuple[str, ...], base: bool = False) -> tuple[export.Exported, str]:
  case = CASES[name]()
  if base:
    assert case.base is not None
    fn, args = case.base
  else:
    fn, args = case.fn, case.args
  flat_fn, leaves = flat(fn, args)
  exp = export.export(jax.jit(flat_fn), platforms=platforms)(*leaves)
  return exp, exp.mlir_module()


# ------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", list(CASES))
def test_lowers_for_accelerators_without_callbacks_or_new_custom_calls(name):
  exp, text = exported(name, ACCELERATORS)
  assert exp.platforms == ACCELERATORS
  assert exp.ordered_effects == () and exp.unordered_effects == ()
  assert host_callbacks(text) == set()
  again = export.deserialize(exp.serialize())
  assert again.platforms == ACCELERATORS and again.mlir_module() == text
  targets = custom_call_targets(text)
  allowed = custom_call_targets(exported(name, ACCELERATORS, base=True)[1]) if CASES[name]().base else set()
  assert targets <= allowed <= BASE_INIT_TARGETS, (targets, allowed)


@pytest.mark.parametrize("name", list(CASES))
def test_cpu_only_argsort_path_is_absent_from_accelerator_lowerings(name):
  _, cpu = exported(name, ("cpu",))
  _, accelerators = exported(name, ACCELERATORS)
  assert not any(cpu_argsort_signature(accelerators).values()), cpu_argsort_signature(accelerators)
  if CASES[name]().argsorts:
    signature = cpu_argsort_signature(cpu)
    assert signature["binary search in sorted keys"] > 0, signature  # the detector sees the CPU path
    assert sorts(accelerators)["pair"] > 0  # the accelerators' key–index sort instead
  else:
    assert not any(cpu_argsort_signature(cpu).values()) and sorts(accelerators)["pair"] == 0


def test_base_initializer_custom_calls_are_the_allowlist():
  def targets(init):
    fn = jax.jit(lambda k: init(k, (16, 24)))
    return custom_call_targets(export.export(fn, platforms=ACCELERATORS)(KEY).mlir_module())

  qr = targets(orthogonal())
  assert {"cusolver_geqrf_ffi", "hipsolver_geqrf_ffi"} <= qr <= BASE_INIT_TARGETS, qr
  assert targets(pw.rewired(orthogonal())) == qr  # rewiring an orthogonal draw adds no custom call
  assert targets(he_normal()) == set() and targets(pw.rewired(he_normal())) == set()


def test_the_detectors_see_what_they_look_for():
  # A host callback (jax.export refuses to export one at all; the detector is checked on a plain lowering).
  callback = jax.jit(lambda x: jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x))
  assert host_callbacks(callback.lower(spec((3,))).as_text()) != set()
  # Lowered for the CPU and an accelerator at once, the module holds both argsort paths, told apart.
  _, cpu = exported("pa_rewire float32", ("cpu",))
  _, both = exported("pa_rewire float32", ("cpu", "cuda"))
  assert cpu_argsort_signature(both) == cpu_argsort_signature(cpu) and sorts(both)["pair"] > 0
