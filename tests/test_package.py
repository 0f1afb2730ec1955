"""The package surface: lazy public names, what static tools see, and the version."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import parewire_jax as pw
import parewire_jax.experiments as experiments

PACKAGES = [pw, experiments]


def _type_checking_names(package) -> dict[str, str]:
  """Name -> module of the ``if TYPE_CHECKING:`` re-exports in ``package/__init__.py``."""
  tree = ast.parse(pathlib.Path(package.__file__).read_text())
  block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
  names = {}
  for statement in block.body:
    assert isinstance(statement, ast.ImportFrom)
    for alias in statement.names:
      assert alias.asname == alias.name, "re-export as `X as X` so static tools see it as public"
      names[alias.name] = statement.module.removeprefix(f"{package.__name__}.")
  return names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_static_re_exports_match_the_lazy_table(package):
  assert _type_checking_names(package) == package._EXPORTS
  assert package.__all__ == sorted(package._EXPORTS)


@pytest.mark.parametrize(
  "package, name", [(p, n) for p in PACKAGES for n in p.__all__], ids=lambda x: getattr(x, "__name__", x)
)
def test_every_public_name_resolves_to_its_module(package, name):
  value = getattr(package, name)
  if hasattr(value, "__module__") and not isinstance(value, tuple):
    assert value.__module__ == f"{package.__name__}.{package._EXPORTS[name]}"
  else:  # a constant: defined in that module
    assert getattr(importlib.import_module(f"{package.__name__}.{package._EXPORTS[name]}"), name) is value


def test_importing_the_packages_does_not_import_jax():
  code = (
    "import sys, parewire_jax, parewire_jax.experiments, parewire_jax.experiments.settings; "
    "print('jax' in sys.modules, parewire_jax.__version__)"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
  assert out == ["False", pw.__version__]


def test_unknown_attribute_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    pw.nope  # noqa: B018


def test_submodules_resolve_as_attributes():
  assert pw.rewiring.rewire_stack is not None
  assert "rewired" in dir(pw)


def test_using_the_package_loads_no_optional_ecosystem():
  """The adapters are optional: rewiring loads neither Keras, Haiku, penzai nor transformers."""
  code = (
    "import sys, jax, jax.numpy as jnp, parewire_jax as pw; "
    "pw.rewire_params(jax.random.key(0), {'dense': {'kernel': jnp.ones((4, 3))}, 'mlp/~/l': {'w': jnp.ones((3, 2))}}); "
    "pw.rewired(jax.nn.initializers.he_normal())(jax.random.key(0), (4, 3)); "
    "print(sorted(m for m in ('keras', 'haiku', 'penzai', 'transformers', 'keras_hub', 'equimo', 'flaxmodels') "
    "if m in sys.modules or any(k.startswith(m + '.') for k in sys.modules)))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
  assert out == ["[]"]
  assert not set(pw.__all__) & {"keras_adapter", "haiku_adapter", "penzai_adapter"}


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
  """Lines of code of ``function``'s body: its docstring, blank lines and comment lines left out."""
  body = function.body
  if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
    body = body[1:]  # the docstring
  if not body:
    return 0
  lines = source[body[0].lineno - 1 : function.end_lineno]
  return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def test_no_function_of_the_experiments_layer_is_longer_than_60_lines():
  package = pathlib.Path(pw.__file__).parent
  files = [*sorted((package / "experiments").glob("*.py")), package / "__main__.py"]
  too_long = []
  for path in files:
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        lines = _code_lines(node, source.splitlines())
        if lines > 60:
          too_long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
  assert len(files) > 20 and too_long == []
  # what is counted: code, not the docstring, blank lines or comments
  source = 'def f():\n  """Doc.\n\n  More."""\n  # why\n' + "  x = 1\n\n" * 61
  assert _code_lines(ast.parse(source).body[0], source.splitlines()) == 61  # pyright: ignore[reportArgumentType]
