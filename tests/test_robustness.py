"""Robustness of rewiring beyond tests/test_rewiring.py: hostile values, extreme shapes and offsets, x64, keys.

tests/test_rewiring.py already checks permutations of ordinary draws, one
matrix with NaN/Inf/denormal/signed zeros, zero sizes, float64, and typed vs
legacy keys for ``pa_rewire``. Here:

* arbitrary bit patterns (every NaN payload, Inf, denormals, huge values that
  overflow the strengths) in float32/bfloat16/float16, any axes, passes and
  offsets, including offsets that round to 0 or Inf in float32;
* constant arrays in every dtype; n = 1 sides, alone, inside stacks and
  convolutions;
* skewed shapes on both argsort paths (n > 32768 leaves the packed path);
* float32 results independent of ``jax_enable_x64``; float64 initializers;
* PRNG implementations other than threefry, legacy keys with batch axes.
"""

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_bit_permutation, assert_bits_equal, bits, enable_x64
from hypothesis import given, settings, strategies as st
from jax.nn import initializers as jinit
from oracle import pa_rewire_oracle

import parewire_jax as pw
from parewire_jax import sorting

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
PASSES = [("in",), ("out",), ("in", "out"), ("out", "in"), ("in", "out", "in")]


def _special_bit_patterns(dtype) -> list[int]:
  """NaNs (quiet, signalling, negative, payloads), ±Inf, ±0, denormals, ±max, ±1."""
  finfo = jnp.finfo(dtype)
  values = np.array(
    [
      0.0,
      -0.0,
      np.inf,
      -np.inf,
      finfo.max,
      -finfo.max,
      finfo.smallest_subnormal,
      -finfo.smallest_subnormal,
      finfo.smallest_normal,
      1.0,
      -1.0,
    ],
    dtype,
  )
  bits = [int(b) for b in values.view(f"uint{finfo.bits}")]
  exponent_all_ones = int(np.array(np.inf, dtype).view(f"uint{finfo.bits}"))
  sign = 1 << (finfo.bits - 1)
  nans = [exponent_all_ones | 1, exponent_all_ones | (1 << (finfo.nmant - 1)), sign | exponent_all_ones | 3]
  return bits + nans


@settings(max_examples=10, deadline=None)
@given(
  shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7),
  dtype=st.sampled_from(DTYPES),
  passes=st.sampled_from(PASSES),
  offset=st.one_of(st.floats(1e-3, 10.0), st.sampled_from([1e-300, 1e-40, 1e30, 1e300])),
  data=st.data(),
)
def test_any_bit_patterns_axes_passes_offsets(shape, dtype, passes, offset, data):
  """Whatever the values (NaN payloads, Inf, overflowing strengths), the result is a permutation of them."""
  bits_dtype = np.dtype(f"uint{jnp.finfo(dtype).bits}")
  special = _special_bit_patterns(dtype)
  elements = st.one_of(st.sampled_from(special), st.integers(0, np.iinfo(bits_dtype).max))
  raw = data.draw(hnp.arrays(bits_dtype, shape, elements=elements))
  w = jnp.asarray(raw.view(jnp.dtype(dtype)))
  axes = data.draw(st.permutations(range(len(shape))))
  n_batch = data.draw(st.integers(0, len(shape) - 2))
  kwargs = dict(out_axis=axes[n_batch], batch_axis=tuple(axes[:n_batch]), passes=passes, offset=offset)
  key = jax.random.key(data.draw(st.integers(0, 2**32 - 1)))
  r = pw.rewire(key, w, **kwargs)
  assert_bit_permutation(r, w)
  assert int(jnp.isnan(r).sum()) == int(jnp.isnan(w).sum())  # never a NaN introduced
  assert_bits_equal(pw.rewire(key, w, **kwargs), r)  # deterministic per key


@pytest.mark.parametrize("nan_bits", [0x7F81, 0x7FC1], ids=["signalling", "quiet-payload"])
def test_bfloat16_nan_payload_is_kept(nan_bits):
  w = jnp.asarray(np.array([[nan_bits, 0x3F80], [0xBF80, nan_bits]], np.uint16).view(jnp.bfloat16))
  assert_bit_permutation(pw.pa_rewire(jax.random.key(0), w, passes=("in",)), w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_arrays_come_back_bit_for_bit(dtype):
  """All-equal inputs (zero, NaN, Inf, a denormal, any value) leave nothing to reorder."""
  finfo = jnp.finfo(dtype)
  for value in (0.0, -0.0, 0.25, np.nan, -np.inf, finfo.smallest_subnormal, finfo.max):
    w = jnp.full((3, 9, 6), value, dtype)
    assert_bits_equal(pw.rewire(jax.random.key(0), w, batch_axis=0), w)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_signed_zeros_are_a_permutation(dtype):
  signs = jax.random.bernoulli(jax.random.key(0), 0.5, (12, 10))
  w = jnp.where(signs, jnp.array(-0.0, dtype), jnp.array(0.0, dtype))
  r = pw.pa_rewire(jax.random.key(1), w)
  assert_bit_permutation(r, w)
  assert int(jnp.signbit(r).sum()) == int(jnp.signbit(w).sum())


@pytest.mark.parametrize(
  "shape, kwargs",
  [
    ((1, 9), {}),
    ((9, 1), {}),
    ((1, 1), {}),
    ((1, 65536), {}),
    ((65536, 1), {}),
    ((5, 1, 7), dict(batch_axis=0)),  # stacked matrices with one input each
    ((4, 9, 1), dict(batch_axis=0)),  # ... with one output each
    ((1, 1, 1, 8), {}),  # a 1x1 convolution on one input channel
    ((0, 6, 5), dict(batch_axis=0)),  # no matrices at all
    ((3, 0, 5), dict(batch_axis=0)),
  ],
  ids=str,
)
def test_single_input_or_output_or_empty_is_returned_unchanged(shape, kwargs):
  """With one input (or output) every ranking is the identity: not just a permutation, the same array."""
  w = jax.random.normal(jax.random.key(0), shape)
  r = pw.rewire(jax.random.key(1), w, **kwargs)
  assert r.shape == w.shape
  assert_bits_equal(r, w)


def test_skewed_shapes_beyond_the_packed_argsort():
  """65536 inputs take the key–index pair sort on the CPU: strengths still match Algorithm 1 in NumPy.

  The transposed matrix under pass "out" is the same computation, bit for bit.
  """
  w = jax.random.normal(jax.random.key(0), (65536, 2))  # unscaled: Eq. 5 strongly prefers big strengths
  r = pw.pa_rewire(jax.random.key(1), w, passes=("in",))
  assert_bit_permutation(r, w)
  assert_bits_equal(pw.pa_rewire(jax.random.key(1), w.T, passes=("out",)), r.T)
  oracle = pa_rewire_oracle(np.asarray(w), np.random.default_rng(0), passes=("in",))
  before, ours, expected = (float(np.asarray(m).sum(1).var()) for m in (w, r, oracle))
  assert ours < 0.9 * before
  assert abs(ours - expected) < 0.03 * expected, (before, ours, expected)


@pytest.mark.parametrize("n", [32768, 32769], ids=["packed", "pairs"])
def test_stable_argsort_on_both_sides_of_the_packed_limit(n):
  """n - 1 needs 15 bits at 32768 (packed path) and 16 at 32769 (pair path); both equal NumPy's stable sort."""
  x = jax.random.randint(jax.random.key(n), (n,), -50, 50).astype(jnp.float32)  # many ties
  x = x.at[:4].set(jnp.array([0.0, -0.0, jnp.inf, -jnp.inf]))
  expected = np.argsort(bits(sorting.to_sortable_bits(x)).view(np.int32), kind="stable")
  np.testing.assert_array_equal(sorting.stable_argsort(x), expected)
  np.testing.assert_array_equal(sorting.stable_argsort_packed(sorting.to_sortable_bits(x)), expected)


# --------------------------------------------------------------------------- x64


def test_float32_results_do_not_depend_on_x64():
  w = jax.random.normal(jax.random.key(0), (2, 20, 14))
  key = jax.random.key(1)
  without = pw.rewire(key, w, batch_axis=0)
  with enable_x64(True):
    with_x64 = pw.rewire(key, w, batch_axis=0)
  assert with_x64.dtype == jnp.float32
  assert_bits_equal(with_x64, without)


def test_float64_initializer_with_batch_axis_under_x64():
  with enable_x64(True):
    base = jinit.he_normal(batch_axis=0)
    key, shape = jax.random.key(2), (3, 16, 10)
    w = pw.rewired(base, batch_axis=0)(key, shape, jnp.float64)
    expected = base(key, shape, jnp.float64)
    assert w.dtype == jnp.float64
    for layer, base_layer in zip(w, expected, strict=True):
      assert_bit_permutation(layer, base_layer)
    # Values that only exist in float64 (below float32's smallest subnormal) are moved, not rounded.
    tiny = jnp.full((6, 5), 1e-310, jnp.float64).at[0, 0].set(-1e-320)
    assert_bit_permutation(pw.pa_rewire(key, tiny), tiny)


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_prng_implementations(impl):
  w = jax.random.normal(jax.random.key(0), (12, 10))
  key = jax.random.key(5, impl=impl)
  r = pw.pa_rewire(key, w)
  assert_bit_permutation(r, w)
  assert_bits_equal(pw.pa_rewire(key, w), r)
  assert not np.array_equal(r, pw.pa_rewire(jax.random.key(6, impl=impl), w))
  assert float(pw.strength_stats(r).mean_variance) < float(pw.strength_stats(w).mean_variance)


def test_legacy_keys_with_batch_axes_and_vmap():
  stack = jax.random.normal(jax.random.key(0), (3, 10, 7))
  legacy = jax.random.PRNGKey(9)
  chex.assert_trees_all_equal(
    pw.rewire(legacy, stack, batch_axis=0), pw.rewire(jax.random.wrap_key_data(legacy), stack, batch_axis=0)
  )
  init = pw.rewired(jinit.lecun_normal())
  legacy_keys = jax.random.split(legacy, 3)  # uint32[3, 2]
  batched = jax.vmap(lambda k: init(k, (10, 7)))(legacy_keys)
  for k, w in zip(legacy_keys, batched, strict=True):
    chex.assert_trees_all_equal(w, init(jax.random.wrap_key_data(k), (10, 7)))


# --------------------------------------------------------------------------- input validation gaps


BAD_KEYS = [0, jnp.arange(3, dtype=jnp.uint32), jnp.ones(2), jax.random.split(jax.random.key(0), 2)]
ENTRY_POINTS = {
  "pa_rewire": lambda key: pw.pa_rewire(key, jnp.ones((4, 4))),
  "rewire": lambda key: pw.rewire(key, jnp.ones((2, 4, 4)), batch_axis=0),
  "rewired": lambda key: pw.rewired(jinit.normal())(key, (4, 4)),
  "min_strength_variance": lambda key: pw.min_strength_variance(jinit.normal(), 3)(key, (4, 4)),
  "rewire_params": lambda key: pw.rewire_params(key, {"w": jnp.ones((4, 3))}),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("key", BAD_KEYS, ids=["int", "uint32[3]", "float[2]", "two keys"])
def test_bad_key_is_a_value_error_naming_key(entry, key):
  with pytest.raises(ValueError, match="key must be a single PRNG key"):
    ENTRY_POINTS[entry](key)


def test_array_like_matrix_is_accepted_or_rejected_clearly():
  w = [[0.5, -1.0], [2.0, 0.25]]
  try:
    r = pw.pa_rewire(jax.random.key(0), w)
  except (ValueError, TypeError) as e:
    assert "matrix" in str(e)
  else:
    assert_bit_permutation(r, jnp.asarray(w))
