"""Where the time of one scan step of pa_rewire goes, on whatever backend JAX runs.

Each row is a ``lax.scan`` of ``n - 1`` steps over ``n``-element vectors (one pass
"in" of an ``n × n`` matrix) doing only part of the step, so loop overhead is
included and comparable with the full step. Every step depends on the previous
one through the carry, so XLA cannot hoist the work out of the loop. Rows:

* ``loop``: the carry update alone (the scan's own per-step overhead);
* ``gumbel``: drawing the step's Gumbel noise from its key;
* ``argsort pairs`` / ``argsort packed``: the exact stable argsorts of ``parewire_jax.sorting``
  (key–index pair sort, the non-CPU path; two single-operand int32 sorts, the CPU path before 0.2);
* ``rank by search``: the stable rank the CPU step computes since 0.2 (one single-operand sort, a
  binary search and, for equal keys, rounds that settle them);
* ``scatter`` / ``gather``: placing a sorted column by a ranking (unique indices; the step before 0.2)
  or by ranks (the step since 0.2);
* ``full step``: ``pa_rewire(..., passes=("in",))`` divided by ``n - 1``, so it also
  carries the share of the work hoisted out of the scan (sorting every column once,
  the transposes), which is small next to the steps.

Usage (prints a markdown table; compile excluded, best of ``--repeats``):

    python benchmarks/profile_step.py --sizes 1024 4096
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench_scaling import best_time  # noqa: E402  (this script's folder is on sys.path)

import parewire_jax as pw  # noqa: E402
from parewire_jax import sorting  # noqa: E402


def chained(step_work):
  """A scan whose step applies ``step_work(carry_vector, step_key, column)`` -> int32 vector."""

  def run(key, w):
    n = w.shape[0]
    keys = jax.random.split(key, n - 1)
    columns = sorting.to_sortable_bits(w.T[1:])

    def step(carry, inputs):
      step_key, column = inputs
      out = step_work(carry, step_key, column)
      return carry ^ out, None

    final, _ = lax.scan(step, jnp.zeros(n, jnp.int32), (keys, columns))
    return final

  return run


def _bits(x):
  return lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)


def _permutation(carry):
  """A permutation of ``range(n)`` that depends on the carry (n a power of two; odd multipliers are bijective)."""
  iota = lax.iota(jnp.int32, carry.shape[0])
  return (iota * jnp.int32(-1640531535) + carry[0]) & (carry.shape[0] - 1)


ROWS = {
  "loop": lambda carry, key, column: column,
  "gumbel": lambda carry, key, column: _bits(jax.random.gumbel(key, carry.shape, jnp.float32)),
  "argsort pairs": lambda carry, key, column: sorting.stable_argsort_pairs(column ^ carry),
  "argsort packed": lambda carry, key, column: sorting.stable_argsort_packed(column ^ carry),
  "rank by search": lambda carry, key, column: sorting.stable_rank_by_search(column ^ carry),
  "scatter": lambda carry, key, column: jnp.zeros_like(column).at[_permutation(carry)].set(column, unique_indices=True),
  "gather": lambda carry, key, column: column[_permutation(carry)],
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096], help="powers of two")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  for n in args.sizes:
    if n < 2 or n & (n - 1):
      parser.error(f"--sizes must be powers of two >= 2, got {n}")

  device = jax.devices()[0]
  print(
    f"# pa_rewire per-step profile — {datetime.date.today()} — {jax.default_backend()} "
    f"({device.device_kind}), {os.cpu_count()} CPUs, jax {jax.__version__}"
  )
  print(f"# command: python {' '.join(sys.argv)}\n")
  print("µs per step (each a scan of n − 1 steps):\n")
  print("| n | " + " | ".join(list(ROWS) + ["full step"]) + " |")
  print("|---|" + "---|" * (len(ROWS) + 1))
  key = jax.random.key(0)
  for n in args.sizes:
    w = jax.random.normal(key, (n, n), jnp.float32)
    cells = [best_time(chained(work), key, w, repeats=args.repeats) for work in ROWS.values()]
    cells.append(best_time(lambda k, m: pw.pa_rewire(k, m, passes=("in",)), key, w, repeats=args.repeats))
    print(f"| {n} | " + " | ".join(f"{t / (n - 1) * 1e6:.1f}" for t in cells) + " |", flush=True)


if __name__ == "__main__":
  main()
