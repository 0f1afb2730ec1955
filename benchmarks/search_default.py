"""The search behind the default of ``python -m parewire_jax compare``: candidate settings, timed end to end.

Each candidate is one run of the command line, base vs rewired, in a fresh
process (so the wall time includes start-up, data loading, compiling and the
plots, as a user sees it). For Table 1's epoch-1 training and validation
accuracy it reports the mean gain of rewired over base with its paired
t-test p-value, and the ratio of standard deviations (rewired / base) with
the Brown–Forsythe p-value of equal variances (§4.2: PA rewiring raises the
epoch-1 accuracy and shrinks its spread over seeds). The acceptance target is
a gain with paired p < 0.001 and a smaller spread with p < 0.05, in at most
three minutes of wall time on a 2-core CPU.

Usage (prints a markdown table; every finished run is also appended to
``--log`` as a JSON line, so an interrupted search keeps what it measured):

    python benchmarks/search_default.py --list
    python benchmarks/search_default.py lenet-10k-b128-s20 lenet-10k-b128-s20-raw
    python benchmarks/search_default.py --table   # the table of everything in --log

The machine is shared: the 1-minute load average before and after each run is
recorded next to its wall time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

# name -> command-line flags of `python -m parewire_jax compare` (explicit, so a change of the defaults keeps
# every candidate what it was). All use SGD, momentum 0.9, lr 0.01, cosine (§4.1) unless they say otherwise.
_LENET = ["--model", "lenet", "--epochs", "1", "--variants", "base", "rewired"]
CANDIDATES: dict[str, list[str]] = {
  # the former default: MLP 784-256-256-10 on all of MNIST, raw [0, 1] pixels
  "mlp-50k-b128-s40-raw": ["--model", "mlp", "--epochs", "1", "--seeds", "40", "--batch-size", "128",
                           "--limit-train", "all", "--limit-eval", "all", "--no-standardize"],
  "mlp-50k-b128-s40": ["--model", "mlp", "--epochs", "1", "--seeds", "40", "--batch-size", "128",
                       "--limit-train", "all", "--limit-eval", "all", "--standardize"],
  # LeNet, raw [0, 1] pixels
  "lenet-10k-b128-s20-raw": _LENET + ["--seeds", "20", "--batch-size", "128", "--limit-train", "10000",
                                     "--limit-eval", "2000", "--no-standardize"],
  "lenet-10k-b32-s20-raw": _LENET + ["--seeds", "20", "--batch-size", "32", "--limit-train", "10000",
                                    "--limit-eval", "2000", "--no-standardize"],
  # LeNet, standardized pixels
  "lenet-10k-b128-s20": _LENET + ["--seeds", "20", "--batch-size", "128", "--limit-train", "10000",
                                 "--limit-eval", "2000", "--standardize"],
  "lenet-10k-b128-s20-seeds20": _LENET + ["--seeds", "20", "--first-seed", "20", "--batch-size", "128",
                                         "--limit-train", "10000", "--limit-eval", "2000", "--standardize"],
  "lenet-10k-b128-s24": _LENET + ["--seeds", "24", "--batch-size", "128", "--limit-train", "10000",
                                 "--limit-eval", "2000", "--standardize"],
  "lenet-5k-b128-s30": _LENET + ["--seeds", "30", "--batch-size", "128", "--limit-train", "5000",
                                "--limit-eval", "2000", "--standardize"],
  "lenet-5k-b128-s30-seeds30": _LENET + ["--seeds", "30", "--first-seed", "30", "--batch-size", "128",
                                        "--limit-train", "5000", "--limit-eval", "2000", "--standardize"],
  "lenet-5k-b128-s30-raw": _LENET + ["--seeds", "30", "--batch-size", "128", "--limit-train", "5000",
                                    "--limit-eval", "2000", "--no-standardize"],
  "lenet-5k-b128-s30-eval10k": _LENET + ["--seeds", "30", "--batch-size", "128", "--limit-train", "5000",
                                        "--limit-eval", "all", "--standardize"],
  "lenet-5k-b32-s30": _LENET + ["--seeds", "30", "--batch-size", "32", "--limit-train", "5000",
                               "--limit-eval", "2000", "--standardize"],
  "lenet-20k-b128-s12": _LENET + ["--seeds", "12", "--batch-size", "128", "--limit-train", "20000",
                                 "--limit-eval", "2000", "--standardize"],
  "lenet-10k-b128-s20-eval10k": _LENET + ["--seeds", "20", "--batch-size", "128", "--limit-train", "10000",
                                         "--limit-eval", "all", "--standardize"],
  "lenet-50k-b128-s8": _LENET + ["--seeds", "8", "--batch-size", "128", "--limit-train", "all",
                                "--limit-eval", "2000", "--standardize"],
}  # fmt: skip

METRICS = {"epoch1_train_acc": "ep. 1 acc.", "epoch1_val_acc": "ep. 1 val. acc."}


def run(name: str, flags: list[str], out_root: pathlib.Path) -> dict:
  """One candidate in a fresh process; its wall time, load and Table 1 numbers."""
  out = out_root / name
  command = [sys.executable, "-m", "parewire_jax", "compare", *flags, "--out", str(out)]
  load_before = os.getloadavg()[0]
  started = time.perf_counter()
  completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  wall = time.perf_counter() - started
  if completed.returncode != 0:
    raise RuntimeError(f"{name} failed:\n{completed.stderr[-3000:]}")
  results = json.loads((out / "results.json").read_text())
  row = {
    "name": name,
    "command": "python -m parewire_jax compare " + " ".join(flags),
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "wall_s": wall,
    "load_before": load_before,
    "load_after": os.getloadavg()[0],
    "train_s": sum(results["train_seconds"].values()),
  }
  base, rewired = results["arms"]["base"], results["arms"]["rewired"]
  for metric in METRICS:
    b, r, tests = base["summary"][metric], rewired["summary"][metric], rewired["vs_reference"][metric]
    row[metric] = {
      "base": [b["mean"], b["std"]],
      "rewired": [r["mean"], r["std"]],
      "gain_pp": 100 * tests["mean_difference"],
      "paired_p": tests["paired_ttest"],
      "std_ratio": r["std"] / b["std"] if b["std"] else None,
      "levene_p": tests["levene"],
    }
  return row


def _p(p: float | None) -> str:
  return "n/a" if p is None else f"{p:.2g}"


def table(rows: list[dict]) -> str:
  header = "| setting | wall (s) | load | " + " | ".join(
    f"{label}: base → rewired | gain (paired p) | std ratio (Brown–Forsythe p)" for label in METRICS.values()
  )
  lines = [header + " |", "|" + "---|" * (3 + 3 * len(METRICS))]
  for row in rows:
    cells = [row["name"], f"{row['wall_s']:.0f}", f"{row['load_before']:.1f} → {row['load_after']:.1f}"]
    for metric in METRICS:
      m = row[metric]
      (base_mean, base_std), (rewired_mean, rewired_std) = m["base"], m["rewired"]
      cells += [
        f"{100 * base_mean:.2f} ± {100 * base_std:.2f} → {100 * rewired_mean:.2f} ± {100 * rewired_std:.2f}",
        f"{m['gain_pp']:+.2f} pp ({_p(m['paired_p'])})",
        f"{m['std_ratio']:.2f}× ({_p(m['levene_p'])})" if m["std_ratio"] is not None else "n/a",
      ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("names", nargs="*", help="candidates to run (see --list)")
  parser.add_argument("--list", action="store_true", help="print the candidates and their flags")
  parser.add_argument("--table", action="store_true", help="print the table of every run in --log")
  parser.add_argument("--log", default="runs/search_default.jsonl", help="JSON lines, one per finished run")
  parser.add_argument("--out", default="runs/search_default", help="directory for the runs' outputs")
  args = parser.parse_args()
  if args.list:
    for name, flags in CANDIDATES.items():
      print(f"{name}: {' '.join(flags)}")
    return
  unknown = [n for n in args.names if n not in CANDIDATES]
  if unknown:
    parser.error(f"unknown candidates {unknown}; see --list")
  log = REPO / args.log
  log.parent.mkdir(parents=True, exist_ok=True)
  rows = []
  for name in args.names:
    row = run(name, CANDIDATES[name], REPO / args.out)
    with log.open("a") as f:
      f.write(json.dumps(row) + "\n")
    rows.append(row)
    print(table([row]).splitlines()[-1], flush=True)
  if args.table:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
  if rows:
    print(f"\n# {os.cpu_count()} CPUs, {datetime.date.today()}\n")
    print(table(rows))


if __name__ == "__main__":
  main()
