"""Shared test set-up: 8 virtual CPU devices, quick XLA compiles and one compilation cache (helpers: tests/helpers.py).

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

# XLA:CPU's LLVM optimisation of the generated code takes most of each compile and buys nothing for the
# tiny arrays the tests run on: without it the suite takes about 40 % less time (two of the heaviest files
# went from 161 s to 92 s on the 2-core machine). It changes how fast the machine code is, not what it
# computes (XLA:CPU does no fast-math reassociation at any level), and every comparison a test makes is
# between results computed under the same flags. An explicit level in XLA_FLAGS wins, e.g.
# XLA_FLAGS=--xla_backend_optimization_level=3 to run the suite as users' programs are compiled.
_OPT_FLAG = "--xla_backend_optimization_level"
if _OPT_FLAG not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += f" {_OPT_FLAG}=0"

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
