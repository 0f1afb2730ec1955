"""What every zoo test checks of a rewired third-party model (issue #25).

* every selected kernel is an exact permutation of itself, and equals
  ``rewire(leaf_key(key, path), base, ...)`` over the kernel's TRUE axes (the
  ones its model's source computes with, written down per model in the
  tests), so a wrong axis would change the bits;
* the input and output strength variances over those axes are each lower
  than the base's, by ``factor``, for every kernel with ≥ 64 inputs and
  outputs;
* every other floating leaf (embeddings, norms, biases) is bit-identical.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.tree_util import keystr, tree_flatten_with_path

import parewire_jax as pw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers.py
from helpers import assert_bit_permutation  # noqa: E402

PAPER_FACTOR = 2.0  # ≥ 2× lower strength variance with the paper's offset (Eq. 5, +1)
# With scale_free=True (the draws computed at Kaiming scale), against about 1× with the paper's offset on the
# std-0.02 models: every large kernel ≥ 3× on each side, and the geometric mean over a model's large kernels (each
# kernel's weaker side) ≥ 5×. Issue 25 asked for 5× on every kernel, which the paper's own algorithm at its own
# (Kaiming) scale does not reach on every shape: on the 3×3, 64→64 convs of ResNet18's first block it lowers the
# input-strength variance 3.2-4.4× (test_haiku.test_five_fold_per_kernel_is_beyond_the_paper_at_its_own_scale),
# and scale_free measured 3.7-4.7× there.
SCALE_FREE_FLOOR = 3.0
SCALE_FREE_MEAN_FACTOR = 5.0
MIN_NEURONS = 64
# Hugging Face and keras-hub draw their kernels with std 0.02: strengths of a 64-input neuron are then ~0.16,
# and Eq. 5's additive +1 makes the draw nearly uniform, so the paper's offset barely moves the variance
# (measured: ratios 0.95-1.1). That is what scale_free=True is for; the paper's-offset claim is an xfail there.
PAPER_OFFSET_AT_STD_002 = pytest.mark.xfail(
  reason="std-0.02 kernels: Eq. 5's +1 offset dwarfs the strengths (issue #25, item 5: scale_free)",
  raises=AssertionError,  # the variance ratio, not another failure
  strict=True,
)

Axes = tuple[tuple[int, ...], tuple[int, ...]]  # (out_axes, batch_axes)


def flat(tree) -> dict[str, object]:
  return {keystr(path): leaf for path, leaf in tree_flatten_with_path(tree)[0]}


def paths(tree) -> dict[str, tuple]:
  return {keystr(path): path for path, _ in tree_flatten_with_path(tree)[0]}


def check_rewired(
  key,
  base,
  new,
  true_axes: Callable[[str, tuple[int, ...]], Axes | None],
  *,
  factor: float | None = PAPER_FACTOR,
  explicit: Callable[..., object] | None = None,
) -> dict[str, float]:
  """Checks a rewired tree against its base; returns the variance ratio (base / rewired) per large kernel.

  ``true_axes(path, shape)`` gives a kernel's ``(out_axes, batch_axes)`` or
  ``None`` for a leaf that must be left alone. ``explicit(where=, out_axis=,
  batch_axis=)`` rewires the base with those axes given explicitly (same key). ``factor=None`` checks no
  variance ratio (the paper's offset on std-0.02 kernels, see
  ``PAPER_OFFSET_AT_STD_002``).
  """
  b, n = flat(base), flat(new)
  assert b.keys() == n.keys()
  ratios, kernels = {}, 0
  for name, old in b.items():
    if not hasattr(old, "dtype") or not np.issubdtype(np.asarray(old).dtype, np.floating):
      continue
    axes = true_axes(name, tuple(old.shape))
    if axes is None:
      np.testing.assert_array_equal(np.asarray(n[name]), np.asarray(old), err_msg=f"{name} must be left alone")
      continue
    kernels += 1
    out, batch = axes
    assert_bit_permutation(n[name], old)
    if np.all(np.asarray(old) == np.asarray(old).ravel()[0]):
      continue  # a constant kernel (Haiku's ResNet logits start at zeros): every permutation is itself
    assert not np.array_equal(np.asarray(n[name]), np.asarray(old)), f"{name} was not rewired"
    layout = pw.matrix_layout(old.shape, out, batch)
    if layout.n_in >= MIN_NEURONS and layout.n_out >= MIN_NEURONS:
      before = pw.strength_stats(old, out_axis=out, batch_axis=batch)
      after = pw.strength_stats(n[name], out_axis=out, batch_axis=batch)
      in_ratio = float(np.min(np.asarray(before.in_variance) / np.asarray(after.in_variance)))
      out_ratio = float(np.min(np.asarray(before.out_variance) / np.asarray(after.out_variance)))
      ratios[name] = min(in_ratio, out_ratio)
      if factor is not None:
        assert in_ratio >= factor and out_ratio >= factor, (name, in_ratio, out_ratio, factor)
  assert kernels, "no kernel was rewired"
  # The same key over the TRUE axes, asked for explicitly, gives the same bits: the recipe used those axes.
  if explicit is not None:
    truth = explicit(
      where=lambda p, x: true_axes(keystr(p), tuple(x.shape)) is not None,
      out_axis=lambda p, x: true_axes(keystr(p), tuple(x.shape))[0],
      batch_axis=lambda p, x: true_axes(keystr(p), tuple(x.shape))[1],
    )
    for name, leaf in flat(truth).items():
      np.testing.assert_array_equal(np.asarray(n[name]), np.asarray(leaf), err_msg=f"{name}: not its true axes")
  assert ratios, "no kernel has >= 64 inputs and outputs"
  return ratios


def check_scale_free(key, base, new, true_axes: Callable[[str, tuple[int, ...]], Axes | None]) -> None:
  """``check_rewired`` for ``rewire_params(..., scale_free=True)``: a 3× floor per kernel, 5× in geometric mean."""
  ratios = check_rewired(key, base, new, true_axes, factor=SCALE_FREE_FLOOR)
  mean = float(np.exp(np.mean(np.log(list(ratios.values())))))
  assert mean >= SCALE_FREE_MEAN_FACTOR, (mean, ratios)


def decreases(losses) -> None:
  losses = [float(x) for x in losses]
  assert all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0], losses


def finite(tree) -> None:
  for leaf in jax.tree.leaves(tree):
    assert np.isfinite(np.asarray(leaf)).all()
