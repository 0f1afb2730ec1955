"""Shared test set-up (helpers shared by the test modules live in tests/helpers.py).

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
