"""Tests of strengths / strength_stats and the axes layout."""

import jax.numpy as jnp
import numpy as np
import pytest

import parewire_jax as pw


def test_strengths_of_conv_kernel_match_numpy():
  w = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
  s_in, s_out = pw.strengths(jnp.asarray(w))
  np.testing.assert_allclose(s_in, w.reshape(36, 5).sum(1), rtol=1e-5)
  np.testing.assert_allclose(s_out, w.reshape(36, 5).sum(0), rtol=1e-5)


def test_strengths_batch_and_out_axis():
  w = np.random.default_rng(1).normal(size=(6, 2, 4)).astype(np.float32)  # (out, batch, in)
  s_in, s_out = pw.strengths(jnp.asarray(w), out_axis=0, batch_axis=1)
  assert s_in.shape == (2, 4) and s_out.shape == (2, 6)
  np.testing.assert_allclose(s_in, w.sum(0), rtol=1e-5)
  np.testing.assert_allclose(s_out, w.sum(2).T, rtol=1e-5)


def test_strengths_accumulate_in_float32_for_bfloat16():
  w = jnp.full((4096, 2), 1.0, jnp.bfloat16)
  _, s_out = pw.strengths(w)
  assert s_out.dtype == jnp.float32
  np.testing.assert_array_equal(s_out, [4096.0, 4096.0])  # bf16 accumulation would stall at 256


def test_strength_stats_against_numpy():
  w = np.random.default_rng(2).normal(size=(30, 20))
  st = pw.strength_stats(jnp.asarray(w, jnp.float32))
  for s, var, mu4, mx in [
    (w.sum(1), st.in_variance, st.in_fourth_moment, st.in_max_abs),
    (w.sum(0), st.out_variance, st.out_fourth_moment, st.out_max_abs),
  ]:
    np.testing.assert_allclose(var, s.var(), rtol=1e-4)
    np.testing.assert_allclose(mu4, np.mean((s - s.mean()) ** 4), rtol=1e-4)
    np.testing.assert_allclose(mx, np.abs(s).max(), rtol=1e-5)
  np.testing.assert_allclose(st.mean_variance, (w.sum(1).var() + w.sum(0).var()) / 2, rtol=1e-4)


@pytest.mark.parametrize(
  "shape, out_axis, batch_axis",
  [((3, 4), -1, ()), ((2, 3, 4, 5), 1, (0, 3)), ((2, 3, 4, 5), (2, 0), ()), ((5, 1, 7), 0, 2)],
)
def test_as_matrices_round_trip(shape, out_axis, batch_axis):
  x = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
  m, layout = pw.as_matrices(x, out_axis, batch_axis)
  assert m.shape == (layout.num_matrices, layout.n_in, layout.n_out)
  np.testing.assert_array_equal(pw.from_matrices(m, layout), x)


def test_as_matrices_column_is_an_output_neuron():
  x = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)  # (kw, in, out)
  m, _ = pw.as_matrices(x)
  np.testing.assert_array_equal(m[0][:, 1], x[..., 1].reshape(-1))
