"""How the cost of pa_rewire grows with the matrix size and with the batch of stacked matrices.

The sequential chain is ``(n_in - 1) + (n_out - 1)`` scan steps (both passes); each step sorts ``n`` keys.
Batching ``B`` same-shaped matrices (``vmap``) keeps the chain length and widens every step.

    python benchmarks/bench_scaling.py --plot benchmarks/scaling_cpu.png                 # CPU
    python benchmarks/bench_scaling.py --sizes 256 512 1024 2048 4096 8192 \\
        --batch-n 4096 --batches 1 8 32 --plot benchmarks/scaling_gpu.png               # GPU

Prints two markdown tables (jitted, compile excluded, best of ``--repeats``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import parewire_jax as pw  # noqa: E402


def best_time(fn, *args, repeats: int) -> float:
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
  parser.add_argument("--batch-n", type=int, default=512, help="matrix size for the batch table")
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--plot", default=None, help="write a PNG of both curves here")
  args = parser.parse_args()

  device = jax.devices()[0]
  print(
    f"# pa_rewire scaling — {datetime.date.today()} — {jax.default_backend()} ({device.device_kind}), "
    f"{os.cpu_count()} CPUs, jax {jax.__version__}"
  )
  print(f"# command: python {' '.join(sys.argv)}\n")
  key = jax.random.key(0)

  print("| n × n | scan steps | time (s) | µs / step |\n|---|---|---|---|")
  size_times = []
  for n in args.sizes:
    w = jax.random.normal(key, (n, n), jnp.float32)
    t = best_time(pw.pa_rewire, key, w, repeats=args.repeats)
    size_times.append(t)
    print(f"| {n} | {2 * (n - 1)} | {t:.4f} | {t / (2 * (n - 1)) * 1e6:.1f} |", flush=True)

  n = args.batch_n
  print(f"\n| batch of {n}×{n} | time (s) | time / matrix (s) | vs batch 1 per matrix |\n|---|---|---|---|")
  batch_times = []
  for b in args.batches:
    stack = jax.random.normal(key, (b, n, n), jnp.float32)
    t = best_time(jax.vmap(pw.pa_rewire), jax.random.split(key, b), stack, repeats=args.repeats)
    batch_times.append(t)
    print(f"| {b} | {t:.4f} | {t / b:.4f} | {batch_times[0] / (t / b):.2f}× |", flush=True)

  if args.plot:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(args.sizes, size_times, "o-")
    left.set_xscale("log", base=2)
    left.set_xticks(args.sizes, [str(s) for s in args.sizes])
    left.minorticks_off()
    left.set(xlabel="n (n × n kernel)", ylabel="time (s)", title=f"pa_rewire, both passes ({jax.default_backend()})")
    right.plot(args.batches, [t / b for t, b in zip(batch_times, args.batches, strict=True)], "o-")
    right.set_ylim(bottom=0)
    right.set(xlabel="batch (stacked matrices)", ylabel="time per matrix (s)", title=f"vmap over {n}×{n}")
    for ax in (left, right):
      ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=80)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
  main()
