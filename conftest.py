"""Root pytest set-up: the optional adapters' doctests need their ecosystems (the `zoo` extra).

``--doctest-modules`` imports every module under ``parewire_jax/``; an adapter
imports its ecosystem at the top, so it is left out of collection where that
is not installed (the default test command), and collected in the zoo step.
Keras reads its backend when first imported: the adapters and tests/zoo need
JAX's.
"""

import importlib.util
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

collect_ignore = [
  f"parewire_jax/{adapter}_adapter.py"
  for adapter in ("keras", "haiku", "penzai")
  if importlib.util.find_spec(adapter) is None
]
