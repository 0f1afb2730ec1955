"""Statistics of §4.1: summaries and tests of each variant against the base weights.

For every metric the paper reports mean ± standard deviation with a t-test of
equal means, and median ± median absolute deviation with a Kruskal–Wallis
H-test of equal medians, each against the base initializer (Tables 1–2). The
models of all variants are trained from the same init seeds, so a paired
comparison (paired t-test, Wilcoxon signed-rank test) is given as well. The
paper's second finding, smaller standard deviations over seeds with PA
rewiring (§4.2, Table 1), is tested with the Brown–Forsythe test of equal
variances. All tests are two-sided and come from :mod:`scipy.stats`.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps


class Summary(NamedTuple):
  """Location and spread of one metric over seeds.

  ``std`` is the sample standard deviation (ddof=1); ``mad`` the unscaled
  median absolute deviation ``median(|x - median(x)|)``.

  >>> summarize([1.0, 2.0, 4.0]).median
  2.0
  """

  mean: float
  std: float
  median: float
  mad: float
  n: int


class Comparison(NamedTuple):
  """Two-sided p-values of a variant against the base weights on one metric.

  ``ttest`` is Welch's (``equal_var=False``) or Student's t-test and
  ``kruskal`` the Kruskal–Wallis H-test, as in §4.1; ``paired_ttest`` and
  ``wilcoxon`` use the pairing by init seed. ``levene`` tests equal spread:
  the Brown–Forsythe test, Levene's test on absolute deviations from the
  median (``scipy.stats.levene(center="median")``), chosen over the
  mean-centred Levene test and the F-test because per-seed accuracies are
  skewed (a few seeds start slowly, and accuracies are bounded by 100 %),
  where those two reject equal variances too often. ``mean_difference`` is
  ``mean(variant - base)`` over seeds. A test that is undefined for the data
  (e.g. all values identical) gives ``nan``.

  >>> c = compare([0.90, 0.92, 0.91, 0.89], [0.95, 0.96, 0.97, 0.94])
  >>> type(c).__name__, c.paired_ttest < 0.01
  ('Comparison', True)
  """

  mean_difference: float
  ttest: float
  kruskal: float
  paired_ttest: float
  wilcoxon: float
  levene: float


def _as_samples(x, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 1 or x.size < 2:
    raise ValueError(f"{name} must be a 1-D array of at least 2 per-seed values, got shape {x.shape}.")
  return x


def summarize(x: ArrayLike) -> Summary:
  """Mean ± std and median ± MAD of per-seed values ``x``.

  >>> s = summarize([1.0, 2.0, 4.0])
  >>> round(s.mean, 4), round(s.std, 4), s.median, s.mad
  (2.3333, 1.5275, 2.0, 1.0)
  """
  x = _as_samples(x, "x")
  return Summary(
    float(np.mean(x)), float(np.std(x, ddof=1)), float(np.median(x)), float(sps.median_abs_deviation(x)), int(x.size)
  )


def _p_value(test, *args, **kwargs) -> float:
  # Degenerate input (identical values, all-zero differences) makes scipy warn
  # and return nan, or raise in older versions: both mean "undefined" here.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
      return float(test(*args, **kwargs).pvalue)
    except ValueError:
      return math.nan


def compare(base: ArrayLike, variant: ArrayLike, *, equal_var: bool = False) -> Comparison:
  """Tests ``variant`` against ``base``, both per-seed values in seed order (§4.1).

  Args:
    base: per-seed values of the base initializer.
    variant: per-seed values of the variant, same seeds in the same order.
    equal_var: ``False`` for Welch's t-test, ``True`` for Student's.

  >>> c = compare([0.90, 0.92, 0.91, 0.89], [0.95, 0.96, 0.97, 0.94])
  >>> round(c.mean_difference, 4), c.ttest < 0.01, c.levene > 0.05
  (0.05, True, True)
  """
  base = _as_samples(base, "base")
  variant = _as_samples(variant, "variant")
  if base.shape != variant.shape:
    raise ValueError(f"base and variant must hold the same seeds, got {base.size} and {variant.size} values.")
  differences = variant - base
  return Comparison(
    mean_difference=float(np.mean(differences)),
    ttest=_p_value(sps.ttest_ind, variant, base, equal_var=equal_var),
    kruskal=_p_value(sps.kruskal, variant, base),
    paired_ttest=_p_value(sps.ttest_rel, variant, base),
    wilcoxon=_p_value(sps.wilcoxon, variant, base),
    levene=_p_value(sps.levene, variant, base, center="median"),
  )
