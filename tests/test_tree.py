"""Tests of rewire_params / leaf_key: selection, path-derived keys, grouping, layouts, frameworks.

Compiling a batched scan takes seconds on the CPU, so the trees below reuse a
few matrix shapes: (12, 8) and (8, 12) in float32, (12, 8) in bfloat16.
"""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_bit_permutation, assert_bits_equal
from jax.tree_util import DictKey, keystr, tree_flatten_with_path

import parewire_jax as pw
from parewire_jax import tree as pw_tree
from parewire_jax.tree import leaf_key, rewire_params

KEY = jax.random.key(42)


def _normal(seed, shape, dtype=jnp.float32):
  return jax.random.normal(jax.random.key(seed), shape).astype(dtype)


def _flax_tree():
  """Flax layout: conv (2,2,3,8) and dense (12,8) share matrix shape (12, 8)."""
  return {
    "conv": {"kernel": _normal(0, (2, 2, 3, 8)), "bias": _normal(1, (8,))},
    "dense": {"kernel": _normal(2, (12, 8)), "bias": jnp.zeros(8)},
    "proj": {"kernel": _normal(3, (8, 12))},
    "head": {"kernel": _normal(4, (12, 8), jnp.bfloat16)},
    "step": jnp.zeros((3, 3), jnp.int32),
    "scale": 2.0,
    "empty": {"kernel": jnp.zeros((0, 4))},
  }


SELECTED = ("['conv']['kernel']", "['dense']['kernel']", "['proj']['kernel']", "['head']['kernel']")


def _by_path(tree):
  return {keystr(p): x for p, x in tree_flatten_with_path(tree)[0]}


def _assert_rewired(new, old):
  assert new is not old
  assert_bit_permutation(new, old)
  assert not np.array_equal(np.asarray(new), np.asarray(old))


@pytest.fixture(scope="module")
def flax_tree():
  return _flax_tree()


@pytest.fixture(scope="module")
def flax_result(flax_tree):
  return rewire_params(KEY, flax_tree)


# --------------------------------------------------------------------------- selection


def test_selected_leaves_are_changed_permutations_others_same_object(flax_tree, flax_result):
  assert jax.tree_util.tree_structure(flax_result) == jax.tree_util.tree_structure(flax_tree)
  old, new = _by_path(flax_tree), _by_path(flax_result)
  for path in old:
    if path in SELECTED:
      _assert_rewired(new[path], old[path])
    else:
      assert new[path] is old[path], path


def test_each_leaf_equals_rewire_with_its_leaf_key(flax_tree, flax_result):
  """The documented contract: leaf at path == rewire(leaf_key(key, path), leaf); also per dtype group."""
  paths = dict(tree_flatten_with_path(flax_tree)[0])
  new = _by_path(flax_result)
  for path, leaf in paths.items():
    if keystr(path) in SELECTED:
      assert_bits_equal(new[keystr(path)], pw.rewire(leaf_key(KEY, path), leaf))


def test_where_filters_leaves_and_does_not_change_the_others(flax_tree, flax_result):
  seen = []

  def where(path, leaf):
    seen.append(keystr(path))
    return "proj" not in keystr(path)

  new = _by_path(rewire_params(KEY, flax_tree, where=where))
  old, full = _by_path(flax_tree), _by_path(flax_result)
  assert sorted(seen) == sorted(SELECTED + ("['empty']['kernel']",))  # asked only about floating ndim >= 2 leaves
  assert new["['proj']['kernel']"] is old["['proj']['kernel']"]
  for path in SELECTED:
    if "proj" not in path:
      assert_bits_equal(new[path], full[path])


# --------------------------------------------------------------------------- path-derived keys


def test_leaf_result_does_not_depend_on_the_rest_of_the_tree(flax_tree, flax_result):
  dense = flax_tree["dense"]["kernel"]
  expected = flax_result["dense"]["kernel"]
  alone = rewire_params(KEY, {"dense": {"kernel": dense}})
  assert_bits_equal(alone["dense"]["kernel"], expected)
  # Other leaves before and after it in flattening order, of its own shape and others.
  crowded = rewire_params(
    KEY,
    {"a": {"kernel": _normal(7, (12, 8))}, "dense": {"kernel": dense}, "z": {"kernel": _normal(9, (8, 12))}},
  )
  assert_bits_equal(crowded["dense"]["kernel"], expected)


def test_leaf_key_is_stable_and_path_specific():
  path = (DictKey("dense"), DictKey("kernel"))
  k = leaf_key(jax.random.key(0), path)
  # Pinned: a process-randomised hash (Python's hash of str) would break this across runs.
  np.testing.assert_array_equal(
    jax.random.key_data(k), jax.random.key_data(leaf_key(jax.random.key(0), "['dense']['kernel']"))
  )
  others = [leaf_key(jax.random.key(0), "['dense']['bias']"), leaf_key(jax.random.key(1), path)]
  for other in others:
    assert not np.array_equal(jax.random.key_data(k), jax.random.key_data(other))


def test_leaf_key_is_the_same_in_a_fresh_process():
  code = (
    "import jax; from parewire_jax.tree import leaf_key; "
    "print(jax.random.key_data(leaf_key(jax.random.key(0), \"['dense']['kernel']\")).tolist())"
  )
  outputs = {
    subprocess.run(
      [sys.executable, "-c", code],
      capture_output=True,
      text=True,
      check=True,
      env={**os.environ, "PYTHONHASHSEED": seed},
    ).stdout
    for seed in ("1", "2")  # different str hashes, same leaf keys
  }
  here = jax.random.key_data(leaf_key(jax.random.key(0), "['dense']['kernel']")).tolist()
  assert outputs == {f"{here}\n"}


# --------------------------------------------------------------------------- grouping and chunking


def _count_traces(monkeypatch):
  """Records the matrix shape each time the engine traces its per-matrix function."""
  calls = []
  original = pw.rewiring._rewire_matrix

  def counting(*args, **kwargs):
    calls.append(jnp.shape(args[1]))
    return original(*args, **kwargs)

  monkeypatch.setattr(pw.rewiring, "_rewire_matrix", counting)
  return calls


def _jaxprs_in_params(params):
  """``jax.extend.core.jaxprs_in_params`` (public from jax 0.10); the same walk on the older jax the floors allow."""
  if hasattr(jax.extend.core, "jaxprs_in_params"):
    return list(jax.extend.core.jaxprs_in_params(params))
  core = jax.extend.core
  values = [v for value in params.values() for v in (value if isinstance(value, tuple) else (value,))]
  return [
    v.jaxpr if isinstance(v, core.ClosedJaxpr) else v for v in values if isinstance(v, (core.Jaxpr, core.ClosedJaxpr))
  ]


def _scans(jaxpr) -> int:
  """Top-level lax.scans (not those nested in a scan's body, e.g. in searchsorted)."""
  count = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "scan":
      count += 1
    else:
      count += sum(_scans(sub) for sub in _jaxprs_in_params(eqn.params))
  return count


@pytest.mark.parametrize("num_leaves", [2, 9])
def test_one_trace_and_one_scan_per_pass_for_any_number_of_same_shaped_leaves(monkeypatch, num_leaves):
  # An offset used nowhere else, so the jit cache cannot hide a trace.
  offset = 0.8125 + num_leaves
  calls = _count_traces(monkeypatch)
  params = {f"layer{i}": {"kernel": _normal(i, (6, 5))} for i in range(num_leaves)}
  jaxpr = jax.make_jaxpr(lambda p: rewire_params(KEY, p, offset=offset))(params)
  assert calls == [(6, 5)]  # traced once, for the whole stack
  # the accelerators' branch: one batched lax.scan per pass; the CPU's: one loop (a scan) around the passes
  assert _scans(jaxpr.jaxpr) == 2 + 1


def test_chunks_are_balanced_and_compile_at_most_two_sizes(monkeypatch):
  calls = _count_traces(monkeypatch)
  params = {f"layer{i}": {"kernel": _normal(i, (6, 5))} for i in range(7)}
  matrix_bytes = 6 * 5 * 4
  jaxpr = jax.make_jaxpr(lambda p: rewire_params(KEY, p, offset=0.3125, max_group_bytes=3 * matrix_bytes))(params)
  assert len(calls) == 2  # chunk sizes 3 and 2 (7 = 3 + 2 + 2)
  assert _scans(jaxpr.jaxpr) == 3 * (2 + 1)  # 3 chunks, each as above


def test_chunk_sizes():
  assert pw_tree.chunk_sizes(7, 3) == [3, 2, 2]
  assert pw_tree.chunk_sizes(6, 3) == [3, 3]
  assert pw_tree.chunk_sizes(5, 100) == [5]
  assert pw_tree.chunk_sizes(4, 1) == [1, 1, 1, 1]


# --------------------------------------------------------------------------- batch_axis (scanned layers)


@pytest.fixture(scope="module")
def scanned_tree():
  return {"layers": {"kernel": _normal(10, (3, 12, 8))}, "dense": _normal(11, (12, 8))}


def _scanned_axes(path, leaf):
  return 0 if "layers" in keystr(path) else None


@pytest.fixture(scope="module")
def scanned_result(scanned_tree):
  return rewire_params(KEY, scanned_tree, where=pw.is_weight_matrix, batch_axis=_scanned_axes)


def test_batch_axis_matrices_use_split_leaf_key(scanned_tree, scanned_result):
  layers, dense = scanned_tree["layers"]["kernel"], scanned_tree["dense"]
  layers_path = (DictKey("layers"), DictKey("kernel"))
  new_layers = scanned_result["layers"]["kernel"]
  # rewire(k, x, batch_axis=0)[b] is pa_rewire(split(k, 3)[b], x[b]); checked per matrix (vmapped
  # in a group with `dense` here, unbatched there).
  keys = jax.random.split(leaf_key(KEY, layers_path), 3)
  for b in range(3):  # each stacked layer is its own matrix: values never cross layers
    _assert_rewired(new_layers[b], layers[b])
    assert_bits_equal(new_layers[b], pw.pa_rewire(keys[b], layers[b]))
  assert_bits_equal(scanned_result["dense"], pw.rewire(leaf_key(KEY, (DictKey("dense"),)), dense))


def test_int_batch_axis_applies_to_every_leaf(scanned_tree, scanned_result):
  more = _normal(12, (1, 12, 8))
  new = rewire_params(KEY, {"layers": scanned_tree["layers"], "more": more}, where=pw.is_weight_matrix, batch_axis=0)
  assert_bits_equal(new["layers"]["kernel"], scanned_result["layers"]["kernel"])
  # A batch of one still uses split(leaf_key, 1)[0], as rewire() does, not leaf_key itself.
  assert_bits_equal(new["more"][0], pw.pa_rewire(jax.random.split(leaf_key(KEY, (DictKey("more"),)), 1)[0], more[0]))


def test_chunking_splits_a_batched_leaf_without_changing_results(scanned_tree, scanned_result):
  # 4 matrices of (12, 8) in chunks of 2: the stacked leaf straddles two chunks.
  new = rewire_params(
    KEY, scanned_tree, where=pw.is_weight_matrix, batch_axis=_scanned_axes, max_group_bytes=2 * 12 * 8 * 4
  )
  for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(scanned_result), strict=True):
    assert_bits_equal(a, b)


# --------------------------------------------------------------------------- layouts and frameworks


def test_out_axis_0_is_the_transposed_layout(flax_tree, flax_result):
  w = flax_tree["dense"]["kernel"]
  torch_layout = rewire_params(KEY, {"dense": {"kernel": w.T}}, out_axis=0)
  assert_bits_equal(torch_layout["dense"]["kernel"].T, flax_result["dense"]["kernel"])


def test_callable_out_axis_per_leaf(flax_tree, flax_result):
  tree = {"dense": {"kernel": flax_tree["dense"]["kernel"].T}, "proj": {"kernel": flax_tree["proj"]["kernel"]}}
  new = rewire_params(KEY, tree, out_axis=lambda path, leaf: 0 if "dense" in keystr(path) else -1)
  assert_bits_equal(new["dense"]["kernel"].T, flax_result["dense"]["kernel"])
  assert_bits_equal(new["proj"]["kernel"], flax_result["proj"]["kernel"])


class _NnxModel(nnx.Module):
  def __init__(self, rngs):
    self.up = nnx.Linear(12, 8, rngs=rngs)
    self.norm = nnx.BatchNorm(8, rngs=rngs)
    self.down = nnx.Linear(8, 12, rngs=rngs)

  def __call__(self, x):
    return self.down(nnx.relu(self.norm(self.up(x))))


def test_nnx_split_rewire_merge_round_trip():
  model = _NnxModel(nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  new_state = rewire_params(KEY, state)
  rewired_model = nnx.merge(graphdef, new_state)
  _assert_rewired(rewired_model.up.kernel[...], model.up.kernel[...])
  _assert_rewired(rewired_model.down.kernel[...], model.down.kernel[...])
  for name in ("up", "down"):
    assert getattr(rewired_model, name).bias[...] is getattr(model, name).bias[...]
  assert rewired_model.norm.mean[...] is model.norm.mean[...]
  path = next(p for p, _ in tree_flatten_with_path(state)[0] if "up" in keystr(p) and "kernel" in keystr(p))
  assert_bits_equal(rewired_model.up.kernel[...], pw.rewire(leaf_key(KEY, path), model.up.kernel[...]))
  assert rewired_model(jnp.ones((2, 12))).shape == (2, 12)


class _LinenModel(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.BatchNorm(use_running_average=True)(nn.Conv(8, (2, 2))(x))  # kernel (2, 2, 3, 8)
    x = x.mean((1, 2))
    return nn.Dense(8)(jnp.concatenate([x, x[:, :4]], -1))  # kernel (12, 8)


def test_linen_variables_dict():
  model = _LinenModel()
  variables = model.init(jax.random.key(0), jnp.ones((1, 4, 4, 3)))
  new = rewire_params(KEY, variables)
  for layer in ("Conv_0", "Dense_0"):
    _assert_rewired(new["params"][layer]["kernel"], variables["params"][layer]["kernel"])
    assert new["params"][layer]["bias"] is variables["params"][layer]["bias"]
  assert new["batch_stats"]["BatchNorm_0"]["var"] is variables["batch_stats"]["BatchNorm_0"]["var"]
  path = (DictKey("params"), DictKey("Conv_0"), DictKey("kernel"))
  assert_bits_equal(
    new["params"]["Conv_0"]["kernel"], pw.rewire(leaf_key(KEY, path), variables["params"]["Conv_0"]["kernel"])
  )
  assert model.apply(new, jnp.ones((2, 4, 4, 3))).shape == (2, 8)


def test_equinox_module_with_out_axis_0():
  eqx = pytest.importorskip("equinox")
  model = eqx.nn.MLP(12, 12, 8, 1, key=jax.random.key(0))  # weights (8, 12) and (12, 8), (out, in)
  new = rewire_params(KEY, model, out_axis=0)
  for old_layer, new_layer in zip(model.layers, new.layers, strict=True):
    _assert_rewired(new_layer.weight, old_layer.weight)
    assert new_layer.bias is old_layer.bias
  assert new.activation is model.activation  # a non-array leaf, untouched
  path = next(p for p, _ in tree_flatten_with_path(model)[0] if keystr(p) == ".layers[0].weight")
  assert_bits_equal(new.layers[0].weight, pw.rewire(leaf_key(KEY, path), model.layers[0].weight, out_axis=0))
  assert new(jnp.ones(12)).shape == (12,)


# --------------------------------------------------------------------------- keys, jit


def test_legacy_uint32_key_gives_the_typed_key_result(flax_tree):
  legacy = jax.random.PRNGKey(3)
  path = (DictKey("dense"), DictKey("kernel"))
  np.testing.assert_array_equal(
    leaf_key(legacy, path), jax.random.key_data(leaf_key(jax.random.wrap_key_data(legacy), path))
  )
  tree = {"dense": {"kernel": flax_tree["dense"]["kernel"]}}
  new = rewire_params(legacy, tree)
  assert_bits_equal(new["dense"]["kernel"], rewire_params(jax.random.wrap_key_data(legacy), tree)["dense"]["kernel"])
  _assert_rewired(new["dense"]["kernel"], tree["dense"]["kernel"])


def test_under_jit_matches_eager(flax_tree, flax_result):
  tree = {"dense": {"kernel": flax_tree["dense"]["kernel"]}}
  jitted = jax.jit(lambda p: rewire_params(KEY, p))(tree)
  assert_bits_equal(jitted["dense"]["kernel"], flax_result["dense"]["kernel"])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"where": "kernel"}, "where must be"),
    ({"out_axis": "last"}, "out_axis must be"),
    ({"out_axis": 1.5}, "out_axis must be"),
    ({"batch_axis": 1.5}, "batch_axis must be"),
    ({"passes": "in"}, "passes"),
    ({"passes": ("up",)}, "passes"),
    ({"offset": 0.0}, "offset"),
    ({"max_group_bytes": 0}, "max_group_bytes"),
    ({"max_group_bytes": True}, "max_group_bytes"),
    ({"out_axis": 5}, r"\['dense'\]\['kernel'\].*out_axis=5 is out of range"),
    ({"batch_axis": 0}, r"\['dense'\]\['kernel'\].*no input axis"),
    ({"batch_axis": lambda p, x: "zero"}, r"batch_axis for leaf \['dense'\]\['kernel'\]"),
  ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
  with pytest.raises(ValueError, match=match):
    rewire_params(KEY, {"dense": {"kernel": jnp.ones((4, 3))}}, **kwargs)
