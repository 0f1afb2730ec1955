"""Shared test set-up: 8 virtual CPU devices and one XLA compilation cache (helpers live in tests/helpers.py).

The sharding tests (tests/test_sharding.py) need 8 devices; on the CPU that
means XLA's virtual host devices, which must be requested before the first
JAX backend starts. pytest loads this file (an initial conftest of the
``tests`` testpath) before collecting any test module or doctest, so the flag
set here is in place when JAX first creates a backend. An explicit device
count already in ``XLA_FLAGS`` wins. If a backend started earlier anyway,
tests/test_sharding.py notices and reruns itself in a subprocess with the flag.
"""

import os

SHARDING_TEST_DEVICES = 8
_FLAG = "--xla_force_host_platform_device_count"

if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}={SHARDING_TEST_DEVICES}".strip()

# XLA compiles dominate the suite's time, and the CPU backend's optimization level 1 compiles in about half
# the time of the default (level 2): the tests check values and bits, which do not depend on it (the golden
# digests of tests/test_rewiring.py hold at both levels). `.ci/run`'s floors
# step keeps the default level, and PAREWIRE_TESTS_XLA_DEFAULT_OPT=1 keeps it for the whole suite.
# XLA:CPU's concurrency-optimized scheduler now and then deadlocks a program (see parewire_jax/__main__.py);
# a test run that hangs is worse than a slow one.
_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _SCHEDULER_FLAG not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += f" {_SCHEDULER_FLAG}=false"

_OPT_FLAG = "--xla_backend_optimization_level"
if _OPT_FLAG not in os.environ["XLA_FLAGS"] and not os.environ.get("PAREWIRE_TESTS_XLA_DEFAULT_OPT"):
  os.environ["XLA_FLAGS"] += f" {_OPT_FLAG}=1"

# One compilation cache for the whole session, shared by the pytest-xdist workers and the notebook kernels
# they start (all inherit this environment): many tests build the same computations anew (fresh closures,
# a fresh model per variant, the same tiny training runs), and XLA compiles dominate the suite's time. The
# cache is new for every session, so no result can come from an older build; set JAX_COMPILATION_CACHE_DIR
# to choose another (or an empty string to switch it off).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit
  import shutil
  import tempfile

  _CACHE_DIR = tempfile.mkdtemp(prefix="parewire-jax-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)  # by the process that made it
