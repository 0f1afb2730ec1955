"""Table 1 and Table 2 (MNIST) of the paper beside the runs of benchmarks/paper/run.sh.

Reads each run's per-seed numbers from its ``results.json`` or, for a run still going, from its saved chunks
(``<run>/chunks/*.npz``, every finished chunk of seeds), and prints the paper's epoch-1 columns beside ours:

- "ep. 1 acc. (steps)": the training accuracy seen by the first epoch's steps, the mean over its batches;
- "ep. 1 acc. (end)": the model after the first epoch, evaluated on the first 10 000 training images;
- "ep. 1 val. acc.": the model after the first epoch on the 10 000 validation images.

The paper's Table 1 "epoch 1 acc." is one of the first two (§4 does not say which); its "epoch 1 val. acc." is
the third. Then, per variant, the paired comparison with the base (same seeds): the mean difference and the
paired t-test, and the spread over seeds (std ratio, Brown–Forsythe test), as ``compare`` reports them.

  python benchmarks/paper/tables.py [RUN ...]     # default: every run of runs.txt that has results
  python benchmarks/paper/tables.py --summary     # one line per variant of every run (the README's table)
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from parewire_jax.experiments.stats import compare

HERE = pathlib.Path(__file__).resolve().parent

# The paper's MNIST rows (arXiv 2207.08148, Tables 1 and 2): epoch 1 acc., epoch 1 val. acc. (mean ± std, 100
# seeds). Table 1 is Kaiming-normal; Table 2 repeats it and adds three initializers, base vs PA rewiring.
PAPER = {
  "kaiming_normal": {
    "base": ("95.93 ± 2.31", "95.54 ± 2.26"),
    "max_sv": ("94.67 ± 2.68", "94.35 ± 2.64"),
    "min_sv": ("96.93 ± 0.61", "96.53 ± 0.62"),
    "rewired": ("97.37 ± 0.31", "96.85 ± 0.32"),
  },
  "kaiming_uniform": {"base": ("96.25 ± 1.44", "95.86 ± 1.42"), "rewired": ("97.36 ± 0.31", "96.84 ± 0.35")},
  "truncated_normal": {"base": ("96.18 ± 1.67", "95.81 ± 1.65"), "rewired": ("97.34 ± 0.32", "96.81 ± 0.33")},
  "orthogonal": {"base": ("97.08 ± 0.41", "96.74 ± 0.44"), "rewired": ("97.13 ± 0.40", "96.72 ± 0.42")},
}
# The paper's table order; a run lists its variants in the order it trains them.
ORDER = ("base", "max_sv", "min_sv", "rewired")
COLUMNS = {
  "steps": "ep. 1 acc. (steps)",
  "end": "ep. 1 acc. (end)",
  "val": "ep. 1 val. acc.",
}


def runs() -> dict[str, list[str]]:
  """runs.txt: run name -> its own arguments (after the common ones)."""
  lines = [line.split() for line in (HERE / "runs.txt").read_text().splitlines() if line and line[0] != "#"]
  return {name: args for name, *args in lines if name != "common"}


def _init_of(name: str) -> str:
  args = runs()[name]
  return args[args.index("--init") + 1]


def per_seed(run: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
  """Variant -> column of :data:`COLUMNS` (and ``seeds``) -> per-seed epoch-1 values in percent, seeds in order."""
  results = run / "results.json"
  if results.exists():
    arms = json.loads(results.read_text())["arms"]
    return {
      variant: {
        "seeds": np.asarray(arm["per_seed"]["seeds"]),
        "steps": 100 * np.asarray(arm["curves"]["train_acc"], np.float64)[:, 0],
        "end": 100 * np.asarray(arm["records"]["train_eval_acc"], np.float64)[:, 0],
        "val": 100 * np.asarray(arm["curves"]["val_acc"], np.float64)[:, 0],
      }
      for variant, arm in arms.items()
    }
  found: dict[str, list[dict[str, np.ndarray]]] = {}
  for path in sorted((run / "chunks").glob("*.npz")):
    variant = path.name.split("_seeds_")[0]
    with np.load(path) as chunk:
      found.setdefault(variant, []).append(
        {
          "seeds": chunk["seeds"],
          "steps": 100 * chunk["train_acc"][:, 0].astype(np.float64),
          "end": 100 * chunk["record:train_eval_acc"][:, 0].astype(np.float64),
          "val": 100 * chunk["val_acc"][:, 0].astype(np.float64),
        }
      )
  joined = {}
  for variant, chunks in found.items():
    chunks.sort(key=lambda c: int(c["seeds"][0]))
    joined[variant] = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
  return joined


def _mean_std(x: np.ndarray) -> str:
  return f"{x.mean():.2f} ± {x.std(ddof=1):.2f}"


def table(name: str) -> str:
  """The markdown of run ``name``: our epoch-1 columns beside the paper's, then the paired tests against base."""
  data = per_seed(HERE / name)
  if "base" not in data:
    return f"{name}: no finished chunk of the base variant yet."
  paper = PAPER[_init_of(name)]
  variants = [v for v in ORDER if v in data]
  headers = ["weights", "seeds", *COLUMNS.values(), "paper: epoch 1 acc.", "paper: epoch 1 val. acc."]
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for variant in variants:
    cells = [variant, str(len(data[variant]["seeds"]))]
    cells += [_mean_std(data[variant][column]) for column in COLUMNS]
    cells += list(paper.get(variant, ("", "")))
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "| weights | column | seeds | mean difference | paired t-test | std ratio (Brown–Forsythe) |"]
  lines.append("|---|---|---|---|---|---|")
  for variant in variants[1:]:
    for column, header in COLUMNS.items():
      paired = _paired(data["base"], data[variant], column)
      if paired is None:
        break
      seeds, c, ratio = paired
      lines.append(
        f"| {variant} | {header} | {seeds} | {c.mean_difference:+.2f} pp | p={c.paired_ttest:.3g} | "
        f"{ratio:.2f}× (p={c.levene:.3g}) |"
      )
  return f"{name} ({_init_of(name)}):\n\n" + "\n".join(lines)


def _paired(base: dict[str, np.ndarray], ours: dict[str, np.ndarray], column: str):
  """``column`` of ``ours`` against base on the seeds both have: (how many, ``compare``'s tests, std ratio), or
  None with fewer than two."""
  common = np.intersect1d(base["seeds"], ours["seeds"])
  if len(common) < 2:
    return None
  b, v = base[column][np.isin(base["seeds"], common)], ours[column][np.isin(ours["seeds"], common)]
  return len(common), compare(b, v), v.std(ddof=1) / b.std(ddof=1)


def summary(names: list[str]) -> str:
  """One row per variant of each run: end-of-epoch and validation accuracy beside the paper's, and the paired
  validation comparison with base (mean difference, paired t-test; std ratio, Brown–Forsythe test)."""
  headers = ["run", "weights", "seeds", "ep. 1 acc. (end)", "ep. 1 val. acc.", "paper: ep. 1 acc. / val. acc.",
             "val. − base (paired t)", "val. std ÷ base (B–F)"]  # fmt: skip
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for name in names:
    data, paper = per_seed(HERE / name), PAPER[_init_of(name)]
    for variant in (v for v in ORDER if v in data):
      ours = data[variant]
      cells = [f"{name} ({_init_of(name)})", variant, str(len(ours["seeds"])), _mean_std(ours["end"]),
               _mean_std(ours["val"]), " / ".join(paper.get(variant, ("", "")))]  # fmt: skip
      paired = None if variant == "base" else _paired(data["base"], ours, "val")
      if paired is None:
        cells += ["", ""]
      else:
        _, c, ratio = paired
        cells += [f"{c.mean_difference:+.2f} pp (p={c.paired_ttest:.2g})", f"{ratio:.2f}× (p={c.levene:.2g})"]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def training_minutes(name: str) -> float:
  """The training time of run ``name`` summed over its saved chunks (every session's; compiling included)."""
  return sum(float(np.load(path)["seconds"]) for path in (HERE / name / "chunks").glob("*.npz")) / 60


def main(argv: list[str]) -> None:
  names = [a for a in argv if a != "--summary"] or [
    n for n in runs() if (HERE / n / "results.json").exists() or (HERE / n / "chunks").is_dir()
  ]
  if "--summary" in argv:
    print(summary(names))
    return
  for name in names:
    print(table(name) + "\n")


if __name__ == "__main__":
  main(sys.argv[1:])
