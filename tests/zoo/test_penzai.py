"""penzai (0.2.5): its arrays have named axes, so the tree functions refuse them and the initializer reads them."""

import jax
import numpy as np
import pytest
from zoo_checks import PAPER_FACTOR

import parewire_jax as pw

pz = pytest.importorskip("penzai.pz")
pwpz = pytest.importorskip("parewire_jax.penzai_adapter")
pytestmark = [pytest.mark.zoo, pytest.mark.xdist_group("attention")]

KEY = jax.random.key(25)


def _layer(initializer, **axes):
  return pz.nn.Linear.from_config(name="l", init_base_rng=KEY, initializer=initializer, **axes)


def test_rewired_initializer_reads_input_output_and_parallel_axis_names():
  axes = {"input_axes": {"embedding": 96}, "output_axes": {"projection": 80}, "parallel_axes": {"heads": 2}}
  plain = pz.nn.Linear.from_config(name="l", init_base_rng=KEY, **axes)
  rewired = _layer(pwpz.rewired(), **axes)
  w0, w1 = plain.weights.value, rewired.weights.value
  assert dict(w1.named_axes) == dict(w0.named_axes)
  names = list(w0.named_axes)
  a, b = np.asarray(w0.unwrap(*names)), np.asarray(w1.unwrap(*names))
  assert np.array_equal(np.sort(a.ravel()), np.sort(b.ravel()))  # the same values
  out, batch = (names.index("projection"),), (names.index("heads"),)
  for head in range(2):  # each head is its own matrix: its values stay in it
    take = lambda x: np.take(x, head, axis=batch[0])  # noqa: E731
    assert np.array_equal(np.sort(take(a).ravel()), np.sort(take(b).ravel()))
  before = pw.strength_stats(a, out_axis=out, batch_axis=batch)
  after = pw.strength_stats(b, out_axis=out, batch_axis=batch)
  assert np.all(np.asarray(before.in_variance) >= PAPER_FACTOR * np.asarray(after.in_variance))
  assert np.all(np.asarray(before.out_variance) >= PAPER_FACTOR * np.asarray(after.out_variance))


def test_tree_functions_refuse_named_arrays():
  layer = pz.nn.Linear.from_config(name="l", init_base_rng=KEY, input_axes={"a": 8}, output_axes={"b": 4})
  with pytest.raises(ValueError, match="penzai Parameter.*named"):
    pw.rewire_params(KEY, layer)
  with pytest.raises(ValueError, match="penzai NamedArray"):
    pw.rewire_params(KEY, {"w": layer.weights.value})
