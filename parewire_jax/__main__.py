"""Command line: ``python -m parewire_jax {compare,strength,laperm} ...``.

Argument parsing and checking only; the work lives in
:mod:`parewire_jax.experiments`. Arguments are parsed and every setting that
can be judged without data is checked (with
:mod:`parewire_jax.experiments.settings`) before JAX is imported, so a bad
call is refused in a fraction of a second with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from parewire_jax._checks import check_int
from parewire_jax.experiments import atlas_grids, settings


def _count_or_all(text: str) -> int | None:
  """A ``--limit-*`` value: a count, or ``all`` (``None``: no limit)."""
  if text == "all":
    return None
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None


def _add_device_arguments(parser: argparse.ArgumentParser, devices: int | None) -> None:
  """The options that spread the seeds over devices and hosts: ``--devices`` and ``--distributed`` with its own."""
  parser.add_argument(
    "--devices",
    type=int,
    default=devices,
    metavar="N",
    help="shard every chunk's seeds over the first N devices of jax.devices(), each training its own seeds "
    "(default: all devices, of every process with --distributed)",
  )
  parser.add_argument(
    "--distributed",
    action="store_true",
    help="one process of a multi-host run: call jax.distributed.initialize first; every process runs the same "
    "command, process 0 writes the outputs (default: off)",
  )
  parser.add_argument(
    "--coordinator-address",
    default=None,
    metavar="HOST:PORT",
    help="with --distributed: process 0's address (default: detected from the cluster environment)",
  )
  parser.add_argument(
    "--num-processes",
    type=int,
    default=None,
    metavar="N",
    help="with --distributed: the number of processes (default: detected from the cluster environment)",
  )
  parser.add_argument(
    "--process-id",
    type=int,
    default=None,
    metavar="I",
    help="with --distributed: this process's index, 0 to N-1 (default: detected from the cluster environment)",
  )


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
  """Where the datasets are: ``--data-dir`` and ``--no-download``."""
  parser.add_argument(
    "--data-dir",
    default=None,
    help="directory holding <dataset>/ with its files (default: $PAREWIRE_DATA or ~/.cache/parewire_jax)",
  )
  parser.add_argument(
    "--no-download",
    action="store_true",
    help="fail instead of downloading a missing dataset (default: download it)",
  )


def _add_run_arguments(
  parser: argparse.ArgumentParser, defaults: settings.CompareConfig | settings.LaPermConfig, *, what: str
) -> None:
  """The options shared by ``compare`` and ``laperm``: data, model, seeds, schedule length, chunking."""
  parser.add_argument(
    "--dataset", default=defaults.dataset, choices=settings.DATASETS, help="training data (default: %(default)s)"
  )
  parser.add_argument(
    "--model", default=defaults.model, choices=settings.MODELS, help="network to train (default: %(default)s)"
  )
  parser.add_argument(
    "--init",
    default=defaults.init,
    choices=settings.INITIALIZERS,
    help="base initializer of every kernel (default: %(default)s)",
  )
  parser.add_argument(
    "--seeds", type=int, default=defaults.seeds, help=f"init seeds per {what}, at least 2 (default: %(default)s)"
  )
  parser.add_argument(
    "--first-seed",
    type=int,
    default=defaults.first_seed,
    help="the seeds are first-seed, +1, ... (default: %(default)s)",
  )
  parser.add_argument(
    "--epochs", type=int, default=defaults.epochs, help="epochs of the cosine schedule (default: %(default)s)"
  )
  parser.add_argument(
    "--batch-size", type=int, default=defaults.batch_size, help="training batch (default: %(default)s)"
  )
  parser.add_argument(
    "--limit-train",
    type=_count_or_all,
    default=defaults.limit_train,
    metavar="N",
    help="train on the first N training examples only, or all of them (default: %(default)s)",
  )
  parser.add_argument(
    "--data-seed",
    type=int,
    default=defaults.data_seed,
    help="seed of the data order, shared by all models (default: %(default)s)",
  )
  parser.add_argument(
    "--seeds-per-chunk",
    type=int,
    default=defaults.seeds_per_chunk,
    metavar="N",
    help="train N seeds at once, the next N after them (bounds memory) (default: all at once)",
  )
  parser.add_argument(
    "--seeds-per-vmap",
    type=int,
    default=defaults.seeds_per_vmap,
    metavar="N",
    help="within a chunk, vectorize N seeds together (default: the whole chunk)",
  )
  _add_device_arguments(parser, defaults.devices)
  _add_data_arguments(parser)
  parser.add_argument(
    "--mlp-hidden",
    type=int,
    nargs="+",
    default=list(defaults.mlp_hidden),
    help="hidden widths of --model mlp; for --model resmlp one width per residual block (default: %(default)s)",
  )
  _add_cache_argument(parser)


_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def _add_cache_argument(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
    "--compilation-cache",
    default=None,
    metavar="DIR",
    help=f"keep XLA's compiled programs in DIR and reuse them: the variants of a run share theirs, and a "
    f"repeated run compiles nothing; 'off' to disable (default: ${_CACHE_ENV} if set, else "
    "~/.cache/parewire_jax/xla)",
  )


def _use_compilation_cache(choice: str | None) -> None:
  """Points JAX's persistent compilation cache at ``choice`` (see ``--compilation-cache``).

  A cached program is the one XLA compiled for the same computation, so
  results are the same bits as without the cache.
  """
  import os
  import pathlib

  if choice == "off":
    return
  directory = choice or os.environ.get(_CACHE_ENV) or str(pathlib.Path.home() / ".cache" / "parewire_jax" / "xla")
  import jax

  jax.config.update("jax_compilation_cache_dir", directory)
  # Cache every program: the variants' training steps are the programs that take longest to compile, and a
  # cached one loads in a fraction of its compile time.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="python -m parewire_jax",
    description="PA weight rewiring experiments (Scabini, De Baets & Bruno, arXiv 2207.08148).",
  )
  commands = parser.add_subparsers(dest="command", required=True, metavar="{compare,strength,laperm,atlas}")

  d = settings.CompareConfig()
  c = commands.add_parser(
    "compare",
    help="train the base initializer and its variants from the same seeds (Tables 1-2)",
    description="Trains --seeds models per variant (same seeds, same data order) and tests every variant "
    "against 'base' (Welch t-test, Kruskal-Wallis, Brown-Forsythe, paired t-test, Wilcoxon). The default is a "
    "CPU-sized demonstration; the paper's Table 1 is --model lenet --seeds 100 --epochs 100 "
    "--variants base max_sv min_sv rewired (GPU).",
  )
  _add_run_arguments(c, d, what="variant")
  c.add_argument(
    "--variants",
    nargs="+",
    default=list(d.variants),
    choices=settings.VARIANTS,
    help="initializer variants to train, base among them (default: %(default)s)",
  )
  c.add_argument(
    "--lr",
    type=float,
    default=d.learning_rate,
    help="initial learning rate of the cosine schedule (default: %(default)s)",
  )
  c.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (default: %(default)s)")
  c.add_argument(
    "--optimizer",
    default=d.optimizer,
    choices=settings.COMPARE_OPTIMIZERS,
    help="optimizer of every variant, with the cosine schedule of --lr (default: %(default)s)",
  )
  c.add_argument(
    "--norm",
    default=d.norm,
    choices=settings.NORMS,
    help="normalisation layers: batch or layer for --model lenet, layer for --model resmlp (default: %(default)s)",
  )
  c.add_argument(
    "--limit-eval",
    type=_count_or_all,
    default=d.limit_eval,
    metavar="N",
    help="evaluate on the first N validation and N test examples only, or all of them (default: %(default)s)",
  )
  c.add_argument(
    "--standardize",
    action=argparse.BooleanOptionalAction,
    default=d.standardize,
    help="standardize images per channel with the mean and std of the whole training split; token sequences "
    "(--dataset pointer) are never standardized (default: %(default)s)",
  )
  c.add_argument(
    "--num-draws", type=int, default=d.num_draws, help="candidates of the min_sv/max_sv searches (default: %(default)s)"
  )
  c.add_argument("--student", action="store_true", help="Student's instead of Welch's t-test (default: Welch's)")
  c.add_argument("--gradients", action="store_true", help="record the mean |gradient| per layer, Fig. 5 (default: off)")
  c.add_argument(
    "--out",
    default="runs/compare",
    help="directory for results.json, table.md, the plots and the finished chunks of seeds (default: %(default)s)",
  )
  c.add_argument(
    "--resume",
    action="store_true",
    help="reuse the chunks of seeds an interrupted run with the same settings saved in --out (default: off)",
  )

  s = commands.add_parser(
    "strength",
    help="strength statistics of one kernel shape before and after rewiring (Fig. 1)",
    description="Draws --seeds kernels of --shape with --init, in every variant, and tabulates the variance, fourth "
    "central moment and largest magnitude of the input and output neuron strengths (mean over seeds, §3.2, "
    "Fig. 1b-c); writes strength.json, strength.md and a histogram plot to --out.",
  )
  s.add_argument(
    "--init",
    default="kaiming_normal",
    choices=settings.INITIALIZERS,
    help="base initializer of the kernel (default: %(default)s)",
  )
  s.add_argument(
    "--shape",
    type=int,
    nargs="+",
    default=[1024, 1024],
    help="kernel shape; the last axis holds the outputs (default: %(default)s)",
  )
  s.add_argument("--seeds", type=int, default=10, help="kernels drawn per variant (default: %(default)s)")
  s.add_argument(
    "--variants",
    nargs="+",
    default=["base", "rewired"],
    choices=settings.VARIANTS,
    help="initializer variants to compare (default: %(default)s)",
  )
  s.add_argument(
    "--num-draws", type=int, default=100, help="candidates of the min_sv/max_sv searches (default: %(default)s)"
  )
  s.add_argument("--out", default="runs/strength", help="directory for the table and plot (default: %(default)s)")
  _add_cache_argument(s)

  lp = settings.LaPermConfig()
  la = commands.add_parser(
    "laperm",
    help="LaPerm(Adam) vs Adam from the same seeds (Qiu & Suda 2020, section 5.1)",
    description="Trains --seeds models with Adam and with LaPerm around Adam (same init seeds, same data order), "
    "tests them paired by seed, and checks that every evaluated LaPerm kernel column is a bit-exact "
    "permutation of its initial values. The default is a CPU-sized demonstration following the "
    "paper's MNIST settings (2x100 MLP, He uniform, batch 50, Adam 1e-3, k = 20).",
  )
  _add_run_arguments(la, lp, what="optimizer")
  la.add_argument(
    "--lr",
    type=float,
    default=lp.learning_rate,
    help="initial learning rate of Adam's cosine schedule, also inside LaPerm (default: %(default)s)",
  )
  la.add_argument(
    "--sync-period", type=int, default=lp.sync_period, help="LaPerm's sync period k in steps (default: %(default)s)"
  )
  la.add_argument(
    "--out", default="runs/laperm", help="directory for results.json, table.md and the plots (default: %(default)s)"
  )
  a = commands.add_parser(
    "atlas",
    help="where does rewiring help? base vs rewired over a grid of models (the effect atlas)",
    description="Trains every cell of --grid (a model family member) from --seeds seeds with the base initializer "
    "and rewired (same seeds, same data order), and reports per cell the paired effect on epoch-1 and final "
    "validation accuracy and loss and the spread ratio over seeds, with confidence intervals and "
    "Benjamini-Hochberg-corrected tests; writes atlas.json, atlas.md and the heatmap atlas.png to --out. "
    "'default' takes about half an hour on 2 CPU cores; 'paper' is a GPU job at the paper's scale.",
  )
  a.add_argument(
    "--grid", default="default", choices=atlas_grids.GRIDS, help="the grid of cells (default: %(default)s)"
  )
  a.add_argument(
    "--seeds", type=int, default=None, help="init seeds per cell, at least 3 (default: the grid's, 20 for 'default')"
  )
  a.add_argument(
    "--cells", nargs="+", default=None, metavar="NAME", help="run only these cells of the grid (default: all)"
  )
  a.add_argument(
    "--list", action="store_true", help="print the grid's cells and their settings, then exit (default: off)"
  )
  a.add_argument(
    "--out", default="runs/atlas", help="directory for the atlas and each cell's compare outputs (default: %(default)s)"
  )
  a.add_argument(
    "--resume",
    action="store_true",
    help="reuse the cells an interrupted run finished in --out, and the saved chunks of an unfinished one "
    "(default: off)",
  )
  _add_device_arguments(a, None)
  _add_data_arguments(a)
  _add_cache_argument(a)
  return parser


def _compare_config(args: argparse.Namespace) -> settings.CompareConfig:
  return settings.CompareConfig(
    dataset=args.dataset,
    model=args.model,
    init=args.init,
    variants=tuple(args.variants),
    seeds=args.seeds,
    first_seed=args.first_seed,
    epochs=args.epochs,
    batch_size=args.batch_size,
    learning_rate=args.lr,
    momentum=args.momentum,
    limit_train=args.limit_train,
    limit_eval=args.limit_eval,
    standardize=args.standardize,
    data_seed=args.data_seed,
    seeds_per_chunk=args.seeds_per_chunk,
    seeds_per_vmap=args.seeds_per_vmap,
    num_draws=args.num_draws,
    mlp_hidden=tuple(args.mlp_hidden),
    equal_var=args.student,
    track_gradients=args.gradients,
    norm=args.norm,
    optimizer=args.optimizer,
    devices=args.devices,
  )


def _laperm_config(args: argparse.Namespace) -> settings.LaPermConfig:
  return settings.LaPermConfig(
    dataset=args.dataset,
    model=args.model,
    init=args.init,
    seeds=args.seeds,
    first_seed=args.first_seed,
    epochs=args.epochs,
    batch_size=args.batch_size,
    learning_rate=args.lr,
    sync_period=args.sync_period,
    limit_train=args.limit_train,
    data_seed=args.data_seed,
    seeds_per_chunk=args.seeds_per_chunk,
    seeds_per_vmap=args.seeds_per_vmap,
    mlp_hidden=tuple(args.mlp_hidden),
    devices=args.devices,
  )


def _check(
  args: argparse.Namespace,
) -> settings.CompareConfig | settings.LaPermConfig | list[atlas_grids.AtlasCell] | None:
  """Every check that needs no data and no JAX; returns the run's configuration (an atlas: its cells)."""
  if args.command == "atlas":
    cells = atlas_grids.atlas_grid(args.grid, seeds=args.seeds, cells=args.cells)
    cells = [cell._replace(config=cell.config._replace(devices=args.devices)) for cell in cells]
    atlas_grids.check_atlas_cells(cells)
    _check_distributed(args)
    return cells
  if args.command == "strength":
    settings.check_strength_settings(args.init, args.shape, args.seeds, args.variants, args.num_draws)
    return None
  if args.command == "compare":
    config = _compare_config(args)
    settings.check_compare_config(config)
    if args.resume and not args.out:
      raise ValueError("--resume needs --out, the directory whose chunks/ an earlier run saved.")
  else:
    config = _laperm_config(args)
    settings.check_laperm_config(config)
  settings.check_batch_size(config.batch_size, settings.train_size(config.dataset, config.limit_train))
  _check_distributed(args)
  return config


# The options that only --distributed reads: destination -> option.
_DISTRIBUTED_OPTIONS = {
  "coordinator_address": "--coordinator-address",
  "num_processes": "--num-processes",
  "process_id": "--process-id",
}


def _check_distributed(args: argparse.Namespace) -> None:
  given = [option for dest, option in _DISTRIBUTED_OPTIONS.items() if getattr(args, dest) is not None]
  if given and not args.distributed:
    raise ValueError(f"{', '.join(given)}: only read with --distributed.")
  if args.num_processes is not None:
    check_int(args.num_processes, "num_processes (--num-processes)")
  if args.process_id is not None:
    check_int(args.process_id, "process_id (--process-id)", minimum=0)
    if args.num_processes is not None and args.process_id >= args.num_processes:
      raise ValueError(f"--process-id ({args.process_id}) must be below --num-processes ({args.num_processes}).")


def _start_distributed(args: argparse.Namespace) -> None:
  """``jax.distributed.initialize`` with the given options; what is not given, JAX detects (SLURM, TPU pods, ...)."""
  import jax

  jax.distributed.initialize(
    coordinator_address=args.coordinator_address, num_processes=args.num_processes, process_id=args.process_id
  )


def _compare(args: argparse.Namespace, config: settings.CompareConfig) -> None:
  from parewire_jax.experiments.compare import run_compare

  start = time.perf_counter()
  outcome = run_compare(
    config, data_dir=args.data_dir, download=not args.no_download, out_dir=args.out, resume=args.resume, progress=True
  )
  print(outcome.table)
  resumed = sum(len(chunks) for chunks in outcome.resumed.values())
  print(
    f"\nwall time {time.perf_counter() - start:.1f} s; training time {sum(outcome.train_seconds.values()):.1f} s"
    + (f" including {resumed} chunk(s) resumed from earlier runs" if resumed else "")
    + f"; outputs in {args.out}"
  )


def _strength(args: argparse.Namespace) -> None:
  from parewire_jax.experiments.compare import run_strength

  result = run_strength(
    args.init, args.shape, seeds=args.seeds, variants=args.variants, num_draws=args.num_draws, out_dir=args.out
  )
  print(result.table)
  print(f"\noutputs in {args.out}")


def _laperm(args: argparse.Namespace, config: settings.LaPermConfig) -> None:
  from parewire_jax.experiments.laperm_demo import run_laperm

  start = time.perf_counter()
  outcome = run_laperm(config, data_dir=args.data_dir, download=not args.no_download, out_dir=args.out, progress=True)
  print(outcome.table)
  print(f"\nwall time {time.perf_counter() - start:.1f} s; outputs in {args.out}")


def _list_cells(cells: list[atlas_grids.AtlasCell]) -> None:
  for cell in cells:
    c = cell.config
    hidden = f" {'x'.join(map(str, c.mlp_hidden))}" if c.model in ("mlp", "resmlp") else ""
    print(
      f"{cell.name:22} {cell.family:20} {c.dataset} {c.model}{hidden}, {c.init}, norm {c.norm}, {c.optimizer}, "
      f"{c.seeds} seeds, {c.epochs} epochs"
    )


def _atlas(args: argparse.Namespace, cells: list[atlas_grids.AtlasCell]) -> None:
  from parewire_jax.experiments.atlas import run_atlas

  start = time.perf_counter()
  result = run_atlas(
    cells, out_dir=args.out, resume=args.resume, data_dir=args.data_dir, download=not args.no_download, progress=True
  )
  print(result.table)
  reused = sum(cell.reused for cell in result.cells)
  print(
    f"\nwall time {time.perf_counter() - start:.1f} s"
    + (f"; {reused} cell(s) reused from an earlier run" if reused else "")
    + f"; outputs in {args.out}"
  )


# XLA:CPU's concurrency-optimized scheduler (jaxlib 0.10) now and then deadlocks a program: an atlas run's
# vmapped orthogonal initializer (a batched QR) waited forever with every thread idle. Without it the results
# are the same bits (checked on a cell of the atlas), so the command line turns it off unless XLA_FLAGS says
# otherwise. tests/conftest.py does the same for the tests.
CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def _avoid_cpu_scheduler_deadlock() -> None:
  """Adds ``CPU_SCHEDULER_FLAG=false`` to ``XLA_FLAGS`` unless set there; only before JAX starts a backend."""
  import os

  flags = os.environ.get("XLA_FLAGS", "")
  if CPU_SCHEDULER_FLAG not in flags and "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_SCHEDULER_FLAG}=false".strip()


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; bad settings exit with status 2 and the reason, a missing dataset with 1."""
  parser = _parser()
  args = parser.parse_args(argv)
  prefix = f"{parser.prog} {args.command}: error:"
  try:
    config = _check(args)
  except ValueError as error:
    parser.exit(2, f"{prefix} {error}\n")
  if isinstance(config, list) and args.list:
    _list_cells(config)
    return 0
  _avoid_cpu_scheduler_deadlock()
  if getattr(args, "distributed", False):  # before anything else touches JAX's backends
    _start_distributed(args)
  _use_compilation_cache(args.compilation_cache)
  from parewire_jax.experiments.data import MissingDatasetError

  try:
    if isinstance(config, list):
      _atlas(args, config)
    elif isinstance(config, settings.CompareConfig):
      _compare(args, config)
    elif isinstance(config, settings.LaPermConfig):
      _laperm(args, config)
    else:
      _strength(args)
  except ValueError as error:
    parser.exit(2, f"{prefix} {error}\n")
  except MissingDatasetError as error:
    parser.exit(1, f"{prefix} {error.advice(command_line=True)}\n")
  except (OSError, ImportError) as error:  # a dataset that cannot be fetched, a missing optional package
    parser.exit(1, f"{prefix} {error}\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
