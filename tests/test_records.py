"""results.json (parewire_jax.experiments.records): one writer, one reader, NaN as null."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import small_mlp, tiny_dataset

from parewire_jax.experiments import records
from parewire_jax.experiments.runner import Arm, run_arms
from parewire_jax.experiments.settings import CompareSettings


def test_what_is_written_reads_back(tmp_path):
  settings = CompareSettings().replace(dataset="digits", model="mlp", seeds=2, batch_size=64, epochs=2)
  run = run_arms(settings, lambda d: [Arm("base", small_mlp()), Arm("rewired", small_mlp("rewired"))],
                 dataset=tiny_dataset(128))  # fmt: skip
  records.write_results(tmp_path, run, arms={"rewired": {"note": "extra"}}, top_level=1)
  raw = json.loads((tmp_path / "results.json").read_text())
  assert raw["arms"]["rewired"]["note"] == "extra" and raw["top_level"] == 1 and raw["reference"] == "base"
  saved = records.read_results(tmp_path / "results.json")
  assert saved.config == json.loads(json.dumps(settings.asdict())) and saved.seeds == [0, 1]
  for arm, result in run.results.items():
    for curve in records.CURVES:
      np.testing.assert_allclose(saved.curves[arm][curve], getattr(result, curve), rtol=1e-6, err_msg=curve)
  assert saved.train_seconds == pytest.approx(run.train_seconds)


def test_nan_is_written_as_null_and_read_back_as_nan(tmp_path):
  records.write_json(tmp_path / "x.json", {"a": np.array([1.0, np.nan]), "b": float("nan")})
  assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1.0, None], "b": None}
  with pytest.raises(ValueError, match="is not a readable results.json"):
    records.read_results(tmp_path / "x.json")
