"""Tests for parewire_jax.lookahead_permutation: LaPerm (Qiu & Suda 2020) and its diagnostics.

Oracles are NumPy: a weight vector of a kernel ``x`` is a column of
``x.reshape(-1, x.shape[-1])``; "permuted to the ranking of r" is
``out[argsort(r, stable)[k]] = sorted_init[k]``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_bits_equal, assert_columnwise_permutation, bits, enable_x64
from hypothesis import given, settings, strategies as st

import parewire_jax as pw

K = 4  # sync period used throughout


# ---------------------------------------------------------------------------
# Helpers and oracles.


def make_params(seed=0, dtype=jnp.float32):
  keys = jax.random.split(jax.random.key(seed), 3)
  return {
    "conv": {
      "kernel": jax.random.uniform(keys[0], (3, 3, 2, 4), dtype, -0.3, 0.3),
      "bias": jnp.zeros((4,), dtype),
    },
    "dense": {
      "kernel": jax.random.uniform(keys[1], (12, 5), dtype, -0.3, 0.3),
      "bias": jnp.zeros((5,), dtype),
    },
    "scale": jnp.ones((5,), dtype),
  }


SELECTED = (("conv", "kernel"), ("dense", "kernel"))


def leaf(tree, path):
  for name in path:
    tree = tree[name]
  return tree


def columns(x) -> np.ndarray:
  """(n_out, n_in): row j is weight vector j (incoming weights of output j)."""
  x = np.asarray(x)
  return x.reshape(-1, x.shape[-1]).T


def oracle_project(x0, reference) -> np.ndarray:
  """Sorted columns of x0 permuted to the (stable) ranking of reference."""
  sorted_cols = np.sort(columns(x0), axis=-1)
  order = np.argsort(columns(reference), axis=-1, kind="stable")
  out = np.empty_like(sorted_cols)
  np.put_along_axis(out, order, sorted_cols, axis=-1)
  shape = np.shape(reference)
  return out.T.reshape(shape)


def exact_update_exists(p, t, reach=4) -> np.ndarray:
  """Whether some float u (searched around fl(t - p)) has fl(p + u) == t."""
  p, t = np.asarray(p), np.asarray(t)
  d = t - p
  hit = (p + d) == t
  up = down = d
  for _ in range(reach):
    up = np.nextafter(up, np.asarray(np.inf, d.dtype))
    down = np.nextafter(down, np.asarray(-np.inf, d.dtype))
    hit |= ((p + up) == t) | ((p + down) == t)
  return hit


def grads_at(step, params, seed=1):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), len(leaves))
  return treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)])


def check_sync(params_before, inner_updates, updates, state):
  """Checks one sync step against the NumPy oracle; returns the new params."""
  proposed = optax.apply_updates(params_before, inner_updates)
  new_params = optax.apply_updates(params_before, updates)
  for path in SELECTED:
    init = leaf(state.sorted_init, path)
    target = oracle_project(init, leaf(proposed, path))
    # The projection of the inner step's proposal is the target, bit for bit.
    np.testing.assert_array_equal(bits(leaf(pw.laperm_project(proposed, state), path)), bits(target))
    p, got = np.asarray(leaf(params_before, path)), np.asarray(leaf(new_params, path))
    possible = exact_update_exists(p, target)
    # apply_updates lands on the target exactly wherever some float update can ...
    np.testing.assert_array_equal(got == target, possible)
    # ... and elsewhere within the rounding of the addition.
    scale = np.maximum(np.abs(p), np.abs(target))
    assert np.all(np.abs(got - target) <= 2 * np.spacing(scale))
    # laperm_project of the result is a bit-exact permutation of the initial vectors.
    assert_columnwise_permutation(leaf(pw.laperm_project(new_params, state), path), init)
  for path in (("conv", "bias"), ("dense", "bias"), ("scale",)):
    np.testing.assert_array_equal(bits(leaf(updates, path)), bits(leaf(inner_updates, path)))
  return new_params


# ---------------------------------------------------------------------------
# laperm: state, syncs, inner optimizer behaviour.


def test_init_stores_sorted_weight_vectors():
  params = make_params()
  state = pw.laperm(optax.adam(1e-2), K).init(params)
  assert isinstance(state, pw.LaPermState)
  assert int(state.count) == 0 and state.count.dtype == jnp.int32
  for path in SELECTED:
    x = leaf(params, path)
    expected = np.sort(columns(x), axis=-1).T.reshape(x.shape)
    np.testing.assert_array_equal(bits(leaf(state.sorted_init, path)), bits(expected))
  for path in (("conv", "bias"), ("dense", "bias"), ("scale",)):
    assert isinstance(leaf(state.sorted_init, path), optax.MaskedNode)
  assert_bits_equal(state.inner_state, optax.adam(1e-2).init(params))


class LaPermVariantsTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_inner_between_syncs_and_permutes_at_syncs(self):
    inner = optax.adam(3e-2)
    opt = pw.laperm(inner, K)
    laperm_update = self.variant(opt.update)
    inner_update = self.variant(inner.update)
    params = make_params()
    state = opt.init(params)
    for t in range(1, 2 * K + 2):
      grads = grads_at(t, params)
      expected, expected_inner_state = inner_update(grads, state.inner_state, params)
      updates, state = laperm_update(grads, state, params)
      self.assertEqual(int(state.count), t)
      # The inner optimizer state is exactly the inner optimizer's own (no reset).
      assert_bits_equal(state.inner_state, expected_inner_state)
      if t % K:
        assert_bits_equal(updates, expected)
        params = optax.apply_updates(params, updates)
      else:
        params = check_sync(params, expected, updates, state)


def test_sync_period_one_and_all_steps_bounded():
  opt = pw.laperm(optax.sgd(0.5), 1)
  params = make_params()
  state = opt.init(params)
  step = jax.jit(opt.update)
  for t in range(1, 4):
    grads = grads_at(t, params)
    inner_updates, _ = optax.sgd(0.5).update(grads, state.inner_state, params)
    updates, state = step(grads, state, params)
    params = check_sync(params, inner_updates, updates, state)


def test_sync_update_exact_where_naive_difference_misses():
  # Signed-constant initial weights (±1, cf. §5.5 and the Signed Kaiming Constant)
  # make every target a power of two; from small drifted params, fl(t - p) alone
  # sometimes misses t where its neighbouring float hits it.
  shape = (256, 16)
  sign = jnp.sign(jax.random.normal(jax.random.key(3), shape))
  inner = optax.sgd(0.1)
  opt = pw.laperm(inner, 1)
  state = opt.init({"w": sign})
  params = {"w": 0.3 * jax.random.normal(jax.random.key(5), shape)}
  grads = {"w": jax.random.normal(jax.random.key(4), shape)}
  inner_updates, _ = inner.update(grads, state.inner_state, params)
  target = np.asarray(pw.laperm_project(optax.apply_updates(params, inner_updates), state)["w"])
  updates, state = jax.jit(opt.update)(grads, state, params)
  got = np.asarray(optax.apply_updates(params, updates)["w"])
  p = np.asarray(params["w"])
  naive = (p + (target - p)) == target
  exact = got == target
  np.testing.assert_array_equal(exact, exact_update_exists(p, target))
  assert exact.sum() > naive.sum()
  assert np.all(exact | ~naive)


def test_reset_state_reinitialises_inner_state():
  inner = optax.adam(3e-2)
  opt = pw.laperm(inner, K, reset_state=True)
  params = make_params()
  state = opt.init(params)
  step, inner_update = jax.jit(opt.update), jax.jit(inner.update)
  for t in range(1, K + 1):
    grads = grads_at(t, params)
    expected, _ = inner_update(grads, state.inner_state, params)
    updates, state = step(grads, state, params)
    if t < K:
      assert_bits_equal(updates, expected)
    params = optax.apply_updates(params, updates)
  # After the sync the inner state is a fresh one for the synchronised params ...
  assert_bits_equal(state.inner_state, inner.init(params))
  # ... so the next update is the inner optimizer's first step, bit for bit.
  grads = grads_at(K + 1, params)
  updates, state = step(grads, state, params)
  expected, _ = inner_update(grads, inner.init(params), params)
  assert_bits_equal(updates, expected)


def test_where_selects_leaves():
  inner = optax.adam(3e-2)

  def only_conv(path, x):
    return jax.tree_util.keystr(path) == "['conv']['kernel']"

  opt = pw.laperm(inner, 2, where=only_conv)
  params = make_params()
  state = opt.init(params)
  assert isinstance(state.sorted_init["dense"]["kernel"], optax.MaskedNode)
  for t in range(1, 3):
    grads = grads_at(t, params)
    expected, _ = inner.update(grads, state.inner_state, params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  # At the sync the dense kernel still follows the inner optimizer exactly.
  np.testing.assert_array_equal(bits(updates["dense"]["kernel"]), bits(expected["dense"]["kernel"]))
  assert_columnwise_permutation(pw.laperm_project(params, state)["conv"]["kernel"], state.sorted_init["conv"]["kernel"])
  projected = pw.laperm_project(params, state)
  np.testing.assert_array_equal(bits(projected["dense"]["kernel"]), bits(params["dense"]["kernel"]))


def test_where_only_narrows_the_weight_matrices():
  """The package's one selection rule: a where that also matches biases leaves them to the inner optimizer."""
  params = make_params()
  everything = pw.laperm(optax.sgd(0.1), 2, where=lambda path, x: True).init(params)
  default = pw.laperm(optax.sgd(0.1), 2).init(params)
  assert jax.tree.structure(everything.sorted_init, is_leaf=lambda x: isinstance(x, optax.MaskedNode)) == (
    jax.tree.structure(default.sorted_init, is_leaf=lambda x: isinstance(x, optax.MaskedNode))
  )
  assert isinstance(everything.sorted_init["dense"]["bias"], optax.MaskedNode)
  assert_bits_equal(everything.sorted_init, default.sorted_init)


def test_tree_map_params_reaches_the_stored_weight_vectors():
  """optax.tree_map_params (e.g. to cast or shard an optimizer state) maps LaPerm's param-shaped trees too."""
  params = make_params()
  opt = pw.laperm(optax.adam(1e-2), 2)
  state = opt.init(params)
  cast = optax.tree_map_params(opt, lambda x: x.astype(jnp.bfloat16), state)
  assert cast.sorted_init["dense"]["kernel"].dtype == jnp.bfloat16
  assert isinstance(cast.sorted_init["dense"]["bias"], optax.MaskedNode)
  adam = cast.inner_state[0]
  assert adam.mu["dense"]["bias"].dtype == jnp.bfloat16 and adam.nu["conv"]["kernel"].dtype == jnp.bfloat16
  assert cast.count.dtype == jnp.int32  # not a parameter
  np.testing.assert_array_equal(
    np.asarray(cast.sorted_init["conv"]["kernel"], np.float32),
    np.asarray(state.sorted_init["conv"]["kernel"].astype(jnp.bfloat16), np.float32),
  )


@pytest.mark.parametrize(
  "where, match",
  [
    (lambda path, x: jnp.ndim(x) >= 2 and 1, "must return a Python bool"),
    ("kernel", "must be None or a callable"),
  ],
)
def test_where_rejects_bad_selection(where, match):
  with pytest.raises(ValueError, match=match):
    pw.laperm(optax.sgd(0.1), 2, where=where).init(make_params())


@pytest.mark.parametrize("sync_period", [0, -3, 1.5, True, "4", np.array([2, 3])])
def test_rejects_bad_sync_period(sync_period):
  with pytest.raises(ValueError, match="sync_period must be an integer >= 1"):
    pw.laperm(optax.sgd(0.1), sync_period)


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match="inner must be an optax.GradientTransformation"):
    pw.laperm(lambda g: g, 2)
  with pytest.raises(ValueError, match="reset_state must be a bool"):
    pw.laperm(optax.sgd(0.1), 2, reset_state="yes")
  opt = pw.laperm(optax.sgd(0.1), 2)
  params = make_params()
  with pytest.raises(ValueError, match="laperm needs params"):
    opt.update(params, opt.init(params))
  state = opt.init({"w": jnp.ones((3, 2))})
  with pytest.raises(ValueError, match="shape"):
    pw.laperm_project({"w": jnp.ones((2, 3))}, state)


# ---------------------------------------------------------------------------
# Composition: chain, inject_hyperparams, MultiSteps, vmap.


def test_chain_with_clipping_and_find_state():
  clip = optax.clip_by_global_norm(0.5)
  reference = optax.chain(clip, optax.adam(3e-2))
  opt = optax.chain(clip, pw.laperm(optax.adam(3e-2), K))
  params = make_params()
  state = opt.init(params)
  ref_state = reference.init(params)
  for t in range(1, K + 1):
    grads = grads_at(t, params)
    expected, ref_state = jax.jit(reference.update)(grads, ref_state, params)
    updates, state = jax.jit(opt.update)(grads, state, params)
    if t < K:
      assert_bits_equal(updates, expected)
      params = optax.apply_updates(params, updates)
  laperm_state = pw.find_laperm_state(state)
  assert laperm_state is state[1]
  params = check_sync(params, expected, updates, laperm_state)
  # laperm_project finds the state inside the chain by itself.
  assert_bits_equal(pw.laperm_project(params, state), pw.laperm_project(params, laperm_state))


def test_inject_hyperparams_inside_and_outside():
  params = make_params()
  # Inside: the inner optimizer's learning rate can be changed through the state.
  inner = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
  opt = pw.laperm(inner, K)
  state = opt.init(params)
  pw.find_laperm_state(state).inner_state.hyperparams["learning_rate"] = jnp.asarray(5e-2)
  grads = grads_at(1, params)
  updates, state = opt.update(grads, state, params)
  alone = optax.inject_hyperparams(optax.adam)(learning_rate=5e-2)
  expected, _ = alone.update(grads, alone.init(params), params)
  assert_bits_equal(updates, expected)

  # Outside: sync_period becomes a (traced) hyperparameter that can be changed.
  opt = optax.inject_hyperparams(pw.laperm, static_args="where")(inner=optax.sgd(0.1), sync_period=3)
  state = opt.init(params)
  step = jax.jit(opt.update)
  synced = []
  for t in range(1, 9):
    if t == 4:
      state.hyperparams["sync_period"] = jnp.asarray(2)
    grads = grads_at(t, params)
    expected, _ = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(params), params)
    updates, state = step(grads, state, params)
    synced.append(
      not all(
        np.array_equal(bits(a), bits(b))
        for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True)
      )
    )
    if synced[-1]:
      check_sync(params, expected, updates, pw.find_laperm_state(state))
    params = optax.apply_updates(params, updates)
  assert synced == [False, False, True, True, False, True, False, True]


def test_schedule_outside_laperm_survives_reset():
  # With reset_state=True a schedule inside the inner optimizer would restart at every
  # sync; wrapping LaPerm in inject_hyperparams keeps it running (see laperm docstring).
  schedule = optax.linear_schedule(1.0, 0.0, 10)
  opt = optax.inject_hyperparams(lambda learning_rate: pw.laperm(optax.sgd(learning_rate), 2, reset_state=True))(
    learning_rate=schedule
  )
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "b": jnp.zeros(3)}
  state = opt.init(params)
  for t in range(1, 6):
    grads = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
    updates, state = opt.update(grads, state, params)
    np.testing.assert_array_equal(updates["b"], -schedule(t - 1) * jnp.ones(3))
    params = optax.apply_updates(params, updates)


def test_multisteps():
  inner = optax.adam(3e-2)
  opt = optax.MultiSteps(pw.laperm(inner, 2), every_k_schedule=2)
  reference = optax.MultiSteps(inner, every_k_schedule=2)
  params = make_params()
  state, ref_state = opt.init(params), reference.init(params)
  step = jax.jit(opt.update)
  for t in range(1, 9):
    grads = grads_at(t, params)
    expected, ref_state = jax.jit(reference.update)(grads, ref_state, params)
    updates, state = step(grads, state, params)
    laperm_state = pw.find_laperm_state(state)
    assert int(laperm_state.count) == t // 2
    if t % 2:  # a mini-step: zero updates (signs of zero follow the discarded update)
      assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(updates))
    elif t % 4:
      assert_bits_equal(updates, expected)
      params = optax.apply_updates(params, updates)
    else:
      params = check_sync(params, expected, updates, laperm_state)
      ref_state = ref_state._replace(inner_opt_state=laperm_state.inner_state)


@pytest.mark.skipif(
  jax.__version_info__ < (0, 7, 1),
  reason="jax 0.7.0's XLA:CPU rounds the vmapped Adam update of a plain (not LaPerm) leaf 1 ulp away from the "
  "unbatched one (the LaPerm leaves match bit for bit)",
)
def test_vmap_over_seeds_matches_single_runs():
  inner = optax.adam(3e-2)
  opt = pw.laperm(inner, 2)
  seeds = jnp.arange(3)

  def init(seed):
    params = make_params(seed)
    return params, opt.init(params)

  def train(params, state):
    for t in range(1, 4):
      grads = grads_at(t, params)
      updates, state = opt.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    return pw.laperm_project(params, state), state

  def run(seed):
    return train(*init(seed))

  batched = jax.jit(jax.vmap(run))(seeds)
  run_single = jax.jit(run)
  for i in range(3):
    single = run_single(seeds[i])
    assert_bits_equal(jax.tree.map(lambda x: x[i], batched), single)
    for path in SELECTED:
      assert_columnwise_permutation(leaf(single[0], path), leaf(make_params(i), path))


def test_find_laperm_state_errors():
  with pytest.raises(ValueError, match="found 0"):
    pw.find_laperm_state(optax.adam(1e-3).init(make_params()))
  opt = optax.chain(pw.laperm(optax.sgd(0.1), 2), pw.laperm(optax.sgd(0.1), 3))
  with pytest.raises(ValueError, match="found 2"):
    pw.laperm_project(make_params(), opt.init(make_params()))


# ---------------------------------------------------------------------------
# laperm_project.


def test_project_hand_case_with_ties():
  w0 = jnp.array([[3.0, 0.0], [1.0, 0.0], [2.0, 5.0], [0.0, 5.0]])
  state = pw.laperm(optax.sgd(1.0), 1).init({"w": w0})
  reference = jnp.array([[7.0, 1.0], [7.0, 1.0], [-1.0, 1.0], [7.0, 0.0]])
  # Column 0 ranking (ties by position): -1 < 7@0 < 7@1 < 7@3 -> [1, 2, 0, 3].
  # Column 1: 0@3 < 1@0 < 1@1 < 1@2 -> sorted [0, 0, 5, 5] goes to rows 3, 0, 1, 2.
  expected = [[1.0, 0.0], [2.0, 5.0], [0.0, 5.0], [3.0, 0.0]]
  assert pw.laperm_project({"w": reference}, state)["w"].tolist() == expected


@settings(max_examples=20, deadline=None)
@given(
  st.sampled_from([(5, 3), (2, 2, 3, 4), (17, 1), (1, 6)]),
  st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float16]),
  st.integers(0, 2**31 - 1),
)
def test_project_matches_oracle(shape, dtype, seed):
  k1, k2 = jax.random.split(jax.random.key(seed))
  # Few distinct values so that ties are common in both arrays.
  w0 = jax.random.randint(k1, shape, -3, 4).astype(dtype) * 0.5
  reference = jax.random.randint(k2, shape, -2, 3).astype(dtype)
  state = pw.laperm(optax.sgd(1.0), 1).init({"w": w0})
  got = pw.laperm_project({"w": reference}, state)["w"]
  assert got.dtype == dtype
  np.testing.assert_array_equal(bits(got), bits(oracle_project(w0, reference)))


def test_project_float64_ranks_at_full_precision():
  with enable_x64(True):
    w0 = jnp.array([[1.0, 5.0], [1.0 + 2**-45, 3.0], [2.0, 1.0]], jnp.float64)
    # Distinct in float64, all equal in float32: the ranking must not round them.
    reference = jnp.array([[1.0 + 2**-50, 1.0], [1.0, 0.0], [1.0 + 2**-52, 2.0]], jnp.float64)
    state = pw.laperm(optax.sgd(1.0), 1).init({"w": w0})
    got = pw.laperm_project({"w": reference}, state)["w"]
    assert got.dtype == jnp.float64
    np.testing.assert_array_equal(bits(got), bits(oracle_project(w0, reference)))
    assert got[:, 0].tolist() == [2.0, 1.0, 1.0 + 2**-45]


def test_project_moves_special_values_bitwise():
  w0 = jnp.array([[-0.0, jnp.inf], [0.0, -jnp.inf], [jnp.nan, 1.0], [2.0, -0.0]])
  state = pw.laperm(optax.sgd(1.0), 1).init({"w": w0})
  got = pw.laperm_project({"w": jnp.arange(8.0).reshape(4, 2)[::-1]}, state)["w"]
  assert_columnwise_permutation(got, w0)


# ---------------------------------------------------------------------------
# random_prune.


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.75, 1.0])
def test_random_prune_counts_and_multiset(fraction):
  params = make_params()
  pruned = pw.random_prune(jax.random.key(7), params, fraction)
  for path in SELECTED:
    x, y = columns(leaf(params, path)), columns(leaf(pruned, path))
    changed = bits(x) != bits(y)
    # Exactly round(fraction * n) entries of every weight vector became +0.0; the
    # initial uniform weights have no zeros, so the zeros are exactly the pruned ones.
    np.testing.assert_array_equal(changed.sum(axis=-1), round(fraction * x.shape[1]))
    np.testing.assert_array_equal(bits(y[changed]), np.zeros(changed.sum(), bits(y).dtype))
    np.testing.assert_array_equal(bits(y[~changed]), bits(x[~changed]))
  for path in (("conv", "bias"), ("dense", "bias"), ("scale",)):
    assert leaf(pruned, path) is leaf(params, path)


def test_random_prune_keys_rounding_and_errors():
  params = make_params()
  a = pw.random_prune(jax.random.key(1), params, 0.5)
  b = pw.random_prune(jax.random.key(1), params, 0.5)
  c = pw.random_prune(jax.random.key(2), params, 0.5)
  assert_bits_equal(a, b)
  assert not np.array_equal(a["dense"]["kernel"], c["dense"]["kernel"])
  # Keys come from leaf paths: removing another leaf does not change this one.
  alone = pw.random_prune(jax.random.key(1), {"dense": params["dense"]}, 0.5)
  np.testing.assert_array_equal(alone["dense"]["kernel"], a["dense"]["kernel"])
  # round() with ties to even: 0.5 * 5 -> 2, 0.5 * 3 -> 2.
  w = pw.random_prune(jax.random.key(0), jnp.ones((5, 4)), 0.5)
  assert (w == 0).sum(axis=0).tolist() == [2, 2, 2, 2]
  w = pw.random_prune(jax.random.key(0), jnp.ones((3, 4)), 0.5)
  assert (w == 0).sum(axis=0).tolist() == [2, 2, 2, 2]
  with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
    pw.random_prune(jax.random.key(0), params, 1.5)
  with pytest.raises(ValueError, match="fraction must be a concrete number"):
    jax.jit(lambda f: pw.random_prune(jax.random.key(0), params, f))(0.5)
  with pytest.raises(ValueError, match="ndim >= 2"):
    pw.random_prune(jax.random.key(0), jnp.ones(5), 0.5)


def test_pruned_laperm_keeps_zeros_and_vmaps_over_keys():
  keys = jax.random.split(jax.random.key(0), 2)
  params = jax.vmap(lambda k: pw.random_prune(k, make_params(), 0.5))(keys)
  for i in range(2):
    single = pw.random_prune(keys[i], make_params(), 0.5)
    assert_bits_equal(jax.tree.map(lambda x: x[i], params), single)
  params = jax.tree.map(lambda x: x[0], params)
  opt = pw.laperm(optax.adam(3e-2), 2)
  state = opt.init(params)
  for t in range(1, 3):
    updates, state = opt.update(grads_at(t, params), state, params)
    params = optax.apply_updates(params, updates)
  kernel = columns(pw.laperm_project(params, state)["dense"]["kernel"])
  np.testing.assert_array_equal((kernel == 0).sum(axis=-1), 6)  # zeros were moved, not lost


# ---------------------------------------------------------------------------
# Diagnostics.


def test_ranking_distance_hand_cases():
  # Two weight vectors of size 3. Vector 0: ranks [0,1,2] -> [2,1,0], D = [2,0,2].
  # Vector 1: ranks [1,0,2] -> [0,1,2] (tie at 5 broken by position), D = [1,1,0].
  prev = jnp.array([[1.0, 5.0], [2.0, 4.0], [3.0, 6.0]])
  cur = jnp.array([[9.0, 5.0], [8.0, 5.0], [7.0, 6.0]])
  d = pw.ranking_distance(prev, cur)
  # D over all 6 entries: [2,0,2,1,1,0]; mean 1, population SD sqrt(4/6); both / 3.
  np.testing.assert_allclose(float(d.mean), 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(float(d.std), np.sqrt(4 / 6) / 3, rtol=1e-6)
  same = pw.ranking_distance(prev, prev * 2.0 + 1.0)
  assert float(same.mean) == 0.0 and float(same.std) == 0.0


def test_ranking_distance_tree_and_jit():
  params = make_params()
  moved = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(9), x.shape), params)
  tree = jax.jit(pw.ranking_distance)(params, moved)
  assert tree["dense"]["bias"] is None and tree["scale"] is None
  for path in SELECTED:
    prev, cur = columns(leaf(params, path)), columns(leaf(moved, path))

    def ranks(c):
      return np.argsort(np.argsort(c, axis=-1, kind="stable"), axis=-1, kind="stable")

    distance = np.abs(ranks(cur) - ranks(prev)) / prev.shape[1]
    result = leaf(tree, path)
    assert isinstance(result, pw.RankingDistance)
    np.testing.assert_allclose(float(result.mean), distance.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(result.std), distance.std(), rtol=1e-5)
  with pytest.raises(ValueError, match="same shape"):
    pw.ranking_distance(jnp.ones((3, 2)), jnp.ones((2, 3)))


def test_weight_deviation_hand_case_and_tree():
  w0 = jnp.array([[1.0, -2.0], [0.0, 2.0]])
  w = jnp.array([[2.0, -2.0], [-3.0, 2.0]])
  d = pw.weight_deviation(w0, w)  # delta = [1, 0, -3, 0]; |w0| = 3
  assert isinstance(d, pw.WeightDeviation)
  assert float(d.mean) == -0.5
  np.testing.assert_allclose(float(d.std), np.sqrt((2.25 + 0.25 + 6.25 + 0.25) / 4), rtol=1e-6)
  assert float(d.mean_abs) == 1.0 and float(d.max_abs) == 3.0
  np.testing.assert_allclose(float(d.relative), np.sqrt(10) / 3, rtol=1e-6)

  params = make_params()
  moved = jax.tree.map(lambda x: x + 0.25, params)
  tree = jax.jit(pw.weight_deviation)(params, moved)
  assert tree["conv"]["bias"] is None
  kernel = tree["dense"]["kernel"]
  np.testing.assert_allclose([kernel.mean, kernel.mean_abs, kernel.max_abs], 0.25, rtol=1e-6)
  np.testing.assert_allclose(float(kernel.std), 0.0, atol=1e-7)
  everything = pw.weight_deviation(params, moved, where=lambda path, x: True)
  assert float(everything["scale"].relative) == pytest.approx(0.25)
  assert float(everything["conv"]["bias"].relative) == np.inf  # zero-initialised bias
  with pytest.raises(ValueError, match="same shape"):
    pw.weight_deviation(jnp.ones((3, 2)), jnp.ones((2, 3)))


# ---------------------------------------------------------------------------
# The measurement quoted in the laperm module docstring (run with -m slow -s).


@pytest.mark.slow
@pytest.mark.parametrize(
  "name, init, learning_rate",
  [
    ("he_uniform", jax.nn.initializers.he_uniform(), 1e-3),
    ("he_uniform", jax.nn.initializers.he_uniform(), 1e-1),
    ("signed 2^-5", lambda k, s: jnp.sign(jax.random.normal(k, s)) / 32, 1e-3),
  ],
)
def test_measure_sync_exactness(name, init, learning_rate):
  shape, syncs = (784, 100), 10
  inner = optax.adam(learning_rate)
  opt = pw.laperm(inner, 20)
  params = {"w": init(jax.random.key(0), shape)}
  state = opt.init(params)
  step = jax.jit(opt.update)
  exact = naive = total = 0
  for t in range(1, 20 * syncs + 1):
    grads = {"w": jax.random.normal(jax.random.fold_in(jax.random.key(1), t), shape)}
    if t % 20 == 0:
      inner_updates, _ = inner.update(grads, state.inner_state, params)
      target = pw.laperm_project(optax.apply_updates(params, inner_updates), state)["w"]
      naive += int(((params["w"] + (target - params["w"])) == target).sum())
      possible = exact_update_exists(np.asarray(params["w"]), np.asarray(target))
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
    if t % 20 == 0:
      hit = np.asarray(params["w"] == target)
      np.testing.assert_array_equal(hit, possible)
      exact += int(hit.sum())
      total += target.size
  print(
    f"\n{name}, adam({learning_rate:g}), k=20, {syncs} syncs: exact after apply_updates "
    f"{exact / total:.4%}; plain t - p: {naive / total:.4%}"
  )
  assert exact >= naive
