"""The command line as a newcomer meets it (parewire_jax.__main__): help, refusals before JAX loads, every command.

Every test of ``python -m parewire_jax`` lives here; the experiments it runs
are tested in their own modules' files.
"""

import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import markdown_table
from scipy import stats as sps

from parewire_jax.__main__ import COMMANDS, build_parser, main
from parewire_jax.experiments import tables
from parewire_jax.experiments.atlas_grids import atlas_grid
from parewire_jax.experiments.settings import LAPERM_ARMS


def _subcommands() -> dict:
  return build_parser()._subparsers._group_actions[0].choices


def _numbers(cell: str) -> list[float]:
  return [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan", cell.replace("p=n/a", "nan"))]


@pytest.mark.parametrize("command", ["compare", "strength", "laperm", "atlas"])
def test_every_option_has_help_and_says_its_default(command):
  assert list(COMMANDS) == ["compare", "strength", "laperm", "atlas"]
  subparser = _subcommands()[command]
  assert subparser.description, command
  options = [a for a in subparser._actions if a.option_strings and a.dest != "help"]
  assert options
  for action in options:
    assert action.help and "(default:" in action.help, (command, action.option_strings)
  rendered = " ".join(subparser.format_help().split())
  assert rendered.count("(default:") == len(options)


# Each is refused by the checks that need neither data nor JAX.
BAD_CALLS = [
  (["compare", "--seeds", "1"], "seeds must be an int >= 2"),
  (["compare", "--batch-size", "100000"], "batch_size (100000) exceeds the 5000 training examples"),
  (["compare", "--dataset", "digits", "--batch-size", "2000"], "exceeds the 1077 training examples"),
  (["compare", "--limit-train", "100", "--batch-size", "128"], "exceeds the 100 training examples"),
  (["compare", "--epochs", "0"], "epochs must be an int >= 1"),
  (["compare", "--lr", "-1"], "learning_rate must be a finite number > 0"),
  (["compare", "--variants", "rewired"], "include 'base'"),
  (["compare", "--mlp-hidden", "0"], r"mlp_hidden[0] must be an int >= 1"),
  (["compare", "--model", "vgg"], "invalid choice: 'vgg'"),
  (["compare", "--model", "transformer"], "model 'transformer' takes token sequences but dataset 'mnist'"),
  (["compare", "--dataset", "pointer"], "model 'lenet' takes images but dataset 'pointer'"),
  (["compare", "--model", "mlp", "--norm", "batch"], "norm 'batch' is not available for model 'mlp'"),
  (["compare", "--model", "resmlp", "--mlp-hidden", "8", "16"], "one width repeated once per residual block"),
  (["compare", "--optimizer", "laperm_adam"], "invalid choice: 'laperm_adam'"),
  (["strength", "--shape", "5"], "shape must have at least 2"),
  (["strength", "--seeds", "0"], "seeds must be an int >= 1"),
  (["laperm", "--sync-period", "0"], "sync_period must be an int >= 1"),
  (["laperm", "--seeds", "1"], "The paired tests need two samples"),
  (["atlas", "--grid", "huge"], "invalid choice: 'huge'"),
  (["atlas", "--seeds", "2"], "seeds must be an int >= 3"),
  (["atlas", "--cells", "vgg"], "cells must name cells of the 'default' grid"),
  (["compare", "--devices", "0"], "devices must be None or an int >= 1, got 0"),
  (["laperm", "--num-processes", "2"], "--num-processes: only read with --distributed"),
  (["compare", "--epochs", "2", "--schedule-epochs", "1"], "schedule_epochs (1) must be at least epochs (2)"),
  (["compare", "--out", "/proc/parewire-out"], "out_dir '/proc/parewire-out' cannot be written"),
  (["laperm", "--out", "/proc/parewire-out"], "cannot be written"),
  (["strength", "--resume"], "strength has nothing to resume"),
]


@pytest.mark.parametrize("argv, message", BAD_CALLS, ids=[" ".join(a) for a, _ in BAD_CALLS])
def test_bad_arguments_exit_2_quickly_without_importing_jax(argv, message):
  probe = (
    "import runpy, sys\n"
    f"sys.argv = ['parewire_jax', *{argv!r}]\n"
    "try:\n"
    "  runpy.run_module('parewire_jax', run_name='__main__')\n"
    "finally:\n"
    "  print('jax imported:', 'jax' in sys.modules, file=sys.stderr)\n"
  )
  started = time.perf_counter()
  done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
  seconds = time.perf_counter() - started
  assert done.returncode == 2, done.stderr
  assert message in done.stderr
  assert "jax imported: False" in done.stderr
  assert "Traceback" not in done.stderr
  assert seconds < 1.0, seconds


def test_missing_dataset_gives_the_command_line_fix(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(["compare", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--no-download"])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert "fashion_mnist" in err and str(tmp_path) in err
  assert "drop --no-download" in err and "--data-dir" in err
  assert "load_dataset(" not in err and "download=True" not in err


def test_strength_says_where_it_wrote(tmp_path, capsys):
  main(["strength", "--shape", "12", "8", "--seeds", "2", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert f"outputs in {tmp_path}" in out
  assert json.loads((tmp_path / "strength.json").read_text())["shape"] == [12, 8]


@pytest.mark.parametrize(
  "argv, message",
  [
    (["compare", "--seeds", "1"], "seeds must be an int >= 2"),
    (["compare", "--epochs", "0"], "epochs must be an int >= 1"),
    (["compare", "--variants", "rewired"], "include 'base'"),
    (["compare", "--batch-size", "0"], "batch_size"),
    (["strength", "--shape", "16"], "at least 2 positive"),
    (["strength", "--seeds", "0"], "seeds must be an int >= 1"),
  ],
)
def test_cli_rejects_impossible_settings(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


@pytest.mark.parametrize(
  "argv",
  [
    ["compare", "--init", "xavier"],
    ["compare", "--model", "vgg"],
    ["compare", "--dataset", "imagenet"],
    ["frobnicate"],
  ],
)
def test_cli_rejects_unknown_names(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(argv)
  assert exit_info.value.code == 2
  assert "invalid choice" in capsys.readouterr().err


def test_cli_lenet_on_too_small_images(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(
      ["compare", "--dataset", "digits", "--model", "lenet", "--seeds", "2", "--epochs", "1", "--out", str(tmp_path)]
    )
  assert exit_info.value.code == 2
  assert "lenet needs images of at least 16×16" in capsys.readouterr().err


def test_cli_missing_dataset_says_how_to_get_it(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(["compare", "--dataset", "fashion_mnist", "--data-dir", str(tmp_path), "--no-download"])
  assert exit_info.value.code == 1
  assert "fashion_mnist" in capsys.readouterr().err


def test_cli_compare_on_digits(tmp_path, capsys):
  main(
    [
      "compare",
      "--dataset",
      "digits",
      "--model",
      "mlp",
      "--seeds",
      "2",
      "--epochs",
      "1",
      "--mlp-hidden",
      "8",
      "--limit-train",
      "300",
      "--limit-eval",
      "100",
      "--no-standardize",
      "--variants",
      "base",
      "max_sv",
      "--num-draws",
      "2",
      "--out",
      str(tmp_path),
    ]
  )
  out = capsys.readouterr().out
  assert "| base |" in out and "| max_sv |" in out and "Wilcoxon" in out and "Brown–Forsythe" in out
  saved = json.loads((tmp_path / "results.json").read_text())
  assert (saved["dataset"]["num_train"], saved["dataset"]["num_val"], saved["dataset"]["num_test"]) == (300, 100, 100)
  assert saved["config"]["data"]["standardize"] is False
  assert "levene" in saved["arms"]["max_sv"]["vs_reference"]["test_acc"]
  main(["compare", "--dataset", "digits", "--model", "mlp", "--mlp-hidden", "8", "--seeds", "2", "--limit-train",
        "all", "--limit-eval", "all", "--standardize", "--out", str(tmp_path)])  # fmt: skip
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["data"]["limit_train"] is None and saved["config"]["data"]["limit_eval"] is None
  assert saved["config"]["data"]["standardize"] is True and saved["dataset"]["num_train"] == 1797 - 2 * 360


def test_cli_strength(tmp_path, capsys):
  main(["strength", "--shape", "24", "16", "--seeds", "3", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  assert "| base |" in out and "| rewired |" in out
  saved = json.loads((tmp_path / "strength.json").read_text())
  assert saved["mean"]["rewired"]["in σ²"] < saved["mean"]["base"]["in σ²"]
  assert saved["mean"]["rewired"]["out σ²"] < saved["mean"]["base"]["out σ²"]
  assert saved["shape"] == [24, 16] and saved["seeds"] == 3
  assert (tmp_path / "strength.png").stat().st_size > 0


def _rows(table: str, first_cells) -> dict[str, list[str]]:
  rows = {}
  for line in table.splitlines():
    cells = [c.strip() for c in line.split("|")[1:-1]]
    if cells and cells[0] in first_cells and cells[0] not in rows:
      rows[cells[0]] = cells[1:]
  return rows


# A LaPerm run of seconds: 300 digits, an MLP with one hidden layer of 8, two seeds.
TINY_LAPERM = ["laperm", "--dataset", "digits", "--model", "mlp", "--limit-train", "300", "--seeds", "2",
               "--batch-size", "30", "--sync-period", "5", "--mlp-hidden", "8"]  # fmt: skip


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on near-identical samples
def test_cli_laperm_end_to_end_and_table_equals_json(tmp_path, capsys):
  main([*TINY_LAPERM, "--epochs", "2", "--lr", "0.01", "--out", str(tmp_path)])
  out = capsys.readouterr().out
  for name in ("results.json", "table.md", "curves.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  table = (tmp_path / "table.md").read_text()
  assert table.strip() in out
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["sync_period"] == 5 and saved["config"]["network"]["mlp_hidden"] == [8]
  assert saved["dataset"]["num_train"] == 300
  adam, lap = saved["arms"]["adam"], saved["arms"]["laperm_adam"]

  # the permutation check: every LaPerm column, every epoch; 2 seeds × (8 + 10) columns
  assert saved["columns_per_epoch"] == 2 * (8 + 10)
  assert lap["exact_permutation_columns"] == [36, 36]
  assert adam["exact_permutation_columns"][-1] < 36
  assert "- laperm_adam: 72 / 72" in out

  # per-epoch validation table = JSON curves and paired tests
  epoch_rows = _rows(table.split("per-seed metrics")[0], {"1", "2"})
  for e in range(2):
    a, b = np.asarray(adam["curves"]["val_acc"])[:, e], np.asarray(lap["curves"]["val_acc"])[:, e]
    cells = [_numbers(c) for c in epoch_rows[str(e + 1)]]
    assert cells[0] == pytest.approx([round(a.mean() * 100, 2), round(a.std(ddof=1) * 100, 2)], abs=0.0051)
    assert cells[1] == pytest.approx([round(b.mean() * 100, 2), round(b.std(ddof=1) * 100, 2)], abs=0.0051)
    assert cells[2] == pytest.approx([round((b - a).mean() * 100, 2)], abs=0.0051)
    p = sps.ttest_rel(b, a).pvalue
    assert (math.isnan(cells[3][0]) and math.isnan(p)) or cells[3][0] == pytest.approx(p, rel=5e-3)
    assert saved["epoch_val_acc_tests"][e]["mean_difference"] == pytest.approx((b - a).mean())

  # test accuracy at the best validation epoch = JSON curves; paired table = scipy on the JSON values
  metric_header, metric_rows = markdown_table(table.split("per-seed metrics")[1])
  for arm in ("adam", "laperm_adam"):
    curves = saved["arms"][arm]["curves"]
    best = np.argmax(curves["val_acc"], axis=1)
    test_acc = np.asarray(curves["test_acc"])[np.arange(2), best]
    np.testing.assert_allclose(saved["arms"][arm]["per_seed"]["test_acc"], test_acc)
    assert _numbers(metric_rows[arm][metric_header.index("test acc. (mean ± std)")])[:2] == pytest.approx(
      [round(test_acc.mean() * 100, 2), round(test_acc.std(ddof=1) * 100, 2)], abs=0.0051
    )
  paired = [line for line in table.splitlines() if line.startswith("| laperm_adam | test acc. |")]
  (line,) = paired
  a, b = (np.asarray(saved["arms"][arm]["per_seed"]["test_acc"]) for arm in ("adam", "laperm_adam"))
  numbers = _numbers(line)
  assert numbers[0] == pytest.approx(round((b - a).mean() * 100, 2), abs=0.0051)
  p = sps.ttest_rel(b, a).pvalue
  assert (math.isnan(numbers[1]) and math.isnan(p)) or numbers[1] == pytest.approx(p, rel=5e-3)

  # weight deviation table = JSON (mean over seeds)
  deviation_rows = _rows(table.split("weight deviation")[1], {"Dense_0/kernel", "Dense_1/kernel"})
  for name, cells in deviation_rows.items():
    expected = [
      np.mean(saved["arms"][arm]["weight_deviation"][name][field])
      for field in tables.DEVIATION_COLUMNS
      for arm in LAPERM_ARMS
    ]
    np.testing.assert_allclose([float(c) for c in cells], expected, rtol=5e-4)


def test_cli_atlas_trains_the_smoke_grid_then_resumes_it_and_prints_the_table(tmp_path, capsys):
  argv = ["atlas", "--grid", "smoke", "--seeds", "3", "--cells", "mlp-1x16", "--out", str(tmp_path)]
  assert main(argv) == 0
  first = capsys.readouterr().out
  row = next(line for line in first.splitlines() if line.startswith("| mlp-1x16 |"))
  assert (tmp_path / "atlas.md").read_text().count(row) == 1 and "reused" not in first
  assert main([*argv, "--resume", "--compilation-cache", "off"]) == 0
  again = capsys.readouterr().out
  assert row in again and "1 cell(s) reused" in again


def test_cli_lists_cells_without_training(capsys):
  assert main(["atlas", "--list"]) == 0
  listed = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in listed] == [cell.name for cell in atlas_grid("default")]


def test_cli_compare_resumes(tmp_path, capsys):
  argv = [
    "compare",
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--seeds",
    "2",
    "--epochs",
    "1",
    "--mlp-hidden",
    "8",
    "--limit-train",
    "200",
    "--out",
    str(tmp_path),
  ]
  main(argv)
  first = json.loads((tmp_path / "results.json").read_text())
  assert "resumed" not in capsys.readouterr().out
  main(argv + ["--resume"])
  out = capsys.readouterr().out
  assert "including 2 chunk(s) resumed from earlier runs" in out
  second = json.loads((tmp_path / "results.json").read_text())
  assert second["resumed_chunks"] == {"base": [[0, 1]], "rewired": [[0, 1]]}
  assert second["arms"]["rewired"]["per_seed"] == first["arms"]["rewired"]["per_seed"]


def test_devices_option(capsys):
  args = build_parser().parse_args(["compare", "--devices", "4"])
  assert args.devices == 4 and build_parser().parse_args(["laperm"]).devices is None
  for argv, message in (
    (["--devices", "0"], "devices must be None or an int >= 1, got 0"),
    (["--devices", "two"], "invalid int value: 'two'"),
    (["--devices", "9", "--seeds", "2"], "devices (9) exceeds the 8 device(s)"),
    (["--process-id", "1"], "--process-id: only read with --distributed"),
    (["--distributed", "--num-processes", "2", "--process-id", "2"], "must be below --num-processes"),
  ):
    with pytest.raises(SystemExit) as exit_info:
      main(["compare", "--dataset", "digits", "--limit-train", "256", *argv])
    assert exit_info.value.code == 2, argv
    assert message in capsys.readouterr().err, argv


def test_cli_laperm_resumes(tmp_path, capsys):
  argv = [*TINY_LAPERM, "--epochs", "1", "--out", str(tmp_path)]
  main(argv)
  first = (tmp_path / "table.md").read_text()
  main([*argv, "--resume"])
  assert "2 chunk(s) resumed from earlier runs" in capsys.readouterr().out
  assert (tmp_path / "table.md").read_text() == first


def test_an_output_directory_that_cannot_be_written_is_refused_before_any_training(tmp_path):
  blocked = tmp_path / "a-file"
  blocked.write_text("")
  started = time.perf_counter()
  done = subprocess.run(
    [sys.executable, "-m", "parewire_jax", "compare", "--out", str(blocked / "out")], capture_output=True, text=True
  )
  assert done.returncode == 2 and "cannot be written" in done.stderr and "Traceback" not in done.stderr
  assert time.perf_counter() - started < 5  # refused at once, not after a run


@pytest.mark.slow
def test_two_processes_train_like_one_and_only_process_0_writes(tmp_path):
  """Two processes on this host (2 virtual CPU devices each) via jax.distributed, against one process on 4."""
  import json
  import socket
  import subprocess
  import sys

  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  run = ["compare", "--dataset", "digits", "--model", "mlp", "--mlp-hidden", "16", "--seeds", "5", "--epochs", "1",
         "--batch-size", "64", "--limit-train", "256", "--limit-eval", "128", "--seeds-per-vmap", "1",
         "--compilation-cache", "off"]  # fmt: skip
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
  processes = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "parewire_jax",
        *run,
        "--out",
        str(tmp_path / f"process{i}"),
        "--distributed",
        "--coordinator-address",
        f"localhost:{port}",
        "--num-processes",
        "2",
        "--process-id",
        str(i),
      ],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )  # fmt: skip
    for i in range(2)
  ]
  for process in processes:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  single = subprocess.run(
    [sys.executable, "-m", "parewire_jax", *run, "--out", str(tmp_path / "single")], env=env, capture_output=True
  )
  assert single.returncode == 0, single.stderr
  assert not (tmp_path / "process1").exists()
  distributed = json.loads((tmp_path / "process0" / "results.json").read_text())
  alone = json.loads((tmp_path / "single" / "results.json").read_text())
  for variant in ("base", "rewired"):
    assert distributed["arms"][variant]["curves"] == alone["arms"][variant]["curves"], variant
