"""The notebooks in notebooks/ run top to bottom and are committed with real outputs.

Every ``notebooks/*.ipynb`` is found at collection time, so a new notebook is
tested without touching this file. Each is executed in a fresh ``python3``
kernel with nbclient in quick mode (``PAREWIRE_QUICK=1``, what CI can afford on
2 CPU cores), with the working tree's ``parewire_jax`` first on the kernel's
path and notebooks/ as the working directory; any cell that raises fails the
test. Test dependencies: nbclient, nbformat, ipykernel (for the kernel), and
IPython (which ipykernel brings) to read the install cell.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# Per-cell limit in quick mode. A notebook's quick run should take about a
# minute on 2 CPU cores; the limit is generous so a busy CI machine does not
# fail it, while a notebook stuck in a loop or run in full mode still does.
CELL_TIMEOUT_S = 300
# conftest.py asks XLA for 8 virtual CPU devices (for the sharding tests); a
# notebook should see the runtime a user gets, so its kernel does not inherit it.
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S+")


def _read(path: Path) -> nbformat.NotebookNode:
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  return nb


def _code_cells(nb) -> list:
  return [cell for cell in nb.cells if cell.cell_type == "code"]


def _kernel_env() -> dict[str, str]:
  env = dict(os.environ)
  env["PAREWIRE_QUICK"] = "1"
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
  flags = _DEVICE_COUNT_FLAG.sub("", env.get("XLA_FLAGS", "")).strip()
  if flags:
    env["XLA_FLAGS"] = flags
  else:
    env.pop("XLA_FLAGS", None)
  return env


def _install_cell_problems(source: str) -> list[str]:
  """What is wrong with ``source`` as the install cell ([] if nothing).

  The cell must assign a ``git+`` URL to ``PAREWIRE_SOURCE`` and then be
  ``try: import parewire_jax`` / ``except ImportError: %pip install ...``
  installing ``parewire-jax[experiments] @ {PAREWIRE_SOURCE}`` (the notebooks
  use Flax, SciPy and Matplotlib). IPython's own transformer
  turns the ``%pip`` magic into Python first, so the check reads the cell the
  way the kernel runs it.
  """
  module = ast.parse(TransformerManager().transform_cell(source))
  assigns = {
    target.id: node.value
    for node in module.body
    if isinstance(node, ast.Assign)
    for target in node.targets
    if isinstance(target, ast.Name)
  }
  problems = []
  url = assigns.get("PAREWIRE_SOURCE")
  if not (isinstance(url, ast.Constant) and isinstance(url.value, str) and url.value.startswith("git+")):
    problems.append('no PAREWIRE_SOURCE = "git+..." assignment')
  tries = [node for node in module.body if isinstance(node, ast.Try)]
  if len(tries) != 1:
    return problems + [f"expected one try/except statement, found {len(tries)}"]
  (attempt,) = tries
  if not (
    len(attempt.body) == 1
    and isinstance(attempt.body[0], ast.Import)
    and [alias.name for alias in attempt.body[0].names] == ["parewire_jax"]
  ):
    problems.append("the try block must be exactly `import parewire_jax`")
  handlers = attempt.handlers
  if not (len(handlers) == 1 and isinstance(handlers[0].type, ast.Name) and handlers[0].type.id == "ImportError"):
    return problems + ["the try statement must have exactly one `except ImportError:`"]
  magic_calls = [
    call
    for call in ast.walk(ast.Module(body=handlers[0].body, type_ignores=[]))
    if isinstance(call, ast.Call)
    and isinstance(call.func, ast.Attribute)
    and call.func.attr == "run_line_magic"
    and call.args
    and isinstance(call.args[0], ast.Constant)
    and call.args[0].value == "pip"
  ]
  install_lines = [
    call.args[1].value
    for call in magic_calls
    if len(call.args) > 1 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str)
  ]
  if not any(
    re.search(r"install\b.*parewire-jax\[experiments\] @ \{PAREWIRE_SOURCE\}", line) for line in install_lines
  ):
    problems.append('the except branch must run `%pip install ... "parewire-jax[experiments] @ {PAREWIRE_SOURCE}"`')
  return problems


def test_notebooks_exist():
  assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize(
  "source, ok",
  [
    (
      'URL = "x"\nPAREWIRE_SOURCE = "git+https://example.org/r"\ntry:\n    import parewire_jax\n'
      'except ImportError:\n    %pip install -q "parewire-jax[experiments] @ {PAREWIRE_SOURCE}"',
      True,
    ),
    (
      'PAREWIRE_SOURCE = "git+https://example.org/r"\ntry:\n    import parewire_jax\n'
      'except ImportError:\n    %pip install -q "parewire-jax @ {PAREWIRE_SOURCE}"',
      False,
    ),
    ('PAREWIRE_SOURCE = "git+https://example.org/r"\n%pip install -q "parewire-jax @ {PAREWIRE_SOURCE}"', False),
    (
      'PAREWIRE_SOURCE = "git+https://example.org/r"\ntry:\n    import parewire_jax\nexcept ImportError:\n    pass',
      False,
    ),
    (
      'PAREWIRE_SOURCE = "https://example.org/r"\ntry:\n    import parewire_jax\n'
      'except ImportError:\n    %pip install -q "parewire-jax @ {PAREWIRE_SOURCE}"',
      False,
    ),
    (
      'PAREWIRE_SOURCE = "git+https://example.org/r"\ntry:\n    import numpy\n'
      'except ImportError:\n    %pip install -q "parewire-jax @ {PAREWIRE_SOURCE}"',
      False,
    ),
    (
      'PAREWIRE_SOURCE = "git+https://example.org/r"\ntry:\n    import parewire_jax\n'
      'except Exception:\n    %pip install -q "parewire-jax @ {PAREWIRE_SOURCE}"',
      False,
    ),
  ],
  ids=[
    "pattern",
    "without-the-experiments-extra",
    "no-try",
    "except-installs-nothing",
    "not-git-url",
    "imports-another-package",
    "catches-exception",
  ],
)
def test_install_cell_check(source, ok):
  """The install-cell check accepts the pattern and rejects near misses."""
  assert (_install_cell_problems(source) == []) == ok


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_install_cell(path):
  code = _code_cells(_read(path))
  assert code, f"{path.name} has no code cells"
  assert _install_cell_problems(code[0].source) == [], f"{path.name}: first code cell is not the install cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_of_a_full_run(path):
  """Committed as executed top to bottom in one fresh kernel, without errors."""
  nb = _read(path)
  code = _code_cells(nb)
  counts = [cell.execution_count for cell in code]
  assert counts == list(range(1, len(code) + 1)), (
    f"{path.name}: execution counts {counts}; commit it executed top to bottom in a fresh kernel"
  )
  outputs = [output for cell in code for output in cell.outputs]
  assert [o for o in outputs if o.output_type == "error"] == [], f"{path.name} is committed with an error output"
  assert any(o.output_type in ("display_data", "execute_result", "stream") for o in outputs), (
    f"{path.name} is committed without outputs"
  )
  first_markdown = next(cell for cell in nb.cells if cell.cell_type == "markdown")
  assert re.search(r"^\*\*Outputs:\*\*.*full mode", first_markdown.source, re.M), (
    f"{path.name}: the first markdown cell must say which run produced the outputs "
    "('**Outputs:** ... full mode ...', see notebooks/README.md)"
  )


# Executing a notebook takes 60-70 s of a CI core each (a kernel, imports, compiles), together a fifth of the
# suite, so the executions are marked slow: `pytest -m slow tests/test_notebooks.py` runs them (do so after
# changing a notebook or an API one uses). The static checks below run in every suite and cover every call a
# notebook makes into parewire_jax: the names exist and accept the keyword arguments it passes.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executes_in_quick_mode(path):
  nb = _read(path)
  client = NotebookClient(
    nb,
    timeout=CELL_TIMEOUT_S,
    kernel_name="python3",
    resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # the kernel's working directory
  )
  client.execute(env=_kernel_env())  # raises CellExecutionError naming the cell that failed
  install_outputs = _code_cells(nb)[0].outputs
  assert install_outputs == [], (
    f"{path.name}: the install cell printed {install_outputs}; its except branch must not run "
    "where parewire_jax is importable"
  )


def _names_used(path: Path) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, list[str]]]]:
  """A notebook's uses of parewire_jax, read statically.

  Returns its ``from parewire_jax... import name`` pairs, its ``pw.<name>``
  attributes, and every call of one of those names (or of ``pw.<name>``) with
  the keyword names it passes.
  """
  imports, attributes, calls = [], [], []
  modules = [ast.parse(TransformerManager().transform_cell(cell.source)) for cell in _code_cells(_read(path))]
  for module in modules:
    for node in ast.walk(module):
      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("parewire_jax"):
        imports += [(node.module, alias.asname or alias.name) for alias in node.names]
      elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pw":
        attributes.append(node.attr)
  imported = {name for _, name in imports}
  for module in modules:
    for node in ast.walk(module):
      if not isinstance(node, ast.Call):
        continue
      func = node.func
      if isinstance(func, ast.Name) and func.id in imported:
        name = func.id
      elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "pw":
        name = f"pw.{func.attr}"
      else:
        continue
      calls.append((name, [k.arg for k in node.keywords if k.arg is not None]))
  return imports, attributes, calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_names_the_notebook_uses_exist(path):
  """Every cell parses and every parewire_jax name a notebook imports or reads exists (cheap, without running it)."""
  import importlib

  import parewire_jax as pw

  imports, attributes, calls = _names_used(path)
  assert imports or attributes, f"{path.name} uses nothing from parewire_jax"
  objects = {}
  for module, name in imports:
    assert hasattr(importlib.import_module(module), name), f"{path.name}: from {module} import {name}"
    objects[name] = getattr(importlib.import_module(module), name)
  for name in attributes:
    assert hasattr(pw, name), f"{path.name}: pw.{name}"
    objects[f"pw.{name}"] = getattr(pw, name)
  for name, keywords in calls:
    try:
      signature = inspect.signature(objects[name])
    except (TypeError, ValueError):  # no introspectable signature
      continue
    try:
      signature.bind_partial(**dict.fromkeys(keywords))
    except TypeError as error:
      pytest.fail(f"{path.name}: {name}(...) with keywords {keywords}: {error}")
