"""The statistics of the experiments against scipy (parewire_jax.experiments.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from parewire_jax.experiments import stats
from parewire_jax.experiments.stats import paired_effect, spread_ratio


def test_summarize_and_compare_match_scipy():
  rng = np.random.default_rng(1)
  base, variant = rng.normal(0.9, 0.02, 12), rng.normal(0.92, 0.01, 12)
  s = stats.summarize(base)
  assert s == stats.Summary(
    np.mean(base), np.std(base, ddof=1), np.median(base), np.median(np.abs(base - np.median(base))), 12
  )
  c = stats.compare(base, variant)
  assert c.ttest == sps.ttest_ind(variant, base, equal_var=False).pvalue
  assert stats.compare(base, variant, equal_var=True).ttest == sps.ttest_ind(variant, base).pvalue
  assert c.kruskal == sps.kruskal(variant, base).pvalue
  assert c.paired_ttest == sps.ttest_rel(variant, base).pvalue
  assert c.wilcoxon == sps.wilcoxon(variant, base).pvalue
  assert c.levene == sps.levene(variant, base, center="median").pvalue
  assert c.mean_difference == pytest.approx(np.mean(variant - base))


def test_spread_test_is_brown_forsythe():
  # Brown–Forsythe by hand: a one-way ANOVA of |x - median(x)| between the two samples (its F has 1 and n - 2
  # degrees of freedom), which is what scipy's levene(center="median") computes.
  rng = np.random.default_rng(2)
  base = np.concatenate([rng.normal(0.96, 0.01, 17), [0.88, 0.90, 0.93]])  # a few slow seeds: skewed, wide
  variant = rng.normal(0.973, 0.003, 20)
  c = stats.compare(base, variant)
  deviations = [np.abs(x - np.median(x)) for x in (variant, base)]
  assert c.levene == pytest.approx(sps.f_oneway(*deviations).pvalue, rel=1e-12)
  assert (
    c.levene < 0.05 and sps.levene(variant, base, center="mean").pvalue < c.levene
  )  # the mean-centred test is bolder
  # equal spreads are not rejected, and the test is symmetric in its samples
  same = stats.compare(rng.normal(0, 1, 40), rng.normal(5, 1, 40))
  assert same.levene > 0.05
  assert stats.compare(variant, base).levene == c.levene


def test_degenerate_statistics_are_nan_not_errors():
  c = stats.compare([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
  assert math.isnan(c.ttest) and math.isnan(c.kruskal) and math.isnan(c.paired_ttest) and math.isnan(c.levene)
  with pytest.raises(ValueError, match="at least 2"):
    stats.summarize([1.0])
  with pytest.raises(ValueError, match="same seeds"):
    stats.compare([1.0, 2.0], [1.0, 2.0, 3.0])


def _pairs(n, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  base = rng.normal(size=n)
  return base, 0.6 * base + scale * rng.normal(size=n) + 0.3


@pytest.mark.parametrize("n, confidence", [(5, 0.95), (20, 0.9), (50, 0.99)])
def test_paired_effect_matches_scipy(n, confidence):
  base, variant = _pairs(n, seed=n)
  effect = paired_effect(base, variant, confidence=confidence)
  t = sps.ttest_rel(variant, base)
  low, high = t.confidence_interval(confidence)
  np.testing.assert_allclose([effect.low, effect.high], [low, high], rtol=1e-12)
  np.testing.assert_allclose(effect.mean, np.mean(variant - base), rtol=1e-12)
  np.testing.assert_allclose(effect.p, t.pvalue, rtol=1e-12)
  np.testing.assert_allclose(effect.wilcoxon, sps.wilcoxon(variant, base).pvalue, rtol=1e-12)
  assert effect.n == n


@pytest.mark.parametrize("n, confidence, scale", [(6, 0.95, 0.3), (20, 0.95, 2.0), (40, 0.9, 1.0)])
def test_spread_ratio_test_and_interval_match_pitman_morgan_by_scipy(n, confidence, scale):
  base, variant = _pairs(n, seed=n, scale=scale)
  s = spread_ratio(base, variant, confidence=confidence)
  np.testing.assert_allclose(s.ratio, np.std(variant, ddof=1) / np.std(base, ddof=1), rtol=1e-12)
  # Pitman–Morgan: equal variances <=> uncorrelated sums and differences (scipy's Pearson test).
  np.testing.assert_allclose(s.p, sps.pearsonr(variant + base, variant - base).pvalue, rtol=1e-10)
  # The interval is the set of ratios the test does not reject: at each end its p-value is 1 - confidence.
  for ratio in (s.low, s.high):
    p = sps.pearsonr(variant + ratio * base, variant - ratio * base).pvalue
    np.testing.assert_allclose(p, 1 - confidence, rtol=1e-8)
  assert s.low < s.ratio < s.high


def test_statistics_refuse_bad_input():
  with pytest.raises(ValueError, match="same seeds"):
    paired_effect([1.0, 2.0, 3.0], [1.0, 2.0])
  with pytest.raises(ValueError, match="confidence must be in"):
    paired_effect([1.0, 2.0], [2.0, 3.0], confidence=95)
  with pytest.raises(ValueError, match="at least 3 seeds"):
    spread_ratio([1.0, 2.0], [2.0, 3.5])
  assert np.isnan(spread_ratio([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).ratio)  # no spread to compare
