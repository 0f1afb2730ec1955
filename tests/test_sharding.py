"""Sharded initialisation on an 8-device CPU mesh: JAX's SPMD partitioner is the engine.

tests/conftest.py asks XLA for 8 virtual CPU devices before JAX starts. If
a backend was started earlier with fewer devices, the in-process tests skip
and ``test_rerun_in_subprocess_with_8_devices`` runs this module in a fresh
interpreter that has them, so the checks always run somewhere.
"""

import os
import re
import subprocess
import sys

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_bit_permutation, assert_bits_equal, set_mesh
from jax.nn import initializers as jinit
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

import parewire_jax as pw

NUM_DEVICES = 8
HAVE_DEVICES = jax.device_count() >= NUM_DEVICES
needs_devices = pytest.mark.skipif(
  not HAVE_DEVICES,
  reason=f"needs {NUM_DEVICES} devices; test_rerun_in_subprocess_with_8_devices runs this module with them",
)
COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce", "reduce-scatter")


def _mesh(shape, names, axis_type=AxisType.Auto):
  return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def _collectives(compiled_text: str) -> dict[str, int]:
  return {op: len(re.findall(rf"\b{op}(-start)?\(", compiled_text)) for op in COLLECTIVES}


# --------------------------------------------------------------------------- jit(out_shardings=...)


@needs_devices
@pytest.mark.parametrize(
  "shape, spec",
  [
    ((64, 32), P("data", "model")),
    ((64, 32), P(None, "model")),  # the scanned axis of pass "in" is sharded
    ((64, 32), P(("data", "model"), None)),  # the scanned axis of pass "out" is sharded
    ((3, 3, 8, 32), P(None, None, "data", "model")),
  ],
  ids=str,
)
def test_jit_out_shardings_equals_unsharded(shape, spec):
  mesh = _mesh((2, 4), ("data", "model"))
  init = pw.rewired(jinit.lecun_normal())
  key = jax.random.key(0)
  sharded = jax.jit(lambda k: init(k, shape, jnp.float32), out_shardings=NamedSharding(mesh, spec))(key)
  assert sharded.sharding.is_equivalent_to(NamedSharding(mesh, spec), len(shape))
  assert_bits_equal(sharded, init(key, shape, jnp.float32))


@needs_devices
def test_linen_with_partitioning_on_2d_mesh():
  mesh = _mesh((2, 4), ("data", "model"))
  base = jinit.orthogonal()
  kernel_init = nn.with_partitioning(pw.rewired(base), ("data", "model"))
  model = nn.Dense(32, kernel_init=kernel_init)
  key, x = jax.random.key(1), jnp.ones((2, 48))
  specs = nn.get_partition_spec(jax.eval_shape(model.init, key, x))
  shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda s: isinstance(s, P))
  params = nn.unbox(jax.jit(model.init, out_shardings=shardings)(key, x))
  unsharded = nn.unbox(model.init(key, x))
  kernel = params["params"]["kernel"]
  assert kernel.sharding.spec == P("data", "model")
  assert_bits_equal(kernel, unsharded["params"]["kernel"])
  assert_bit_permutation(kernel, nn.Dense(32, kernel_init=base).init(key, x)["params"]["kernel"])


@needs_devices
@pytest.mark.skipif(
  tuple(int(p) for p in flax.__version__.split(".")[:2]) < (0, 12),
  reason="nnx shards annotated variables at creation from flax 0.12 (flax_always_shard_variable)",
)
@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"])
def test_nnx_with_partitioning_on_2d_mesh(axis_type):
  mesh = _mesh((2, 4), ("data", "model"), axis_type)
  init = nnx.with_partitioning(pw.rewired(jinit.lecun_normal()), ("data", "model"))

  def create(seed):
    return nnx.Linear(48, 32, kernel_init=init, rngs=nnx.Rngs(seed))

  unsharded = nnx.Linear(48, 32, kernel_init=pw.rewired(jinit.lecun_normal()), rngs=nnx.Rngs(3)).kernel[...]
  with set_mesh(mesh):
    model = nnx.jit(create, static_argnums=0)(3)
  kernel = model.kernel[...]
  assert kernel.sharding.spec == P("data", "model")
  assert_bits_equal(kernel, unsharded)


# --------------------------------------------------------------------------- the out_sharding argument


@needs_devices
def test_out_sharding_argument_auto_mesh():
  """Under Auto axes, rewired() constrains its result to ``out_sharding`` after rewiring.

  jax's own initializers accept only trivial shardings on Auto meshes, so the
  base here is one that accepts any ``out_sharding`` (as a user's may).
  """
  mesh = _mesh((2, 4), ("data", "model"))

  def base(key, shape, dtype=jnp.float32, out_sharding=None):
    w = jax.random.normal(key, shape, dtype)
    return w if out_sharding is None else jax.lax.with_sharding_constraint(w, out_sharding)

  init = pw.rewired(base)
  key = jax.random.key(2)
  expected = init(key, (64, 32))
  sharding = NamedSharding(mesh, P("data", "model"))
  out = jax.jit(lambda k: init(k, (64, 32), out_sharding=sharding))(key)
  assert out.sharding.is_equivalent_to(sharding, 2)
  assert_bits_equal(out, expected)
  with set_mesh(mesh):
    out = jax.jit(lambda k: init(k, (64, 32), out_sharding=P(None, "model")))(key)
  assert out.sharding.spec == P(None, "model")
  assert_bits_equal(out, expected)


@needs_devices
def test_out_sharding_argument_auto_mesh_rejected_like_base():
  """jax's initializers reject non-trivial Auto specs; rewired() surfaces that same error."""
  mesh = _mesh((2, 4), ("data", "model"))
  base = jinit.lecun_normal()
  sharding = NamedSharding(mesh, P("data", "model"))
  with pytest.raises(ValueError, match="Auto") as base_error:
    base(jax.random.key(0), (64, 32), jnp.float32, out_sharding=sharding)
  with pytest.raises(ValueError, match="Auto") as ours:
    pw.rewired(base)(jax.random.key(0), (64, 32), jnp.float32, out_sharding=sharding)
  assert str(ours.value).split(" This error occurs")[0] == str(base_error.value).split(" This error occurs")[0]


@needs_devices
@pytest.mark.parametrize("as_named", [False, True], ids=["PartitionSpec", "NamedSharding"])
def test_out_sharding_argument_explicit_mesh(as_named):
  mesh = _mesh((2, 4), ("data", "model"), AxisType.Explicit)
  init = pw.rewired(jinit.lecun_normal())
  key, spec = jax.random.key(4), P("data", "model")
  with set_mesh(mesh):
    out = jax.jit(
      lambda k: init(k, (64, 32), jnp.float32, out_sharding=NamedSharding(mesh, spec) if as_named else spec)
    )(key)
  assert out.sharding.spec == spec
  assert_bits_equal(out, init(key, (64, 32), jnp.float32))


@needs_devices
def test_rewire_explicitly_sharded_stack():
  mesh = _mesh((NUM_DEVICES,), ("layers",), AxisType.Explicit)
  stack = jax.random.normal(jax.random.key(0), (NUM_DEVICES, 16, 12))
  out = pw.rewire(jax.random.key(1), jax.device_put(stack, NamedSharding(mesh, P("layers"))), batch_axis=0)
  assert out.sharding.is_equivalent_to(NamedSharding(mesh, P("layers")), 3)
  assert_bits_equal(out, pw.rewire(jax.random.key(1), stack, batch_axis=0))


# --------------------------------------------------------------------------- stacked layers


@needs_devices
@pytest.mark.parametrize(
  "mesh_shape, names, spec",
  [
    ((8,), ("layers",), P("layers")),
    ((2, 4), ("data", "model"), P(("data", "model"))),
  ],
  ids=["1d", "2d"],
)
def test_layer_sharded_stack_needs_no_communication(mesh_shape, names, spec):
  """Each device rewires its own layers: no collective in the compiled program, 1 layer per device."""
  mesh = _mesh(mesh_shape, names)
  n_layers, n_in, n_out = NUM_DEVICES, 24, 20
  init = pw.rewired(jinit.lecun_normal(batch_axis=0), batch_axis=0)
  key = jax.random.key(5)
  fn = jax.jit(lambda k: init(k, (n_layers, n_in, n_out), jnp.float32), out_shardings=NamedSharding(mesh, spec))
  text = fn.lower(key).compile().as_text()
  assert not any(_collectives(text).values()), _collectives(text)
  # The per-step sorts of the scans see one layer per device (a replicated program would show 8).
  step_sort_shapes = set(re.findall(rf"= s32\[(\d+),(?:{n_in}|{n_out})\]\S* sort\(", text))
  assert step_sort_shapes == {"1"}, step_sort_shapes
  out = fn(key)
  assert out.sharding.spec == spec
  assert_bits_equal(out, init(key, (n_layers, n_in, n_out), jnp.float32))


@needs_devices
def test_layer_sharded_rewire_equals_shard_map():
  """rewire(batch_axis=0) on a layer-sharded stack is exactly per-device pa_rewire with split keys."""
  mesh = _mesh((NUM_DEVICES,), ("layers",))
  sharding = NamedSharding(mesh, P("layers"))
  key = jax.random.key(6)
  stack = jax.device_put(jax.random.normal(jax.random.key(7), (2 * NUM_DEVICES, 16, 12)), sharding)
  gspmd = jax.jit(lambda k, x: pw.rewire(k, x, batch_axis=0), out_shardings=sharding)
  text = gspmd.lower(key, stack).compile().as_text()
  assert not any(_collectives(text).values()), _collectives(text)
  per_device = jax.jit(
    jax.shard_map(jax.vmap(pw.pa_rewire), mesh=mesh, in_specs=(P("layers"), P("layers")), out_specs=P("layers"))
  )
  keys = jax.random.split(key, 2 * NUM_DEVICES)
  assert_bits_equal(gspmd(key, stack), per_device(keys, stack))
  assert_bits_equal(gspmd(key, stack), pw.rewire(key, np.asarray(stack), batch_axis=0))


@needs_devices
def test_linen_scan_stack_sharded_over_layers():
  """nn.scan with metadata_params={PARTITION_NAME: 'layers'}: sharded init equals unsharded init."""
  mesh = _mesh((2, 4), ("layers", "model"))

  class Block(nn.Module):
    @nn.compact
    def __call__(self, x, _):
      init = nn.with_partitioning(pw.rewired(jinit.lecun_normal()), (None, "model"))
      return nn.Dense(16, kernel_init=init)(x), None

  stack = nn.scan(
    Block,
    variable_axes={"params": 0},
    split_rngs={"params": True},
    length=4,
    metadata_params={nn.PARTITION_NAME: "layers"},
  )()
  key, x = jax.random.key(8), jnp.ones((2, 16))
  specs = nn.get_partition_spec(jax.eval_shape(stack.init, key, x, None))
  kernel_spec = specs["params"]["Dense_0"]["kernel"]
  assert kernel_spec == P("layers", None, "model")
  shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda s: isinstance(s, P))
  sharded = nn.unbox(jax.jit(stack.init, out_shardings=shardings)(key, x, None))["params"]["Dense_0"]["kernel"]
  assert sharded.sharding.spec == kernel_spec
  assert_bits_equal(sharded, nn.unbox(stack.init(key, x, None))["params"]["Dense_0"]["kernel"])


# --------------------------------------------------------------------------- fallback


@pytest.mark.skipif(HAVE_DEVICES, reason=f"{NUM_DEVICES} devices present: the tests above ran in process")
def test_rerun_in_subprocess_with_8_devices():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    + f" --xla_force_host_platform_device_count={NUM_DEVICES}"
  )
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run(
    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.abspath(__file__)],
    cwd=root,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
  assert re.search(r"\b\d+ passed", result.stdout), result.stdout[-2000:]
