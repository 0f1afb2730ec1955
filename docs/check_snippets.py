"""Runs the Python code blocks of the guides, so that the guides stay true to the code.

Usage: ``python docs/check_snippets.py [docs/guides/*.md ...]`` (default: every
guide). The ```` ```python ```` blocks of one page run in order in one namespace,
as a reader would paste them; each page gets a fresh namespace. A block whose
first line is ``# not run`` is skipped (none is, today); one whose first line is
``# needs: transformers keras_hub`` runs only where those modules are installed
(the recipes of ``docs/guides/zoo.md``: CI's ``zoo`` step runs them, with the
``zoo`` extra) and is reported as skipped elsewhere. Exits 1 naming the page,
the block's first line number and the error if a block raises.

Eight virtual CPU devices are set up before JAX is imported, for the sharding guide.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import sys
import time
import traceback

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # this checkout

BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def blocks(page: pathlib.Path) -> list[tuple[int, str]]:
  text = page.read_text()
  return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def run_page(page: pathlib.Path) -> bool:
  namespace: dict = {"__name__": f"snippets_{page.stem}"}
  started = time.perf_counter()
  found = blocks(page)
  skipped = 0
  for line, code in found:
    if code.startswith("# not run"):
      continue
    if code.startswith("# needs:"):
      needed = code.splitlines()[0].removeprefix("# needs:").split()
      if any(importlib.util.find_spec(module) is None for module in needed):
        skipped += 1
        continue
    try:
      exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102
    except Exception:  # noqa: BLE001
      print(f"FAIL {page.relative_to(DOCS.parent)}, block at line {line}:", file=sys.stderr)
      traceback.print_exc()
      return False
  ran = f"{len(found) - skipped} block(s)" + (f" ({skipped} skipped: modules not installed)" if skipped else "")
  print(f"ok   {page.relative_to(DOCS.parent)}: {ran} in {time.perf_counter() - started:.1f} s")
  return True


def main(argv: list[str]) -> int:
  pages = [pathlib.Path(p).resolve() for p in argv] or sorted((DOCS / "guides").glob("*.md"))
  results = [run_page(page) for page in pages]
  return 0 if all(results) else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
