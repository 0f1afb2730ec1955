"""The command line as a newcomer meets it: help, refusals before JAX loads, messages, progress."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_dataset

from parewire_jax.__main__ import _parser, main
from parewire_jax.experiments import settings
from parewire_jax.experiments.progress import TrainingProgress
from parewire_jax.experiments.train import evaluation_work, progress_bar, train_seeds


def _subcommands() -> dict:
  return _parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command", ["compare", "strength", "laperm", "atlas"])
def test_every_option_has_help_and_says_its_default(command):
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


class _SlowMLP(nn.Module):
  """A small MLP whose every training step reports itself from inside the computation, after a pause."""

  finished: Callable[[], None]

  @nn.compact
  def __call__(self, x, train: bool = False):
    logits = nn.Dense(3)(nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1))))
    if train:

      def slow_step(_):
        time.sleep(0.01)
        self.finished()

      jax.debug.callback(slow_step, logits[0, 0])
    return logits


def test_progress_counts_completed_steps_not_dispatched_ones():
  """When the bar moves, exactly the steps it counts have run: a fake slow step reports from inside XLA."""
  data, executed, seen = tiny_dataset(160), [], []
  config = settings.TrainConfig(epochs=2, batch_size=16, segments_per_epoch=5)  # 10 steps, 5 segments per epoch
  seeds = [0, 1]

  def progress(steps):
    seen.append((steps, len(executed) // len(seeds)))

  train_seeds(_SlowMLP(lambda: executed.append(1)), data, seeds, config, progress=progress)
  assert [steps for steps, _ in seen] == [2] * 10
  completed_at_update = [done for _, done in seen]
  assert completed_at_update == list(np.cumsum([steps for steps, _ in seen]))


def test_bar_leaves_compilation_out_and_ends_at_its_total():
  data = tiny_dataset(160)
  config = settings.TrainConfig(epochs=1, batch_size=16, segments_per_epoch=2)
  model = _SlowMLP(lambda: None)
  with TrainingProgress(2 * 10, enabled=False) as bar:
    for name in ("a", "b"):
      bar.start(name)
      train_seeds(model, data, [0, 1], config, progress=bar.update, compiled=bar.compiled)
    assert bar.count == 20


def test_bar_counts_each_evaluation_after_its_epoch():
  data = tiny_dataset(160)
  config = settings.TrainConfig(epochs=2, batch_size=16, segments_per_epoch=2)  # 10 steps per epoch
  events = []
  train_seeds(
    _SlowMLP(lambda: None),
    data,
    [0, 1],
    config,
    progress=lambda n: events.append(n),
    evaluated=lambda: events.append("evaluated"),
  )
  assert events == [5, 5, "evaluated", 5, 5, "evaluated"]
  work = evaluation_work(config, data)
  assert work == max(1, round(3 * (len(data.x_val) + len(data.x_test)) / (4 * 16)))
  with progress_bar(2, config, data, 2, enabled=False) as bar:
    for name in ("a", "b"):
      bar.start(name)
      callbacks = {"progress": bar.update, "compiled": bar.compiled, "evaluated": bar.evaluated}
      train_seeds(_SlowMLP(lambda: None), data, [0, 1], config, **callbacks)
    assert bar.count == 2 * (2 * 10 + 2 * work)


def test_train_sizes_match_the_loaded_data():
  from parewire_jax.experiments.data import load_dataset

  assert len(load_dataset("digits").x_train) == settings.TRAIN_SIZES["digits"]
  assert len(load_dataset("digits", limit_train=100).x_train) == settings.train_size("digits", 100)


def test_segments_do_not_change_training():
  data = tiny_dataset(192)
  base = settings.TrainConfig(epochs=2, batch_size=16, learning_rate=0.05)
  from parewire_jax.experiments.models import build_model, kernel_initializer

  model = build_model("mlp", 3, kernel_initializer("kaiming_normal"), mlp_hidden=(16,))
  whole = train_seeds(model, data, [0, 1], base._replace(segments_per_epoch=1))
  split = train_seeds(model, data, [0, 1], base._replace(segments_per_epoch=4))
  assert split.train_curve_acc.shape == (2, 2, 4) and whole.train_curve_acc.shape == (2, 2, 1)
  for field in ("val_loss", "val_acc", "test_loss", "test_acc"):
    np.testing.assert_array_equal(getattr(split, field), getattr(whole, field), err_msg=field)
  np.testing.assert_allclose(split.train_loss, whole.train_loss, rtol=1e-6)
  np.testing.assert_allclose(split.train_curve_loss.mean(-1), whole.train_curve_loss[..., 0], rtol=1e-6)
  assert jnp.asarray(split.train_curve_loss).std() > 0


@pytest.mark.parametrize("given", [None, "--xla_cpu_enable_concurrency_optimized_scheduler=true"])
def test_cli_turns_off_the_cpu_scheduler_that_deadlocks_unless_told_otherwise(given):
  probe = (
    "import os\n"
    "from parewire_jax.__main__ import _avoid_cpu_scheduler_deadlock\n"
    "_avoid_cpu_scheduler_deadlock()\n"
    "print(os.environ['XLA_FLAGS'])\n"
  )
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if given:
    env["XLA_FLAGS"] = given
  done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True)
  assert done.stdout.split() == [given or "--xla_cpu_enable_concurrency_optimized_scheduler=false"]
