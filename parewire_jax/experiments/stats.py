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


class PairedEffect(NamedTuple):
  """The mean per-seed difference ``variant - base`` with its confidence interval and paired t-test.

  ``low`` and ``high`` bound the ``confidence`` interval of the mean
  difference (Student's t with ``n - 1`` degrees of freedom, as
  ``scipy.stats.ttest_rel(...).confidence_interval``); ``p`` is the two-sided
  paired t-test of a zero mean difference and ``wilcoxon`` the signed-rank
  test of the same pairs (``nan`` where a test is undefined).

  >>> e = paired_effect([0.90, 0.92, 0.91, 0.89], [0.95, 0.96, 0.97, 0.94])
  >>> round(e.mean, 3), e.low < e.mean < e.high, e.p < 0.01
  (0.05, True, True)
  """

  mean: float
  low: float
  high: float
  p: float
  wilcoxon: float
  n: int


def _paired_samples(base: ArrayLike, variant: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  base = _as_samples(base, "base")
  variant = _as_samples(variant, "variant")
  if base.shape != variant.shape:
    raise ValueError(f"base and variant must hold the same seeds, got {base.size} and {variant.size} values.")
  return base, variant


def _check_confidence(confidence: float) -> None:
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")


def paired_effect(base: ArrayLike, variant: ArrayLike, *, confidence: float = 0.95) -> PairedEffect:
  """The paired effect of ``variant`` over ``base`` (per-seed values, same seeds in the same order).

  >>> e = paired_effect([1.0, 2.0, 3.0], [2.0, 3.5, 4.0])
  >>> round(e.mean, 3), round(e.low, 3), round(e.high, 3)
  (1.167, 0.45, 1.884)
  """
  _check_confidence(confidence)
  base, variant = _paired_samples(base, variant)
  differences = variant - base
  mean = float(np.mean(differences))
  half = float(sps.t.ppf(0.5 + confidence / 2, differences.size - 1) * sps.sem(differences))
  return PairedEffect(
    mean=mean,
    low=mean - half,
    high=mean + half,
    p=_p_value(sps.ttest_rel, variant, base),
    wilcoxon=_p_value(sps.wilcoxon, variant, base),
    n=int(differences.size),
  )


class SpreadRatio(NamedTuple):
  """The ratio of standard deviations over seeds, ``std(variant) / std(base)``, for paired samples.

  The paper's second finding is a smaller spread over seeds with PA rewiring
  (§4.2, Table 1). Paired samples (same seeds, same data order) are
  correlated, so the F-test does not apply; ``p`` is the Pitman–Morgan test
  of equal variances (the Pearson correlation of ``variant + base`` with
  ``variant - base`` is zero exactly when the variances are equal), and
  ``low`` and ``high`` bound the ``confidence`` interval of the ratio, the
  set of ratios that test would not reject (its closed form: for the variance
  ratio ``F``, ``F (K ± sqrt(K² - 1))`` with
  ``K = 1 + 2 (1 - r²) t² / (n - 2)``, ``r`` the correlation of the pairs and
  ``t`` the two-sided t quantile with ``n - 2`` degrees of freedom).

  >>> s = spread_ratio([0.90, 0.92, 0.91, 0.89, 0.85], [0.95, 0.955, 0.96, 0.95, 0.945])
  >>> round(s.ratio, 3), s.low < s.ratio < s.high
  (0.211, True)
  """

  ratio: float
  low: float
  high: float
  p: float
  n: int


def spread_ratio(base: ArrayLike, variant: ArrayLike, *, confidence: float = 0.95) -> SpreadRatio:
  """``std(variant) / std(base)`` with the Pitman–Morgan test and its interval (needs 3 or more seeds).

  >>> s = spread_ratio([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 5.0, 7.5])
  >>> round(s.ratio, 3), s.p < 0.05
  (2.153, True)
  """
  _check_confidence(confidence)
  base, variant = _paired_samples(base, variant)
  n = base.size
  if n < 3:
    raise ValueError(f"the spread ratio's test needs at least 3 seeds, got {n}.")
  var_base, var_variant = float(np.var(base, ddof=1)), float(np.var(variant, ddof=1))
  if var_base == 0 or var_variant == 0:
    return SpreadRatio(math.nan, math.nan, math.nan, math.nan, n)
  ratio = var_variant / var_base
  r = float(np.corrcoef(base, variant)[0, 1])
  t = float(sps.t.ppf(0.5 + confidence / 2, n - 2))
  k = 1 + 2 * (1 - r * r) * t * t / (n - 2)
  root = math.sqrt(k * k - 1)
  return SpreadRatio(
    ratio=math.sqrt(ratio),
    low=math.sqrt(ratio * (k - root)),
    high=math.sqrt(ratio * (k + root)),
    p=_p_value(sps.pearsonr, variant + base, variant - base),
    n=n,
  )
