"""The committed paper-scale results (benchmarks/paper/) and the numbers the README and RESULTS.md quote from them."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from scipy import stats as sps

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER = ROOT / "benchmarks" / "paper"


def _mean_std(values) -> str:
  x = 100 * np.asarray(values, np.float64)
  return f"{x.mean():.2f} ± {x.std(ddof=1):.2f}"


def test_laperm_cnn_table_and_quotes_come_from_its_results_json():
  run = PAPER / "laperm_lenet"
  saved = json.loads((run / "results.json").read_text())
  table = (run / "table.md").read_text()
  results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
  readme = (ROOT / "README.md").read_text()
  adam, laperm = (np.asarray(saved["arms"][arm]["per_seed"]["test_acc"]) for arm in ("adam", "laperm_adam"))
  quoted = f"Adam {_mean_std(adam)}, LaPerm(Adam) {_mean_std(laperm)}"
  assert quoted == "Adam 98.79 ± 0.08, LaPerm(Adam) 98.80 ± 0.14"  # what RESULTS.md says, below
  assert quoted in results_md
  assert f"{_mean_std(laperm)} vs {_mean_std(adam)}" in readme
  p = sps.ttest_rel(laperm, adam).pvalue
  assert f"paired {100 * (laperm - adam).mean():+.2f} pp" in results_md and f"t p = {p:.3f}" in results_md
  # the per-epoch table of RESULTS.md is the committed table's, row for row
  rows = [line for line in table.splitlines() if line.startswith(("| epoch", "| 1 |", "| 2 |"))]
  assert len(rows) == 3 and all(row in results_md for row in rows)
  # the settings are the command's defaults, and every LaPerm column stayed an exact permutation
  from parewire_jax.experiments import LaPermSettings

  assert saved["config"] == json.loads(json.dumps(LaPermSettings().asdict()))
  checked = saved["columns_per_epoch"] * saved["config"]["training"]["epochs"]
  assert sum(saved["arms"]["laperm_adam"]["exact_permutation_columns"]) == checked == 4640


def _runs() -> dict[str, list[str]]:
  """benchmarks/paper/runs.txt: run name -> the arguments of ``compare`` (the ``common`` ones first)."""
  lines = [line.split() for line in (PAPER / "runs.txt").read_text().splitlines() if line and line[0] != "#"]
  common = next(args for name, *args in lines if name == "common")
  return {name: ["compare", *common, *args] for name, *args in lines if name != "common"}


def _settings(name: str):
  from parewire_jax.__main__ import build_parser
  from parewire_jax.experiments.settings import CompareSettings, from_arguments

  return from_arguments(CompareSettings(), build_parser().parse_args(_runs()[name]))


def test_every_paper_run_is_the_papers_setting_for_its_first_epoch():
  for name in _runs():
    settings = _settings(name)
    settings.check()
    network, training, data = settings.network, settings.training, settings.data
    assert (network.model, data.dataset, data.limit_train, data.limit_eval) == ("lenet", "mnist", None, None), name
    assert (training.epochs, training.schedule_epochs, training.batch_size, training.learning_rate) == (
      1,
      100,
      128,
      0.01,
    )
    assert (settings.optimizer, settings.momentum, training.eval_train) == ("sgd", 0.9, 10_000)
  assert _settings("table1").seeding.seeds == 100 and set(_settings("table1").variants) == {
    "base",
    "rewired",
    "min_sv",
    "max_sv",
  }


@pytest.mark.parametrize("name", [n for n in _runs() if (PAPER / n / "chunks").is_dir()])
def test_saved_chunks_of_a_paper_run_resume_with_this_code(name):
  """A paper-scale run spans sessions: its saved chunks must be the ones this code would train (no training here)."""
  from parewire_jax.experiments.checkpoint import ChunkStore
  from parewire_jax.experiments.runner import dataset_of, training_fingerprint

  settings = _settings(name)
  expected = training_fingerprint(settings, dataset_of(settings.data))
  chunks = sorted((PAPER / name / "chunks").glob("*.npz"))
  assert chunks
  with np.load(chunks[0]) as first:
    stored = json.loads(str(first["fingerprint"]))
  # the software may have moved on (a new JAX refuses them, as it should); the settings and the data may not
  assert {k: v for k, v in stored.items() if k != "environment"} == {
    k: v for k, v in json.loads(json.dumps(expected)).items() if k != "environment"
  }
  store = ChunkStore(PAPER / name / "chunks", stored, resume=True)
  for path in chunks:
    arm, seeds = path.stem.split("_seeds_")
    low, high = map(int, seeds.split("-"))
    loaded = store.load(arm, list(range(low, high + 1)), epochs=1)
    assert loaded is not None and loaded.seeds.tolist() == list(range(low, high + 1))
    assert sorted(loaded.records) == ["train_eval_acc", "train_eval_loss"]


def _tables_module():
  import importlib.util

  spec = importlib.util.spec_from_file_location("paper_tables", PAPER / "tables.py")
  module = importlib.util.module_from_spec(spec)  # pyright: ignore[reportArgumentType]
  spec.loader.exec_module(module)  # pyright: ignore[reportOptionalMemberAccess]
  return module


def test_the_paper_tables_are_computed_from_the_saved_chunks(tmp_path, monkeypatch):
  from helpers import train_result

  from parewire_jax.experiments.checkpoint import ChunkStore

  tables = _tables_module()
  rng = np.random.default_rng(0)
  store = ChunkStore(tmp_path / "table1" / "chunks", {"any": 1})
  values = {}
  for variant in ("base", "rewired"):
    for seeds in ([0, 1, 2], [3, 4]):  # two chunks, joined in seed order
      chunk = train_result(seeds)
      steps, end, val = (rng.uniform(0.8, 1.0, (len(seeds), 1)) for _ in range(3))
      chunk = chunk._replace(train_acc=steps, val_acc=val, records={"train_eval_acc": end})
      store.save(variant, chunk, seconds=1.0)
      for column, x in zip(("steps", "end", "val"), (steps, end, val), strict=True):
        values.setdefault((variant, column), []).append(100 * x[:, 0])
  monkeypatch.setattr(tables, "HERE", tmp_path)
  (tmp_path / "runs.txt").write_text("common --epochs 1\ntable1 --init kaiming_normal --seeds 5\n")
  text = tables.table("table1")
  base_val, rewired_val = (np.concatenate(values[v, "val"]) for v in ("base", "rewired"))
  assert f"| base | 5 | {tables._mean_std(np.concatenate(values['base', 'steps']))} |" in text
  assert f"{tables._mean_std(rewired_val)} | 97.37 ± 0.31 | 96.85 ± 0.32 |" in text  # beside the paper's rewired row
  p = sps.ttest_rel(rewired_val, base_val).pvalue
  assert f"| rewired | ep. 1 val. acc. | 5 | {(rewired_val - base_val).mean():+.2f} pp | p={p:.3g} |" in text
  row = f"| table1 (kaiming_normal) | rewired | 5 | {tables._mean_std(np.concatenate(values['rewired', 'end']))} | "
  row += f"{tables._mean_std(rewired_val)} | 97.37 ± 0.31 / 96.85 ± 0.32 | "
  row += f"{(rewired_val - base_val).mean():+.2f} pp (p={p:.2g}) |"
  assert row in tables.summary(["table1"])
  assert tables.training_minutes("table1") == pytest.approx(4 / 60)  # four chunks of 1 s


def _quoted_runs() -> list[str]:
  """The runs whose table RESULTS.md quotes (a line ``<run> (<init>):``)."""
  results_md = (ROOT / "benchmarks" / "RESULTS.md").read_text()
  return [name for name in _runs() if f"\n{name} (" in results_md]


def _finished_runs() -> list[str]:
  return [name for name in _runs() if (PAPER / name / "results.json").exists()]


def test_every_finished_paper_run_is_quoted_in_results_md():
  assert "table1" in _finished_runs()
  assert set(_finished_runs()) <= set(_quoted_runs())


@pytest.mark.parametrize("page", ["README.md", "docs/guides/experiments.md"])
def test_the_readme_and_the_guide_show_the_summary_of_the_finished_runs(page):
  """The one-row-per-variant table (``tables.py --summary``) of every finished run, to the digit."""
  assert _tables_module().summary(_finished_runs()) in (ROOT / page).read_text()


def test_the_readme_quotes_the_table_1_run():
  data = _tables_module().per_seed(PAPER / "table1")
  base, rewired = (data[v]["val"] for v in ("base", "rewired"))
  shown = f"{base.mean():.2f} ± {base.std(ddof=1):.2f} → {rewired.mean():.2f} ± {rewired.std(ddof=1):.2f}"
  assert shown in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", _quoted_runs())
def test_the_tables_quoted_in_results_md_are_generated_from_the_committed_results(name):
  """RESULTS.md's table of a run is what tables.py prints from the committed results.json or chunks, to the digit."""
  tables = _tables_module()
  assert tables.table(name) in (ROOT / "benchmarks" / "RESULTS.md").read_text()


@pytest.mark.slow
def test_a_slice_of_a_committed_chunk_trains_again_to_the_same_bits(tmp_path):
  """Table 1's command for seeds 3 and 4 only, in a fresh process as a user runs it (none of the test
  suite's XLA flags): every number the committed chunks of seeds 0-9 saved for them is the same bits, though
  two seeds are now vectorized instead of ten. About 4 min on 2 CPU cores:
  ``python -m pytest -m slow tests/test_paper_results.py -k slice``.
  """
  import os
  import subprocess
  import sys

  from parewire_jax.experiments import runtime

  argv = [*_runs()["table1"], "--first-seed", "3", "--seeds", "2", "--variants", "base", "rewired"]
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", runtime.CACHE_ENV)}
  done = subprocess.run(
    [sys.executable, "-m", "parewire_jax", *argv, "--out", str(tmp_path)],
    env=env,
    capture_output=True,
    text=True,
    timeout=1200,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  for variant in ("base", "rewired"):
    with (
      np.load(tmp_path / "chunks" / f"{variant}_seeds_3-4.npz") as again,
      np.load(PAPER / "table1" / "chunks" / f"{variant}_seeds_0-9.npz") as committed,
    ):
      numbers = [k for k in committed.files if committed[k].dtype.kind == "f" and committed[k].ndim > 0]
      assert {"val_acc", "train_acc", "record:train_eval_acc", "train_curve_loss", "test_acc"} <= set(numbers)
      assert committed["seeds"][3:5].tolist() == again["seeds"].tolist() == [3, 4]
      for name in numbers:
        np.testing.assert_array_equal(again[name], committed[name][3:5], err_msg=f"{variant}: {name}")
