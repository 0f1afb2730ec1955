"""The ``strength`` experiment (parewire_jax.experiments.kernel_strengths)."""

from __future__ import annotations

import pytest

from parewire_jax.experiments.kernel_strengths import run_strength
from parewire_jax.experiments.settings import StrengthSettings


def test_run_strength_rejects_unknown_init():
  with pytest.raises(ValueError, match="init must be one of"):
    run_strength(StrengthSettings(init="xavier", shape=(4, 4)))


def test_strength_table_is_the_mean_over_seeds_of_the_core_statistics(tmp_path):
  import jax
  import numpy as np

  from parewire_jax import strength_stats
  from parewire_jax.experiments import models
  from parewire_jax.experiments.seeds import seed_keys

  result = run_strength(StrengthSettings(shape=(24, 16), seeds=3), out_dir=tmp_path)
  draws = jax.vmap(lambda k: models.base_initializer("kaiming_normal")(k, (24, 16)))(seed_keys(range(3)))
  expected = float(np.mean(jax.vmap(strength_stats)(draws).in_variance))
  assert result.stats["base"]["in σ²"] == pytest.approx(expected, rel=1e-6)
  assert result.stats["rewired"]["in σ²"] < result.stats["base"]["in σ²"]
  assert (tmp_path / "strength.png").stat().st_size > 0
