"""The recipes of docs/guides/zoo.md run as written (every block, the ecosystems installed)."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.zoo, pytest.mark.xdist_group("resnet")]  # see .ci/run: step_zoo
ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("transformers", "keras", "keras_hub", "haiku", "equimo", "flaxmodels", "penzai")


def test_every_recipe_of_the_guide_runs(capsys):
  missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
  if missing:
    pytest.skip(f"not installed: {', '.join(missing)} (the zoo extra)")
  spec = importlib.util.spec_from_file_location("check_snippets", ROOT / "docs" / "check_snippets.py")
  assert spec and spec.loader
  check_snippets = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(check_snippets)
  page = ROOT / "docs" / "guides" / "zoo.md"
  assert check_snippets.run_page(page), capsys.readouterr().err
  out = capsys.readouterr().out
  assert "skipped" not in out, out  # every block ran
