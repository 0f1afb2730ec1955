"""Session setup shared by tests/ and the doctests in parewire_jax/.

The sharding tests (tests/test_sharding.py) need 8 devices; on the CPU that
means XLA's virtual host devices, which must be requested before the first
JAX backend starts. pytest imports this file before any test module or
doctest, so the flag set here is in place when JAX first creates a backend.
An explicit device count already in ``XLA_FLAGS`` wins. If a backend started
earlier anyway, tests/test_sharding.py notices and reruns itself in a
subprocess that has the flag.
"""

import os

SHARDING_TEST_DEVICES = 8
_FLAG = "--xla_force_host_platform_device_count"

if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}={SHARDING_TEST_DEVICES}".strip()
