"""Public names imported on first use (PEP 562), for the package ``__init__`` modules.

``python -m parewire_jax`` imports the package before it parses a single
argument; lazy public names let it refuse bad arguments without first
spending seconds importing JAX.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
  """``(__getattr__, __dir__, __all__)`` for ``package`` whose public name ``n`` lives in ``package.exports[n]``.

  Other attributes resolve to submodules (``parewire_jax.rewiring``). A
  resolved name is stored in the package, so later lookups are plain.
  """
  namespace = importlib.import_module(package).__dict__

  def __getattr__(name: str) -> Any:
    if name in exports:
      value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
    else:
      try:
        value = importlib.import_module(f"{package}.{name}")
      except ModuleNotFoundError as error:
        if error.name != f"{package}.{name}":
          raise  # the submodule exists but needs something missing: say what
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    namespace[name] = value
    return value

  def __dir__() -> list[str]:
    return sorted(set(namespace) | set(exports))

  return __getattr__, __dir__, sorted(exports)
