"""Shared test set-up: 8 virtual CPU devices and one XLA compilation cache (helpers live in tests/helpers.py).

The XLA flags and the cache are set with parewire_jax.experiments.runtime, as
the command line sets them.

The sharding tests (tests/test_sharding.py) need 8 devices; on the CPU that
means XLA's virtual host devices, which must be requested before the first
JAX backend starts. pytest loads this file (an initial conftest of the
``tests`` testpath) before collecting any test module or doctest, so the flag
set here is in place when JAX first creates a backend. An explicit device
count already in ``XLA_FLAGS`` wins. If a backend started earlier anyway,
tests/test_sharding.py notices and reruns itself in a subprocess with the flag.
"""

import os

from parewire_jax.experiments import runtime  # imports no JAX

SHARDING_TEST_DEVICES = 8
runtime.set_xla_flag("--xla_force_host_platform_device_count", SHARDING_TEST_DEVICES)

# XLA compiles dominate the suite's time, and the CPU backend's optimization level 1 compiles in about half
# the time of the default (level 2): the tests check values and bits, which do not depend on it (the golden
# digests of tests/test_rewiring.py hold at both levels). `.ci/run`'s floors
# step keeps the default level, and PAREWIRE_TESTS_XLA_DEFAULT_OPT=1 keeps it for the whole suite.
# A test run that hangs is worse than a slow one: the CPU scheduler that can deadlock is off, as in the CLI.
runtime.avoid_cpu_scheduler_deadlock()
if not os.environ.get("PAREWIRE_TESTS_XLA_DEFAULT_OPT"):
  runtime.set_xla_flag("--xla_backend_optimization_level", 1)

# One compilation cache for the whole session, shared by the pytest-xdist workers and the notebook kernels
# they start (all inherit this environment): many tests build the same computations anew (fresh closures,
# a fresh model per variant, the same tiny training runs), and XLA compiles dominate the suite's time. The
# cache is new for every session, so no result can come from an older build; set JAX_COMPILATION_CACHE_DIR
# to choose another (or an empty string to switch it off).
if runtime.CACHE_ENV not in os.environ:
  import atexit
  import shutil
  import tempfile

  _CACHE_DIR = tempfile.mkdtemp(prefix="parewire-jax-tests-xla-cache-")
  runtime.use_compilation_cache(_CACHE_DIR)
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)  # by the process that made it
