"""Command line: ``python -m parewire_jax {compare,strength,laperm} ...``.

Argument parsing only; the work lives in :mod:`parewire_jax.experiments`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from parewire_jax.experiments import models as models_lib
from parewire_jax.experiments.data import DATASETS


def _limit(text: str) -> int | None:
  """A ``--limit-*`` value: a count, or ``all`` for no limit."""
  return None if text == "all" else int(text)


def _add_run_arguments(parser: argparse.ArgumentParser, defaults, *, seeds_help: str) -> None:
  """The options shared by ``compare`` and ``laperm``: data, model, seeds, schedule length, chunking."""
  parser.add_argument("--dataset", default=defaults.dataset, choices=DATASETS)
  parser.add_argument("--model", default=defaults.model, choices=models_lib.MODELS)
  parser.add_argument("--init", default=defaults.init, choices=models_lib.INITIALIZERS)
  parser.add_argument("--seeds", type=int, default=defaults.seeds, help=f"{seeds_help}, >= 2 (default: %(default)s)")
  parser.add_argument("--first-seed", type=int, default=defaults.first_seed)
  parser.add_argument("--epochs", type=int, default=defaults.epochs, help="(default: %(default)s)")
  parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
  parser.add_argument(
    "--limit-train",
    type=_limit,
    default=defaults.limit_train,
    help="use only this many training examples, or all (default: %(default)s)",
  )
  parser.add_argument(
    "--data-seed", type=int, default=defaults.data_seed, help="seed of the data order, shared by all models"
  )
  parser.add_argument("--seeds-per-chunk", type=int, default=None, help="seeds trained at once (memory)")
  parser.add_argument(
    "--seeds-per-vmap", type=int, default=None, help="seeds vectorized together within a chunk (default: all)"
  )
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")


def _parser() -> argparse.ArgumentParser:
  from parewire_jax.experiments.compare import CompareConfig

  d = CompareConfig()
  parser = argparse.ArgumentParser(
    prog="python -m parewire_jax", description="PA weight rewiring experiments (Scabini et al., arXiv 2207.08148)."
  )
  commands = parser.add_subparsers(dest="command", required=True)

  c = commands.add_parser(
    "compare",
    help="train the base initializer and its variants from the same seeds; Tables 1-2",
    description="Trains --seeds models per variant (same seeds, same data order) and tests every variant "
    "against 'base' (Welch t-test, Kruskal-Wallis, paired t-test, Wilcoxon). The default is a "
    "CPU-sized demonstration; the paper's Table 1 is --model lenet --seeds 100 --epochs 100 "
    "--variants base max_sv min_sv rewired (GPU).",
  )
  _add_run_arguments(c, d, seeds_help="init seeds per variant")
  c.add_argument(
    "--variants",
    nargs="+",
    default=list(d.variants),
    choices=models_lib.VARIANTS,
    help="must include base (default: %(default)s)",
  )
  c.add_argument(
    "--lr", type=float, default=d.learning_rate, help="initial cosine learning rate (default: %(default)s)"
  )
  c.add_argument("--momentum", type=float, default=d.momentum)
  c.add_argument(
    "--limit-eval",
    type=_limit,
    default=d.limit_eval,
    help="use only this many validation and test examples each, or all (default: %(default)s)",
  )
  c.add_argument(
    "--standardize",
    action=argparse.BooleanOptionalAction,
    default=d.standardize,
    help="standardize images per channel with the training split's mean and std (default: %(default)s)",
  )
  c.add_argument("--num-draws", type=int, default=d.num_draws, help="candidates of min_sv/max_sv")
  c.add_argument("--mlp-hidden", type=int, nargs="+", default=list(d.mlp_hidden), help="MLP hidden widths")
  c.add_argument("--student", action="store_true", help="Student's instead of Welch's t-test")
  c.add_argument("--gradients", action="store_true", help="record mean |gradient| per layer (Fig. 5)")
  c.add_argument(
    "--out",
    default="runs/compare",
    help="directory for results.json, table.md, plots and the finished chunks of seeds (default: %(default)s)",
  )
  c.add_argument(
    "--resume",
    action="store_true",
    help="reuse the chunks of seeds that an interrupted run with the same settings saved in --out",
  )

  s = commands.add_parser("strength", help="strength statistics before/after rewiring (Fig. 1)")
  s.add_argument("--init", default="kaiming_normal", choices=models_lib.INITIALIZERS)
  s.add_argument(
    "--shape",
    type=int,
    nargs="+",
    default=[1024, 1024],
    help="kernel shape, last axis = outputs (default: %(default)s)",
  )
  s.add_argument("--seeds", type=int, default=10)
  s.add_argument("--variants", nargs="+", default=["base", "rewired"], choices=models_lib.VARIANTS)
  s.add_argument("--num-draws", type=int, default=100)
  s.add_argument("--out", default="runs/strength", help="directory for the table and plot (default: %(default)s)")

  from parewire_jax.experiments.laperm_demo import LaPermConfig

  lp = LaPermConfig()
  la = commands.add_parser(
    "laperm",
    help="LaPerm(Adam) vs Adam from the same seeds (Qiu & Suda 2020, section 5.1)",
    description="Trains --seeds models with Adam and with LaPerm around Adam (same init seeds, same data order), "
    "tests them paired by seed, and checks that every evaluated LaPerm kernel column is a bit-exact "
    "permutation of its initial values. The default is a CPU-sized demonstration following the "
    "paper's MNIST settings (2x100 MLP, He uniform, batch 50, Adam 1e-3, k = 20).",
  )
  _add_run_arguments(la, lp, seeds_help="init seeds per optimizer")
  la.add_argument(
    "--lr",
    type=float,
    default=lp.learning_rate,
    help="initial cosine learning rate of Adam, also inside LaPerm (default: %(default)s)",
  )
  la.add_argument(
    "--sync-period", type=int, default=lp.sync_period, help="LaPerm's sync period k in steps (default: %(default)s)"
  )
  la.add_argument(
    "--mlp-hidden", type=int, nargs="+", default=list(lp.mlp_hidden), help="MLP hidden widths (default: %(default)s)"
  )
  la.add_argument(
    "--out", default="runs/laperm", help="directory for results.json, table.md and curves.png (default: %(default)s)"
  )
  return parser


def _compare(args: argparse.Namespace) -> None:
  from parewire_jax.experiments.compare import CompareConfig, run_compare

  config = CompareConfig(
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
  )
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


def _laperm(args: argparse.Namespace) -> None:
  from parewire_jax.experiments.laperm_demo import LaPermConfig, run_laperm

  config = LaPermConfig(
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
  )
  start = time.perf_counter()
  outcome = run_laperm(config, data_dir=args.data_dir, download=not args.no_download, out_dir=args.out, progress=True)
  print(outcome.table)
  print(f"\nwall time {time.perf_counter() - start:.1f} s" + (f"; outputs in {args.out}" if args.out else ""))


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; bad settings exit with status 2 and the reason."""
  parser = _parser()
  args = parser.parse_args(argv)
  try:
    {"compare": _compare, "strength": _strength, "laperm": _laperm}[args.command](args)
  except ValueError as error:
    parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")
  except (OSError, ImportError) as error:  # a dataset that is missing and cannot be fetched
    parser.exit(1, f"{parser.prog} {args.command}: error: {error}\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
