"""The process set-up of the experiments (parewire_jax.experiments.runtime): XLA flags, cache, output directory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from parewire_jax.experiments import runtime


@pytest.mark.parametrize("given", [None, "--xla_cpu_enable_concurrency_optimized_scheduler=true"])
def test_cli_turns_off_the_cpu_scheduler_that_deadlocks_unless_told_otherwise(given):
  probe = (
    "import os\n"
    "from parewire_jax.experiments.runtime import avoid_cpu_scheduler_deadlock\n"
    "avoid_cpu_scheduler_deadlock()\n"
    "print(os.environ['XLA_FLAGS'])\n"
  )
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if given:
    env["XLA_FLAGS"] = given
  done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True)
  assert done.stdout.split() == [given or "--xla_cpu_enable_concurrency_optimized_scheduler=false"]


def test_flags_the_user_set_win_and_the_cache_is_set_before_jax_starts():
  probe = (
    "import os, sys\n"
    "from parewire_jax.experiments import runtime\n"
    "runtime.set_xla_flag('--xla_foo', 1)\n"
    "runtime.use_compilation_cache('/tmp/some-cache')\n"
    "print(os.environ['XLA_FLAGS'], os.environ['JAX_COMPILATION_CACHE_DIR'], 'jax' in sys.modules)\n"
  )
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", runtime.CACHE_ENV)}
  env["XLA_FLAGS"] = "--xla_foo=7"
  done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True)
  assert done.stdout.split() == ["--xla_foo=7", "/tmp/some-cache", "False"]


def test_an_output_directory_is_created_or_refused_with_its_name(tmp_path):
  assert runtime.ensure_writable(tmp_path / "a" / "b").is_dir()
  assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe file is gone
  (tmp_path / "file").write_text("")
  with pytest.raises(ValueError, match=r"out_dir '.*file/out' cannot be written"):
    runtime.ensure_writable(tmp_path / "file" / "out")
