"""The LaPerm demonstration (parewire_jax.experiments.laperm_demo): its exactness check, diagnostics and resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_dataset

from parewire_jax.experiments import laperm_demo
from parewire_jax.experiments.settings import LaPermSettings


def test_exact_permutation_columns_is_bit_exact():
  w0 = jnp.array([[[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]])  # (seeds=1, n_in=2, n_out=3)
  w = jnp.array([[[1.0, -0.0, 3.0], [0.0, 1.0, 2.0000002]]])
  # column 0 permuted; column 1 has -0.0 for +0.0 (equal as floats, not as bits); column 2 off by one ulp
  assert laperm_demo.exact_permutation_columns(w0, w).tolist() == [1]
  conv = jax.random.normal(jax.random.key(0), (2, 3, 3, 2, 4))  # seeds, kh, kw, c_in, c_out
  shuffled = jax.vmap(
    lambda k, x: jax.random.permutation(k, x.reshape(-1, 4), axis=0, independent=True).reshape(x.shape)
  )(jax.random.split(jax.random.key(1), 2), conv)
  assert laperm_demo.exact_permutation_columns(conv, shuffled).tolist() == [4, 4]
  assert laperm_demo.exact_permutation_columns(conv, jnp.swapaxes(shuffled, 1, 2)).tolist() == [4, 4]
  assert laperm_demo.exact_permutation_columns(conv, shuffled[..., ::-1]).tolist() == [0, 0]  # columns swapped
  with pytest.raises(ValueError, match="same shape"):
    laperm_demo.exact_permutation_columns(w0, w[:, :1])


def test_run_laperm_resumes_its_chunks_with_their_diagnostics(tmp_path):
  settings = LaPermSettings().replace(model="mlp", seeds=3, seeds_per_chunk=2, epochs=1, batch_size=16, sync_period=4,
                                      mlp_hidden=(16,))  # fmt: skip
  data = tiny_dataset(240)
  first = laperm_demo.run_laperm(settings, dataset=data, out_dir=tmp_path)
  assert (first.exact_columns["laperm_adam"] == first.columns_per_epoch).all()
  assert first.columns_per_epoch == 3 * (16 + 3)  # every column of both kernels, every seed
  assert (first.exact_columns["adam"] < first.columns_per_epoch).all()  # Adam moves the weights off the multiset
  (tmp_path / "chunks" / "laperm_adam_seeds_2-2.npz").unlink()  # lost: trained again
  again = laperm_demo.run_laperm(settings, dataset=data, out_dir=tmp_path, resume=True)
  assert again.resumed == {"adam": [[0, 1], [2]], "laperm_adam": [[0, 1]]}
  assert again.table == first.table  # the diagnostics of resumed chunks were saved with them
  for arm in first.deviation:
    for name, deviation in first.deviation[arm].items():
      jax.tree.map(np.testing.assert_array_equal, again.deviation[arm][name], deviation)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["sync_period"] == 4 and saved["reference"] == "adam"
  assert saved["arms"]["laperm_adam"]["exact_permutation_columns"] == first.exact_columns["laperm_adam"].tolist()
