"""Checks that .ci/floors.txt, pyproject.toml and the installed versions agree (run by `.ci/run floors`).

* every dependency of [project] has a floor pin in .ci/floors.txt;
* every `>=` bound on a pinned package, in the dependencies and in every extra, equals its pin;
* the running environment has exactly the pinned versions installed.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import sys

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
  import tomllib  # here, so that import sorting does not depend on ruff's target-version (3.10 lacks tomllib)

  pins = {}
  for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      name, version = line.split("==")
      pins[canonical(name)] = Version(version)
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  problems = []
  for req in map(Requirement, project["dependencies"]):
    if canonical(req.name) not in pins:
      problems.append(f"dependency {req.name} has no floor pin in .ci/floors.txt")
  extras = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
  for req in map(Requirement, project["dependencies"] + extras):
    pin = pins.get(canonical(req.name))
    for spec in req.specifier:
      if pin is not None and spec.operator == ">=" and Version(spec.version) != pin:
        problems.append(f"pyproject.toml says {req}, .ci/floors.txt pins {req.name}=={pin}")
  for name, pin in pins.items():
    installed = Version(importlib.metadata.version(name))
    if installed != pin:
      problems.append(f"{name} {installed} is installed, .ci/floors.txt pins {pin}")
  for problem in problems:
    print(f"check_floors: {problem}", file=sys.stderr)
  if not problems:
    print("check_floors: " + ", ".join(f"{name}=={pin}" for name, pin in pins.items()))
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
