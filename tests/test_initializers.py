"""Tests of the initializer combinators and their use in Flax linen / nnx modules."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_bit_permutation
from jax.nn import initializers as jinit

import parewire_jax as pw

INITS = {
  "kaiming_normal": jinit.he_normal(),
  "orthogonal": jinit.orthogonal(),
  "kaiming_uniform": jinit.he_uniform(),
}


# --------------------------------------------------------------------------- rewired


@pytest.mark.parametrize("name", list(INITS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_rewired_is_permutation_of_base_with_same_key(name, dtype):
  if name == "orthogonal" and dtype != jnp.float32:
    pytest.skip("jax's orthogonal() needs a LAPACK QR, which has no 16-bit kernels on the CPU")
  base = INITS[name]
  key, shape = jax.random.key(3), (3, 3, 4, 8)
  w = pw.rewired(base)(key, shape, dtype)
  expected = base(key, shape, dtype)
  assert_bit_permutation(w, expected)
  assert not np.array_equal(w, expected)
  # Conv kernel: kh·kw·in = 36 inputs per output channel; the strength variance shrinks.
  assert pw.strength_stats(w).in_variance < pw.strength_stats(expected).in_variance


def test_rewired_uses_base_default_dtype_and_derived_key():
  key = jax.random.key(0)
  init = pw.rewired(jinit.normal(dtype=jnp.bfloat16))
  w = init(key, (16, 8))
  assert w.dtype == jnp.bfloat16
  expected = pw.rewire(pw.rewiring_key(key), jinit.normal(dtype=jnp.bfloat16)(key, (16, 8)))
  chex.assert_trees_all_equal(w, expected)


def test_rewired_batch_axis_rewires_stacked_layers_independently():
  key, shape = jax.random.key(1), (4, 12, 6)
  base = jinit.lecun_normal(batch_axis=0)
  w = pw.rewired(base, batch_axis=0)(key, shape)
  expected = base(key, shape)
  for b in range(4):
    assert_bit_permutation(w[b], expected[b])
  jaxpr = str(jax.make_jaxpr(lambda k: pw.rewired(base, batch_axis=0)(k, shape))(key))
  assert jaxpr.count("length=5") == 1 and jaxpr.count("length=11") == 1  # one batched scan per pass


def test_rewired_out_axis_zero_pytorch_layout():
  key = jax.random.key(2)
  base = jinit.he_normal(in_axis=1, out_axis=0)
  expected = base(key, (8, 4, 3, 3))  # (out, in, kh, kw)
  assert_bit_permutation(pw.rewired(base, out_axis=0)(key, (8, 4, 3, 3)), expected)
  w_in = pw.rewired(base, out_axis=0, passes=("in",))(key, (8, 4, 3, 3))
  for o in range(8):
    assert_bit_permutation(w_in[o], expected[o])  # pass "in" keeps each output channel's own weights
  assert pw.strength_stats(w_in, out_axis=0).in_variance < pw.strength_stats(expected, out_axis=0).in_variance


def test_rewired_under_jit_and_vmap():
  init = pw.rewired(jinit.orthogonal())
  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.jit(jax.vmap(lambda k: init(k, (10, 6))))(keys)
  for k, w in zip(keys, batched, strict=True):
    chex.assert_trees_all_equal(w, init(k, (10, 6)))


def test_rewired_rejects_non_floating_base_output():
  with pytest.raises(ValueError, match="floating"):
    pw.rewired(jinit.zeros)(jax.random.key(0), (4, 4), jnp.int32)


def test_rewired_rejects_rank_one_before_drawing():
  with pytest.raises(ValueError, match="rank >= 2"):
    pw.rewired(jinit.normal())(jax.random.key(0), (7,))


# --------------------------------------------------------------------------- random search


@pytest.mark.parametrize("maximize", [False, True])
def test_strength_variance_search_picks_the_extreme_candidate(maximize):
  base, key, shape, k = jinit.he_normal(), jax.random.key(5), (32, 16), 12
  search = pw.max_strength_variance if maximize else pw.min_strength_variance
  w = search(base, num_draws=k)(key, shape)
  candidates = [base(kk, shape) for kk in jax.random.split(key, k)]
  scores = [float(pw.strength_stats(c).mean_variance) for c in candidates]
  best = int(np.argmax(scores) if maximize else np.argmin(scores))
  chex.assert_trees_all_equal(w, candidates[best])


def test_strength_variance_search_draw_batches_agree():
  base, key, shape = jinit.he_normal(), jax.random.key(5), (16, 16)
  a = pw.min_strength_variance(base, num_draws=10)(key, shape)
  b = pw.min_strength_variance(base, num_draws=10, draw_batch_size=3)(key, shape)
  chex.assert_trees_all_equal(a, b)


def test_strength_variance_search_per_batch_matrix():
  base, key, shape, k = jinit.he_normal(batch_axis=0), jax.random.key(6), (3, 16, 8), 7
  w = pw.min_strength_variance(base, num_draws=k, batch_axis=0)(key, shape)
  candidates = [base(kk, shape) for kk in jax.random.split(key, k)]
  for b in range(3):
    scores = [float(pw.strength_stats(c[b]).mean_variance) for c in candidates]
    chex.assert_trees_all_equal(w[b], candidates[int(np.argmin(scores))][b])


def test_min_and_max_search_bracket_every_candidate():
  """The minimum and maximum over the same 30 candidates bound each of them, the key's own base draw among them."""
  base, key, shape, k = jinit.he_normal(), jax.random.key(7), (64, 64), 30
  lo = float(pw.strength_stats(pw.min_strength_variance(base, k)(key, shape)).mean_variance)
  hi = float(pw.strength_stats(pw.max_strength_variance(base, k)(key, shape)).mean_variance)
  scores = [float(pw.strength_stats(base(kk, shape)).mean_variance) for kk in jax.random.split(key, k)]
  assert lo == min(scores) and hi == max(scores)
  assert lo < np.median(scores) < hi  # 30 continuous draws: the extremes are strict


def test_rewired_composes_with_search():
  base, key, shape = jinit.orthogonal(), jax.random.key(8), (24, 24)
  both = pw.rewired(pw.min_strength_variance(base, 5))(key, shape)
  assert_bit_permutation(both, pw.min_strength_variance(base, 5)(key, shape))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_search_rejects_bad_num_draws(bad):
  with pytest.raises(ValueError, match="num_draws"):
    pw.min_strength_variance(jinit.normal(), bad)


def test_search_rejects_bad_draw_batch_size():
  with pytest.raises(ValueError, match="draw_batch_size"):
    pw.max_strength_variance(jinit.normal(), 4, draw_batch_size=0)


# --------------------------------------------------------------------------- Flax modules


def _linen_kernels(module, x, kernel_init_name="kernel_init", **kw):
  key = jax.random.key(0)
  base = jinit.lecun_normal()
  plain = module(**{kernel_init_name: base}, **kw).init(key, x)["params"]["kernel"]
  rew = module(**{kernel_init_name: pw.rewired(base)}, **kw).init(key, x)["params"]["kernel"]
  return plain, rew


@pytest.mark.parametrize(
  "module, x, kw",
  [
    (nn.Dense, jnp.ones((1, 12)), dict(features=10)),
    (nn.Conv, jnp.ones((1, 8, 8, 3)), dict(features=6, kernel_size=(3, 3))),
    (nn.DenseGeneral, jnp.ones((1, 4, 6)), dict(features=(5, 2), axis=(-2, -1))),
    (nn.Einsum, jnp.ones((2, 7)), dict(shape=(7, 9), einsum_str="bi,io->bo")),
  ],
  ids=["Dense", "Conv", "DenseGeneral", "Einsum"],
)
def test_linen_modules(module, x, kw):
  plain, rew = _linen_kernels(module, x, **kw)
  assert_bit_permutation(rew, plain)
  assert not np.array_equal(rew, plain)


def test_linen_dense_inside_jit():
  model = nn.Dense(16, kernel_init=pw.rewired(jinit.orthogonal()))
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 32)))
  eager = model.init(jax.random.key(0), jnp.ones((1, 32)))
  chex.assert_trees_all_equal(params, eager)


def _nnx_kernel(make):
  return make(jinit.lecun_normal()).kernel[...], make(pw.rewired(jinit.lecun_normal())).kernel[...]


@pytest.mark.parametrize(
  "make",
  [
    lambda init: nnx.Linear(12, 10, kernel_init=init, rngs=nnx.Rngs(0)),
    lambda init: nnx.Conv(3, 6, (3, 3), kernel_init=init, rngs=nnx.Rngs(0)),
    lambda init: nnx.Einsum("bi,io->bo", (7, 9), kernel_init=init, rngs=nnx.Rngs(0)),
  ],
  ids=["Linear", "Conv", "Einsum"],
)
def test_nnx_modules(make):
  plain, rew = _nnx_kernel(make)
  assert_bit_permutation(rew, plain)
  assert not np.array_equal(rew, plain)


def test_nnx_linear_under_jit():
  @jax.jit
  def make(key):
    return nnx.split(nnx.Linear(8, 8, kernel_init=pw.rewired(jinit.orthogonal()), rngs=nnx.Rngs(key)))[1]

  state = make(jax.random.key(0))
  eager = nnx.split(nnx.Linear(8, 8, kernel_init=pw.rewired(jinit.orthogonal()), rngs=nnx.Rngs(jax.random.key(0))))[1]
  chex.assert_trees_all_equal(state, eager)
