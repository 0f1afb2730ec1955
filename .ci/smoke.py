"""Smoke test of an installed parewire_jax wheel (run by `.ci/run wheel` from a directory outside the checkout).

Usage: python -I smoke.py EXPECTED_VERSION ENV_PREFIX
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import parewire_jax as pw


def bits(x) -> np.ndarray:
  """The sorted bit patterns of x: equal iff the values are a bit-exact permutation."""
  a = np.asarray(x)
  return np.sort(a.reshape(-1).view(f"uint{a.dtype.itemsize * 8}"))


def assert_permutation(new, old) -> None:
  assert new.shape == old.shape and new.dtype == old.dtype, (new.shape, new.dtype, old.shape, old.dtype)
  np.testing.assert_array_equal(bits(new), bits(old))
  assert not np.array_equal(np.asarray(new), np.asarray(old)), "nothing was moved"


def main(expected_version: str, prefix: str) -> None:
  # The package under test is the wheel's copy, not the source tree or another install.
  where = pathlib.Path(pw.__file__).resolve()
  print(f"parewire_jax {pw.__version__} imported from {where}")
  assert where.is_relative_to(pathlib.Path(prefix).resolve()), f"{where} is not inside {prefix}"
  assert (where.parent / "py.typed").is_file(), "py.typed is missing from the wheel"
  dist = importlib.metadata.distribution("parewire-jax")
  assert pw.__version__ == dist.version == expected_version, (pw.__version__, dist.version, expected_version)
  assert any(f.name == "LICENSE" for f in dist.files or ()), "LICENSE is missing from the wheel"

  # rewired(he_normal()) is a permutation of the base draw.
  key = jax.random.key(0)
  he = jax.nn.initializers.he_normal()
  assert_permutation(pw.rewired(he)(key, (64, 32), jnp.float32), he(key, (64, 32), jnp.float32))

  # rewire_params rewires the kernels of a small tree and leaves the rest as the same objects.
  k1, k2 = jax.random.split(jax.random.key(1))
  params = {"dense": {"kernel": he(k1, (16, 8)), "bias": jnp.zeros(8)}, "out": {"kernel": he(k2, (8, 4))}}
  new = pw.rewire_params(jax.random.key(2), params)
  assert new["dense"]["bias"] is params["dense"]["bias"]
  for name in ("dense", "out"):
    assert_permutation(new[name]["kernel"], params[name]["kernel"])

  # One LaPerm step (a sync, with sync_period 1) keeps every kernel a permutation of its initial values.
  opt = pw.laperm(optax.adam(1e-2), sync_period=1)
  state = opt.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = jax.jit(opt.update)(grads, state, params)
  projected = pw.laperm_project(optax.apply_updates(params, updates), state)
  for name in ("dense", "out"):
    np.testing.assert_array_equal(bits(projected[name]["kernel"]), bits(params[name]["kernel"]))

  # The command line starts.
  cli = subprocess.run([sys.executable, "-I", "-m", "parewire_jax", "--help"], capture_output=True, text=True)
  assert cli.returncode == 0, cli.stderr
  assert "compare" in cli.stdout, cli.stdout
  print(f"smoke test of the wheel passed (jax {jax.__version__}, optax {optax.__version__})")


if __name__ == "__main__":
  main(*sys.argv[1:])
