"""Tests of pa_rewire / rewire: exactness, the oracle, sampling probabilities, determinism."""

import hashlib
import itertools

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from helpers import assert_bit_permutation, enable_x64
from hypothesis import given, settings, strategies as st
from oracle import pa_rewire_oracle
from scipy import stats

import parewire_jax as pw
from parewire_jax import rewiring, sorting

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _random_weights(seed, shape, dtype=jnp.float32):
  return (jax.random.normal(jax.random.key(seed), shape) / np.sqrt(shape[-2])).astype(dtype)


# --------------------------------------------------------------------------- exactness


@settings(max_examples=12, deadline=None)
@given(
  n_in=st.integers(1, 40),
  n_out=st.integers(1, 40),
  dtype=st.sampled_from(DTYPES),
  passes=st.sampled_from([("in",), ("out",), ("in", "out"), ("out", "in"), ("in", "out", "in")]),
  offset=st.floats(1e-3, 10.0),
  seed=st.integers(0, 2**31 - 1),
)
def test_pa_rewire_is_bit_exact_permutation(n_in, n_out, dtype, passes, offset, seed):
  w = _random_weights(seed, (n_in, n_out), dtype)
  r = pw.pa_rewire(jax.random.key(seed), w, passes=passes, offset=offset)
  assert_bit_permutation(r, w)


@settings(max_examples=12, deadline=None)
@given(
  shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5),
  dtype=st.sampled_from(DTYPES),
  data=st.data(),
)
def test_rewire_any_rank_and_axes_is_bit_exact_permutation(shape, dtype, data):
  ndim = len(shape)
  axes = data.draw(st.permutations(range(ndim)))
  n_batch = data.draw(st.integers(0, ndim - 2))
  batch_axis, out_axis = tuple(axes[:n_batch]), axes[n_batch]
  w = _random_weights(data.draw(st.integers(0, 1000)), shape, dtype)
  r = pw.rewire(jax.random.key(0), w, out_axis=out_axis, batch_axis=batch_axis)
  assert_bit_permutation(r, w)
  # Batch matrices never exchange values.
  if batch_axis:
    m_r, _ = pw.as_matrices(r, out_axis, batch_axis)
    m_w, _ = pw.as_matrices(w, out_axis, batch_axis)
    for b in range(m_w.shape[0]):
      assert_bit_permutation(m_r[b], m_w[b])


def test_float64_under_x64():
  with enable_x64(True):
    w = jax.random.normal(jax.random.key(0), (50, 30), jnp.float64)
    r = pw.pa_rewire(jax.random.key(1), w)
    assert r.dtype == jnp.float64
    assert_bit_permutation(r, w)


def test_pass_in_permutes_within_columns_and_keeps_column_zero():
  w = _random_weights(0, (20, 12))
  r = pw.pa_rewire(jax.random.key(1), w, passes=("in",))
  np.testing.assert_array_equal(r[:, 0], w[:, 0])
  for x in range(12):
    assert_bit_permutation(r[:, x], w[:, x])
  assert not np.array_equal(r, w)


def test_pass_out_permutes_within_rows_and_keeps_row_zero():
  w = _random_weights(0, (20, 12))
  r = pw.pa_rewire(jax.random.key(1), w, passes=("out",))
  np.testing.assert_array_equal(r[0], w[0])
  for i in range(20):
    assert_bit_permutation(r[i], w[i])
  assert not np.array_equal(r, w)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (3, 0, 4)])
def test_zero_size_returns_input_unchanged(shape):
  w = jnp.zeros(shape, jnp.float32)
  assert pw.rewire(jax.random.key(0), w).shape == shape
  if len(shape) == 2:
    assert pw.pa_rewire(jax.random.key(0), w).shape == shape
  assert pw.rewired(jax.nn.initializers.normal())(jax.random.key(0), shape).shape == shape


def test_nan_inf_and_signed_zeros_are_kept():
  w = np.array(_random_weights(3, (16, 16)))
  w[1, 2], w[5, 7], w[9, 9], w[4, 4], w[0, 3] = np.nan, np.inf, -np.inf, -0.0, 0.0
  w[7, 1] = np.float32(1e-40)  # denormal
  r = pw.pa_rewire(jax.random.key(0), jnp.asarray(w))
  assert_bit_permutation(r, w)
  assert int(np.isnan(np.asarray(r)).sum()) == 1


# --------------------------------------------------------------------------- sorting primitives


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int32, st.integers(1, 300), elements=st.integers(-5, 5)))
def test_packed_argsort_equals_pair_argsort_and_numpy_stable(keys):
  bits = jnp.asarray(keys)
  expected = np.argsort(keys, kind="stable")
  np.testing.assert_array_equal(sorting.stable_argsort_packed(bits), expected)
  np.testing.assert_array_equal(sorting.stable_argsort_pairs(bits), expected)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.int32, st.integers(1, 300), elements=st.integers(-3, 3)))
def test_stable_rank_is_the_inverse_of_the_stable_argsort(keys):
  """Many equal keys: the rounds that settle them must give numpy's stable order, on both paths."""
  expected = np.empty(len(keys), np.int64)
  expected[np.argsort(keys, kind="stable")] = np.arange(len(keys))
  np.testing.assert_array_equal(sorting.stable_rank_by_search(jnp.asarray(keys)), expected)
  np.testing.assert_array_equal(sorting._rank_from_argsort(jnp.asarray(keys)), expected)


def test_stable_rank_float_order_and_batches():
  x = jnp.array([[0.5, -1.0, 0.0, -0.0, 3.0, -1.0, jnp.inf, -jnp.inf]] * 2, jnp.float32)
  np.testing.assert_array_equal(sorting.stable_rank(x), [[5, 1, 4, 3, 6, 2, 7, 0]] * 2)
  np.testing.assert_array_equal(jax.vmap(sorting.stable_rank)(x), sorting.stable_rank(x))


def test_stable_argsort_float_order():
  x = jnp.array([0.5, -1.0, 0.0, -0.0, 3.0, -1.0, jnp.inf, -jnp.inf], jnp.float32)
  np.testing.assert_array_equal(sorting.stable_argsort(x), [7, 1, 5, 3, 2, 0, 4, 6])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_exact_matches_numpy(dtype):
  x = np.array(_random_weights(0, (7, 33), dtype))
  x[0, :4] = [0.0, -0.0, np.inf, -np.inf]
  np.testing.assert_array_equal(np.asarray(sorting.sort_exact(jnp.asarray(x))), np.sort(x, axis=-1))


# --------------------------------------------------------------------------- distribution


def test_matches_numpy_oracle_strength_variance():
  """Mean input/output strength variance over many seeds agrees with Algorithm 1 in NumPy."""
  num_seeds, shape = 40, (48, 40)
  bases = [np.asarray(_random_weights(s, shape)) for s in range(num_seeds)]
  jax_out = jax.vmap(pw.pa_rewire)(jax.random.split(jax.random.key(7), num_seeds), jnp.stack(bases))
  ours = [pw.strength_stats(m) for m in jax_out]
  oracle = [pw.strength_stats(pa_rewire_oracle(b, np.random.default_rng(s))) for s, b in enumerate(bases)]
  for field in ("in_variance", "out_variance"):
    mean_ours = np.mean([getattr(s, field) for s in ours])
    mean_oracle = np.mean([getattr(s, field) for s in oracle])
    base = np.mean([getattr(pw.strength_stats(b), field) for b in bases])
    assert mean_ours < base / 5
    assert abs(mean_ours - mean_oracle) <= 0.10 * mean_oracle, (field, mean_ours, mean_oracle)


def _plackett_luce_pair_probs(p):
  p = p / p.sum()
  return {(i, j): p[i] * p[j] / (1 - p[i]) for i, j in itertools.permutations(range(len(p)), 2)}


def test_sampling_probabilities_chi_square():
  """Who receives column 1's smallest and second-smallest weight follows Eq. 5 (Plackett–Luce)."""
  col0 = np.array([-1.5, -0.25, 0.5, 2.0], np.float32)
  col1 = np.array([0.3, -0.7, 0.1, 0.9], np.float32)  # smallest: -0.7, second: 0.1
  w = jnp.asarray(np.stack([col0, col1], axis=1))
  offset = 1.0
  p = col0.astype(np.float64) + abs(col0.min()) + offset
  n = 20000
  out = np.asarray(
    jax.jit(jax.vmap(lambda k: pw.pa_rewire(k, w, passes=("in",))))(jax.random.split(jax.random.key(123), n))
  )
  first = np.argmax(out[:, :, 1] == -0.7, axis=1)
  second = np.argmax(out[:, :, 1] == np.float32(0.1), axis=1)
  # First draw: P(i).
  observed = np.bincount(first, minlength=4)
  _, p_value = stats.chisquare(observed, n * p / p.sum())
  assert p_value > 1e-3, (observed, n * p / p.sum())
  # First two draws: Plackett–Luce pair probabilities (sampling without replacement).
  pair_probs = _plackett_luce_pair_probs(p)
  pairs = list(pair_probs)
  observed_pairs = np.array([np.sum((first == i) & (second == j)) for i, j in pairs])
  _, p_value = stats.chisquare(observed_pairs, n * np.array([pair_probs[q] for q in pairs]))
  assert p_value > 1e-3
  # And the test has power: uniform sampling would be rejected.
  _, p_uniform = stats.chisquare(observed, np.full(4, n / 4))
  assert p_uniform < 1e-6


def test_offset_changes_probabilities():
  """A huge offset flattens Eq. 5 towards uniform; the draw of the smallest weight follows."""
  col0 = np.array([-1.5, -0.25, 0.5, 2.0], np.float32)
  w = jnp.asarray(np.stack([col0, np.array([0.3, -0.7, 0.1, 0.9], np.float32)], axis=1))
  n = 8000
  out = np.asarray(
    jax.vmap(lambda k: pw.pa_rewire(k, w, passes=("in",), offset=1e6))(jax.random.split(jax.random.key(5), n))
  )
  observed = np.bincount(np.argmax(out[:, :, 1] == np.float32(-0.7), axis=1), minlength=4)
  _, p_value = stats.chisquare(observed, np.full(4, n / 4))
  assert p_value > 1e-3


@pytest.mark.parametrize(
  "base_init",
  [
    jax.nn.initializers.he_normal(),
    jax.nn.initializers.orthogonal(),
    jax.nn.initializers.he_uniform(),
  ],
  ids=["kaiming_normal", "orthogonal", "kaiming_uniform"],
)
def test_strength_variance_falls_by_an_order_of_magnitude_at_1024(base_init):
  """Fig. 1b: after both passes a 1024×1024 layer's strength distribution collapses towards 0."""
  w = base_init(jax.random.key(0), (1024, 1024), jnp.float32)
  r = jax.jit(pw.pa_rewire)(jax.random.key(1), w)
  before, after = pw.strength_stats(w), pw.strength_stats(r)
  assert after.in_variance < before.in_variance / 10
  assert after.out_variance < before.out_variance / 10
  assert after.in_max_abs < before.in_max_abs / 2
  assert after.out_max_abs < before.out_max_abs / 2


# --------------------------------------------------------------------------- golden outputs


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="other backends may round log/Gumbel differently")
@pytest.mark.skipif(
  jax.__version_info__ < (0, 8, 2),
  reason="the digests assume jax>=0.8.2's jax.random.normal draw of the input; older jax draws other values "
  "(the rewiring of a given matrix is bit-identical there)",
)
@pytest.mark.parametrize(
  "dtype, passes, digest",
  [
    ("float32", ("in", "out"), "ee56bd067b0a4540"),
    ("float32", ("out", "in"), "94c2895a3e911e58"),
    ("bfloat16", ("in", "out"), "04e453f420f099e8"),
    ("bfloat16", ("out", "in"), "c94b461ae8a05ee8"),
    ("float16", ("in", "out"), "3e3e3916479c1bb2"),
    ("float16", ("out", "in"), "ab96c498b4fc7150"),
  ],
)
def test_outputs_are_unchanged(dtype, passes, digest):
  """A refactor of the algorithm must not change a single bit of its output for a given key.

  The digests were computed with the first (stacked scan output) layout and
  still hold for the in-place scan; a deliberate change of the algorithm or
  of its key scheme updates them.
  """
  w = jax.random.normal(jax.random.key(0), (37, 23), jnp.dtype(dtype))
  r = pw.pa_rewire(jax.random.key(1), w, passes=passes)
  assert hashlib.sha256(np.asarray(r).tobytes()).hexdigest()[:16] == digest


# --------------------------------------------------------------------------- scale-free draws


def test_scale_free_default_is_the_paper_and_scale_free_is_a_permutation():
  w = 0.02 * _random_weights(6, (128, 128))
  key = jax.random.key(2)
  np.testing.assert_array_equal(pw.pa_rewire(key, w, scale_free=False), pw.pa_rewire(key, w))
  r = pw.pa_rewire(key, w, scale_free=True)
  assert_bit_permutation(r, w)
  assert not np.array_equal(r, pw.pa_rewire(key, w))


def test_scale_free_draws_do_not_depend_on_the_scale():
  """The draws see ``w`` at Kaiming scale: any positive rescaling of ``w`` moves its weights the same way."""
  w = _random_weights(7, (96, 64))
  key = jax.random.key(3)
  a = pw.pa_rewire(key, w, scale_free=True)
  b = pw.pa_rewire(key, w * 0.25, scale_free=True)  # exact: a power of two
  np.testing.assert_array_equal(np.asarray(a) * 0.25, b)


def test_scale_free_recovers_the_variance_drop_of_small_kernels():
  """Eq. 5's +1 swamps std-0.02 strengths; the scale-free draws get Kaiming-scale reductions (issue 25's figures)."""
  w = 0.02 * _random_weights(8, (128, 128))
  before = pw.strength_stats(w)
  paper = pw.strength_stats(pw.rewire(jax.random.key(0), w))
  free = pw.strength_stats(pw.rewire(jax.random.key(0), w, scale_free=True))
  assert free.in_variance < paper.in_variance / 2
  assert free.in_variance < before.in_variance / 8 and free.out_variance < before.out_variance / 8


def test_kaiming_scale_of_degenerate_matrices_is_one():
  assert float(rewiring.kaiming_scale(jnp.zeros((4, 3)))) == 1.0
  assert float(rewiring.kaiming_scale(jnp.full((4, 3), jnp.nan))) == 1.0
  np.testing.assert_allclose(float(rewiring.kaiming_scale(jnp.array([[1.0], [-1.0]]))), 1.0)  # std 1, sqrt(2/2)


@pytest.mark.parametrize("value", [1, "yes", None, jnp.array(True)])
def test_scale_free_must_be_a_bool(value):
  with pytest.raises(ValueError, match="scale_free must be True or False"):
    pw.pa_rewire(jax.random.key(0), jnp.ones((4, 4)), scale_free=value)


# --------------------------------------------------------------------------- memory


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="pins XLA:CPU's buffer assignment; GPU sorts use scratch")
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("passes, factor", [(("in",), 1), (("out",), 1), (("in", "out"), 2)])
@pytest.mark.parametrize("batch", [None, 4])
def test_working_memory_is_one_matrix_per_pass(dtype, passes, factor, batch):
  """XLA's buffer assignment: one sorted working copy per pass, plus one at the transpose between passes.

  The scan overwrites the carried matrix in place; a stacked scan output or a
  concatenation would each add another matrix.
  """
  shape = (batch or 1, 512, 384)
  stack = jax.ShapeDtypeStruct(shape, dtype)
  keys = jax.ShapeDtypeStruct((batch or 1,), jax.random.key(0).dtype)
  analysis = rewiring.rewire_stack.lower(keys, stack, passes=passes, offset=1.0).compile().memory_analysis()
  matrix_bytes = np.prod(shape) * jnp.dtype(dtype).itemsize
  assert analysis.output_size_in_bytes == matrix_bytes
  slack = 64 * 1024 * (batch or 1)  # per-step vectors, keys and strengths: O(n) per matrix, not O(n²)
  assert analysis.temp_size_in_bytes <= factor * matrix_bytes + slack, analysis.temp_size_in_bytes / matrix_bytes


# --------------------------------------------------------------------------- determinism, keys, transforms


class DeterminismTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_same_key_same_output_and_jit_agrees_with_eager(self):
    w = _random_weights(0, (24, 18))
    fn = self.variant(pw.pa_rewire)
    a, b = fn(jax.random.key(3), w), fn(jax.random.key(3), w)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal(a, pw.pa_rewire(jax.random.key(3), w))
    self.assertFalse(np.array_equal(a, fn(jax.random.key(4), w)))

  @parameterized.parameters(True, False)
  def test_typed_and_legacy_keys(self, typed):
    key = jax.random.key(11) if typed else jax.random.PRNGKey(11)
    w = _random_weights(0, (10, 10))
    r = jax.jit(pw.pa_rewire)(key, w)
    assert_bit_permutation(r, w)
    init = pw.rewired(jax.nn.initializers.lecun_normal())
    assert_bit_permutation(init(key, (10, 10)), jax.nn.initializers.lecun_normal()(key, (10, 10)))

  def test_legacy_and_typed_keys_agree(self):
    w = _random_weights(0, (10, 10))
    chex.assert_trees_all_equal(
      pw.pa_rewire(jax.random.PRNGKey(5), w),
      pw.pa_rewire(jax.random.wrap_key_data(jax.random.PRNGKey(5)), w),
    )

  def test_vmap_over_keys_matches_loop(self):
    w = _random_weights(0, (12, 9))
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.vmap(pw.pa_rewire, in_axes=(0, None))(keys, w)
    for k, r in zip(keys, batched, strict=True):
      chex.assert_trees_all_equal(r, pw.pa_rewire(k, w))

  def test_rewire_batch_axis_uses_split_keys(self):
    stack = _random_weights(0, (3, 10, 7))
    r = pw.rewire(jax.random.key(2), stack, batch_axis=0)
    for b, k in enumerate(jax.random.split(jax.random.key(2), 3)):
      chex.assert_trees_all_equal(r[b], pw.pa_rewire(k, stack[b]))
    chex.assert_trees_all_equal(pw.rewire(jax.random.key(2), stack[0]), pw.pa_rewire(jax.random.key(2), stack[0]))

  def test_batched_scan_is_one_scan(self):
    """Stacked matrices go through one batched scan per pass, not a Python loop."""
    stack = _random_weights(0, (6, 10, 7))
    jaxpr = str(jax.make_jaxpr(lambda k, x: pw.rewire(k, x, batch_axis=0))(jax.random.key(0), stack))
    # Pass "in" scans the 7 - 1 columns and pass "out" the 10 - 1 rows, each once for all 6 matrices.
    assert jaxpr.count("length=6") == 1 and jaxpr.count("length=9") == 1
    assert "f32[6,10]" in jaxpr


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(passes=("in", "sideways")), "passes"),
    (dict(passes="in"), "passes"),
    (dict(offset=0.0), "offset"),
    (dict(offset=-1.0), "offset"),
    (dict(offset=float("nan")), "offset"),
  ],
)
def test_bad_pass_and_offset(kwargs, match):
  w = _random_weights(0, (4, 4))
  with pytest.raises(ValueError, match=match):
    pw.pa_rewire(jax.random.key(0), w, **kwargs)
  with pytest.raises(ValueError, match=match):
    pw.rewired(jax.nn.initializers.normal(), **kwargs)


def test_bad_matrix_rank_and_dtype():
  with pytest.raises(ValueError, match="matrix must be 2-D"):
    pw.pa_rewire(jax.random.key(0), jnp.ones((2, 3, 4)))
  with pytest.raises(ValueError, match="matrix.dtype"):
    pw.pa_rewire(jax.random.key(0), jnp.ones((3, 3), jnp.int32))
  with pytest.raises(ValueError, match="shape must have rank >= 2"):
    pw.rewire(jax.random.key(0), jnp.ones((5,)))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(out_axis=3), "out_axis"),
    (dict(out_axis=-4), "out_axis"),
    (dict(batch_axis=(0, 5)), "batch_axis"),
    (dict(out_axis=0, batch_axis=0), "overlap"),
    (dict(out_axis=(0, 0)), "same axis twice"),
    (dict(out_axis=(0, 1), batch_axis=2), "no input axis"),
    (dict(out_axis=1.5), "out_axis"),
  ],
)
def test_bad_axes(kwargs, match):
  with pytest.raises(ValueError, match=match):
    pw.rewire(jax.random.key(0), jnp.ones((2, 3, 4)), **kwargs)
  with pytest.raises(ValueError, match=match):
    pw.rewired(jax.nn.initializers.normal(), **kwargs)(jax.random.key(0), (2, 3, 4))
