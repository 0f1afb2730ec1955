"""The one runner (parewire_jax.experiments.runner): arms from the same seeds, checks before training, fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import small_mlp, tiny_dataset

from parewire_jax.experiments import runner
from parewire_jax.experiments.optimizers import Optimizer
from parewire_jax.experiments.runner import Arm, run_arms
from parewire_jax.experiments.settings import CompareSettings

SETTINGS = CompareSettings().replace(dataset="digits", model="mlp", seeds=2, epochs=1, batch_size=64, num_draws=4)


def test_every_arm_trains_the_same_seeds_and_is_tested_against_the_first():
  data = tiny_dataset(128)
  run = run_arms(
    SETTINGS, lambda d: [Arm("sgd", small_mlp()), Arm("adam", small_mlp(), Optimizer("adam"))], dataset=data
  )
  assert run.reference == "sgd" and list(run.results) == ["sgd", "adam"]
  assert list(run.report.comparisons) == ["adam"]
  for result in run.results.values():
    assert result.seeds.tolist() == [0, 1]
  # same init seeds: the two arms start from the same weights
  np.testing.assert_array_equal(run.results["sgd"].init_mean_variance, run.results["adam"].init_mean_variance)
  assert not np.array_equal(run.results["sgd"].val_loss, run.results["adam"].val_loss)  # and train differently


def test_bad_runs_are_refused_before_any_data_is_loaded(tmp_path):
  never = tmp_path / "no-data"  # download=False and no files: loading the data would fail with another error
  for arms, out_dir, resume, message in (
    (lambda d: [Arm("a", small_mlp())], None, True, "resume=True needs out_dir"),
    (lambda d: [Arm("a", small_mlp())], tmp_path / "file" / "out", False, "cannot be written"),
  ):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=message):
      run_arms(SETTINGS, arms, data_dir=never, download=False, out_dir=out_dir, resume=resume)
  with pytest.raises(ValueError, match="seeds must be an int >= 2"):
    run_arms(SETTINGS.replace(seeds=1), lambda d: [], data_dir=never, download=False)


def test_arms_must_have_distinct_names():
  data = tiny_dataset(128)
  with pytest.raises(ValueError, match=r"arms must be distinct names, at least one; got \['a', 'a'\]"):
    run_arms(SETTINGS, lambda d: [Arm("a", small_mlp()), Arm("a", small_mlp())], dataset=data)
  with pytest.raises(ValueError, match="at least one"):
    run_arms(SETTINGS, lambda d: [], dataset=data)


def test_the_fingerprint_names_the_experiment_its_settings_the_data_and_the_software():
  data = tiny_dataset(64)
  fingerprint = runner.training_fingerprint(SETTINGS, data)
  assert sorted(fingerprint) == ["data_digest", "environment", "experiment", "settings"]
  assert fingerprint["experiment"] == "CompareSettings" and fingerprint["settings"] == SETTINGS.fingerprint()
  assert runner.training_fingerprint(SETTINGS.replace(seeds=9, devices=1), data) == fingerprint
  assert runner.training_fingerprint(SETTINGS.replace(learning_rate=0.5), data) != fingerprint
