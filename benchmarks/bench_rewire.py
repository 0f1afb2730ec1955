"""Times pa_rewire (jitted, compile excluded) against the NumPy oracle of Algorithm 1.

Both run in the same process on the same matrices, so the ratio is meaningful on
a noisy shared machine. Usage:

    python benchmarks/bench_rewire.py                       # CPU: 512² … 2048²
    python benchmarks/bench_rewire.py --sizes 4096 8192 --oracle-max 2048   # GPU

Prints a markdown table with the backend, device and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from oracle import pa_rewire_oracle  # noqa: E402

import parewire_jax as pw  # noqa: E402


def best_of(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768, 1024, 2048])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--oracle-max", type=int, default=2048, help="largest n timed with the NumPy oracle")
  parser.add_argument("--dtype", default="float32")
  args = parser.parse_args()

  device = jax.devices()[0]
  print(
    f"# pa_rewire vs NumPy oracle — {datetime.date.today()} — backend {jax.default_backend()} "
    f"({device.device_kind}), {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
    f"jax {jax.__version__}"
  )
  print(f"# command: python {' '.join(sys.argv)}\n")
  print("| n_in × n_out | dtype | compile (s) | pa_rewire (s) | µs / scan step | oracle (s) | speed-up |")
  print("|---|---|---|---|---|---|---|")
  rewire = jax.jit(pw.pa_rewire)
  for n in args.sizes:
    w = jax.nn.initializers.he_normal()(jax.random.key(0), (n, n), jnp.dtype(args.dtype))
    key = jax.random.key(1)
    start = time.perf_counter()
    compiled = rewire.lower(key, w).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(key, w))
    run_s = best_of(lambda: jax.block_until_ready(compiled(key, w)), args.repeats)
    steps = 2 * (n - 1)
    if n <= args.oracle_max:
      w_np = np.asarray(w.astype(jnp.float32))
      oracle_s = best_of(lambda: pa_rewire_oracle(w_np, np.random.default_rng(0)), max(1, args.repeats - 1))
      oracle, ratio = f"{oracle_s:.3f}", f"{oracle_s / run_s:.1f}×"
    else:
      oracle = ratio = "—"
    print(
      f"| {n}×{n} | {args.dtype} | {compile_s:.2f} | {run_s:.4f} | {run_s / steps * 1e6:.1f} | {oracle} | {ratio} |",
      flush=True,
    )


if __name__ == "__main__":
  main()
