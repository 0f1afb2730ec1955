"""The package surface: lazy public names, what static tools see, and the version."""

import ast
import pathlib
import subprocess
import sys

import pytest

import parewire_jax as pw

INIT = pathlib.Path(pw.__file__)


def _type_checking_names() -> dict[str, str]:
  """Name -> module of the ``if TYPE_CHECKING:`` re-exports in ``parewire_jax/__init__.py``."""
  tree = ast.parse(INIT.read_text())
  block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
  names = {}
  for statement in block.body:
    assert isinstance(statement, ast.ImportFrom)
    for alias in statement.names:
      assert alias.asname == alias.name, "re-export as `X as X` so static tools see it as public"
      names[alias.name] = statement.module.removeprefix("parewire_jax.")
  return names


def test_static_re_exports_match_the_lazy_table():
  assert _type_checking_names() == pw._EXPORTS
  assert pw.__all__ == sorted(pw._EXPORTS)


@pytest.mark.parametrize("name", pw.__all__)
def test_every_public_name_resolves_to_its_module(name):
  value = getattr(pw, name)
  assert value.__module__ == f"parewire_jax.{pw._EXPORTS[name]}"


def test_importing_the_package_does_not_import_jax():
  code = "import sys, parewire_jax; print('jax' in sys.modules, parewire_jax.__version__)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
  assert out == ["False", pw.__version__]


def test_unknown_attribute_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    pw.nope  # noqa: B018


def test_submodules_resolve_as_attributes():
  assert pw.rewiring.rewire_stack is not None
  assert "rewired" in dir(pw)
