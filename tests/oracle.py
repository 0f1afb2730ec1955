"""A NumPy oracle of Algorithm 1 (Scabini et al. 2022, §3.3), written for clarity.

It follows the paper's pseudo-code line by line, with the reference
repository's sampling: ``numpy.random.Generator.choice(n, n, replace=False,
p=P)`` draws the order in which inputs receive the ascending weights of each
column. Pass "out" is the same on the transpose. Used by the tests (distribution
checks) and the benchmarks (speed reference); never imported by the library.
"""

from __future__ import annotations

import numpy as np


def pa_rewiring_np(w: np.ndarray, rng: np.random.Generator, offset: float = 1.0) -> np.ndarray:
  """Pass "in" of Algorithm 1 on a copy of ``w`` (shape ``(n_in, n_out)``)."""
  w = np.array(w, copy=True)
  n_in, n_out = w.shape
  s = np.zeros(n_in, dtype=np.float64)  # line 2
  for t in range(1, n_out):  # line 3
    s = s + w[:, t - 1]  # line 4, Eq. 6
    p = s + np.abs(s.min()) + offset  # line 5, Eq. 5
    p = p / p.sum()  # line 6
    targets = rng.choice(n_in, size=n_in, replace=False, p=p)  # line 7
    new_edges = np.argsort(w[:, t], kind="stable")  # line 8
    w[targets, t] = w[new_edges, t]  # line 9
  return w


def pa_rewire_oracle(w: np.ndarray, rng: np.random.Generator, passes=("in", "out"), offset: float = 1.0) -> np.ndarray:
  for name in passes:
    w = pa_rewiring_np(w, rng, offset) if name == "in" else pa_rewiring_np(w.T, rng, offset).T
  return w
