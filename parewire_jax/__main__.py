"""Command line: ``python -m parewire_jax {compare,strength,laperm,atlas} ...``.

The commands are a table (:data:`COMMANDS`): each has its settings record
(:mod:`parewire_jax.experiments.settings`), its process options
(:mod:`parewire_jax.experiments.runtime`) and the function that runs it. Every
option, its help and its default come from those records, and every setting
that can be judged without data is checked before JAX is imported, so a bad
call is refused in a fraction of a second with exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from parewire_jax.experiments import runtime, settings as settings_lib
from parewire_jax.experiments.runtime import CacheOptions, OutputOptions, RunOptions
from parewire_jax.experiments.settings import Settings, setting


@dataclasses.dataclass(frozen=True)
class StrengthOptions(Settings):
  """``strength``'s process options: it trains nothing and reads no data."""

  output: OutputOptions = OutputOptions(out="runs/strength")
  cache: CacheOptions = CacheOptions()

  def check(self) -> None:
    if self.output.resume:
      raise ValueError("--resume: strength has nothing to resume.")
    self.output.check()


@dataclasses.dataclass(frozen=True)
class AtlasOptions(RunOptions):
  """``atlas``'s process options, and ``--list``."""

  list: bool = setting(False, "print the grid's cells and their settings, then exit")

  def check(self) -> None:
    if self.list:  # prints the grid, writes nothing
      self.cluster.check()
      return
    super().check()


class Command(NamedTuple):
  """One command: its help, its settings and options (their defaults), and what runs it."""

  help: str
  description: str
  settings: Settings
  options: Settings
  run: Callable[[Any, Any], None]


def _finished(start: float, out: str, notes: str = "") -> None:
  print(f"\nwall time {time.perf_counter() - start:.1f} s{notes}; outputs in {out}")


def _compare(settings: settings_lib.CompareSettings, options: RunOptions) -> None:
  from parewire_jax.experiments.compare import run_compare

  start = time.perf_counter()
  outcome = run_compare(settings, **_run_arguments(options), progress=True)
  print(outcome.table)
  resumed = sum(len(chunks) for chunks in outcome.resumed.values())
  notes = f"; training time {sum(outcome.train_seconds.values()):.1f} s" + (
    f" including {resumed} chunk(s) resumed from earlier runs" if resumed else ""
  )
  _finished(start, options.output.out, notes)


def _laperm(settings: settings_lib.LaPermSettings, options: RunOptions) -> None:
  from parewire_jax.experiments.laperm_demo import run_laperm

  start = time.perf_counter()
  outcome = run_laperm(settings, **_run_arguments(options), progress=True)
  print(outcome.table)
  resumed = sum(len(chunks) for chunks in outcome.resumed.values())
  _finished(start, options.output.out, f"; {resumed} chunk(s) resumed from earlier runs" if resumed else "")


def _run_arguments(options: RunOptions) -> dict[str, Any]:
  source, output = options.source, options.output
  return {"data_dir": source.data_dir, "download": source.download, "out_dir": output.out, "resume": output.resume}


def _strength(settings: settings_lib.StrengthSettings, options: StrengthOptions) -> None:
  from parewire_jax.experiments.kernel_strengths import run_strength

  print(run_strength(settings, out_dir=options.output.out).table)
  print(f"\noutputs in {options.output.out}")


def _atlas(settings: settings_lib.AtlasSettings, options: AtlasOptions) -> None:
  from parewire_jax.experiments.atlas import run_atlas
  from parewire_jax.experiments.atlas_grids import atlas_cells

  start = time.perf_counter()
  result = run_atlas(atlas_cells(settings), **_run_arguments(options), progress=True)
  print(result.table)
  reused = sum(cell.reused for cell in result.cells)
  _finished(start, options.output.out, f"; {reused} cell(s) reused from an earlier run" if reused else "")


def _list_cells(settings: settings_lib.AtlasSettings) -> None:
  from parewire_jax.experiments.atlas_grids import atlas_cells

  for cell in atlas_cells(settings):
    network, training = cell.settings.network, cell.settings.training
    hidden = f" {'x'.join(map(str, network.mlp_hidden))}" if network.model in ("mlp", "resmlp") else ""
    print(
      f"{cell.name:22} {cell.family:20} {cell.settings.data.dataset} {network.model}{hidden}, {network.init}, "
      f"norm {network.norm}, {cell.settings.optimizer}, {cell.settings.seeding.seeds} seeds, {training.epochs} epochs"
    )


COMMANDS = {
  "compare": Command(
    "train the base initializer and its variants from the same seeds (Tables 1-2)",
    "Trains --seeds models per variant (same seeds, same data order) and tests every variant against 'base' "
    "(Welch t-test, Kruskal-Wallis, Brown-Forsythe, paired t-test, Wilcoxon); writes results.json, table.md, the "
    "plots and the finished chunks of seeds to --out. The default is a CPU-sized demonstration; the paper's "
    "Table 1 is --model lenet --seeds 100 --epochs 100 --limit-train all --limit-eval all --variants base max_sv "
    "min_sv rewired (GPU).",
    settings_lib.CompareSettings(),
    RunOptions(output=OutputOptions(out="runs/compare")),
    _compare,
  ),
  "strength": Command(
    "strength statistics of one kernel shape before and after rewiring (Fig. 1)",
    "Draws --seeds kernels of --shape with --init, in every variant, and tabulates the variance, fourth central "
    "moment and largest magnitude of the input and output neuron strengths (mean over seeds, §3.2, Fig. 1b-c); "
    "writes strength.json, strength.md and a histogram plot to --out.",
    settings_lib.StrengthSettings(),
    StrengthOptions(),
    _strength,
  ),
  "laperm": Command(
    "LaPerm(Adam) vs Adam from the same seeds (Qiu & Suda 2020, section 5.1)",
    "Trains --seeds models with Adam and with LaPerm around Adam (same init seeds, same data order), tests them "
    "paired by seed, and checks that every evaluated LaPerm kernel column is a bit-exact permutation of its "
    "initial values; writes results.json, table.md, the plots and the finished chunks of seeds to --out. The "
    "default is the CNN comparison of the paper's section 5.1 sized for a CPU (LeNet on standardized MNIST, He "
    "uniform, batch 50, Adam 1e-3, k = 20, 4 seeds, 2 epochs; about 3.5 minutes on 2 cores); its fully "
    "connected network is --model mlp --mlp-hidden 100 100 --no-standardize.",
    settings_lib.LaPermSettings(),
    RunOptions(output=OutputOptions(out="runs/laperm")),
    _laperm,
  ),
  "atlas": Command(
    "where does rewiring help? base vs rewired over a grid of models (the effect atlas)",
    "Trains every cell of --grid (a model family member) from --seeds seeds with the base initializer and "
    "rewired (same seeds, same data order), and reports per cell the paired effect on epoch-1 and final "
    "validation accuracy and loss and the spread ratio over seeds, with confidence intervals and "
    "Benjamini-Hochberg-corrected tests; writes atlas.json, atlas.md, the heatmap atlas.png and each cell's "
    "compare outputs to --out. 'default' takes about half an hour on 2 CPU cores; 'paper' is a GPU job at the "
    "paper's scale.",
    settings_lib.AtlasSettings(),
    AtlasOptions(output=OutputOptions(out="runs/atlas")),
    _atlas,
  ),
}


def build_parser() -> argparse.ArgumentParser:
  """The parser: one subcommand per entry of :data:`COMMANDS`, one option per setting of its records."""
  parser = argparse.ArgumentParser(
    prog="python -m parewire_jax",
    description="PA weight rewiring experiments (Scabini, De Baets & Bruno, arXiv 2207.08148).",
  )
  subparsers = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
  for name, command in COMMANDS.items():
    subparser = subparsers.add_parser(name, help=command.help, description=command.description)
    settings_lib.add_arguments(subparser.add_argument_group("settings"), command.settings)
    settings_lib.add_arguments(subparser.add_argument_group("process"), command.options)
  return parser


def parse(command: Command, args: argparse.Namespace) -> tuple[Any, Any]:
  """The command's settings and options from ``args``, checked (ValueError names the first bad one); no JAX."""
  settings = settings_lib.from_arguments(command.settings, args)
  options = settings_lib.from_arguments(command.options, args)
  for record in (settings, options):
    check = getattr(record, "check", None)
    if check is not None:
      check()
  return settings, options


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; bad settings exit with status 2 and the reason, a missing dataset with 1."""
  parser = build_parser()
  args = parser.parse_args(argv)
  command = COMMANDS[args.command]

  def fail(status: int, message: object) -> None:
    parser.exit(status, f"{parser.prog} {args.command}: error: {message}\n")

  try:
    settings, options = parse(command, args)
  except ValueError as error:
    fail(2, error)
  if getattr(options, "list", False):
    _list_cells(settings)
    return 0
  runtime.start(options)
  from parewire_jax.experiments.data import MissingDatasetError

  try:
    command.run(settings, options)
  except ValueError as error:
    fail(2, error)
  except MissingDatasetError as error:
    fail(1, error.advice(command_line=True))
  except (OSError, ImportError) as error:  # a dataset that cannot be fetched, a missing optional package
    fail(1, error)
  return 0


if __name__ == "__main__":
  sys.exit(main())
