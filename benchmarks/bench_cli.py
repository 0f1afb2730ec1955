"""How fast the command line refuses a bad call: the settings-derived argparse parser against ``tyro``.

The experiments' options are derived from the settings records
(:mod:`parewire_jax.experiments.settings`). ``tyro`` derives a command line
from typed dataclasses too, so it was evaluated for the job. Each candidate
parses ``compare --seeds 1`` and refuses it with exit status 2 (the check
needs no JAX); every timing is a fresh Python process, interleaved, median of
``--repeats``. tyro is optional (``pip install tyro``): without it only the
project's parser is timed.

  python benchmarks/bench_cli.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

TYRO = """
import sys, tyro
from parewire_jax.experiments.settings import CompareSettings
settings = tyro.cli(CompareSettings, args=sys.argv[1:], config=(tyro.conf.OmitArgPrefixes,))
try:
  settings.check()
except ValueError as error:
  sys.exit(f"error: {error}")  # exit status 1 from sys.exit(str); the time is what matters
"""

CANDIDATES = {
  "python -m parewire_jax compare --seeds 1 (argparse from the records)": [
    sys.executable,
    "-m",
    "parewire_jax",
    "compare",
    "--seeds",
    "1",
  ],
  "tyro.cli(CompareSettings) with --seeds 1": [sys.executable, "-c", TYRO, "--seeds", "1"],
  "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args()
  candidates = dict(CANDIDATES)
  if importlib.util.find_spec("tyro") is None:
    del candidates["tyro.cli(CompareSettings) with --seeds 1"]
  times: dict[str, list[float]] = {name: [] for name in candidates}
  for _ in range(args.repeats):
    for name, command in candidates.items():
      started = time.perf_counter()
      done = subprocess.run(command, capture_output=True, text=True)
      times[name].append(time.perf_counter() - started)
      if "pass" not in command and "seeds must be an int >= 2" not in done.stderr:
        raise SystemExit(f"{name} did not refuse the call: {done.stderr[-500:]}")
  print(f"| command | median wall time, {args.repeats} fresh processes |")
  print("|---|---|")
  for name, values in times.items():
    print(f"| {name} | {statistics.median(values) * 1000:.0f} ms |")


if __name__ == "__main__":
  main()
