"""Peak memory and time of PA-rewiring one big float32 kernel on the CPU.

Each size runs in a fresh subprocess, so its peak resident set size
(``VmHWM`` from ``/proc/self/status``, else ``ru_maxrss``) belongs to that
size alone. The child draws ``w = normal(key, (n, n))``, compiles
``jax.jit(pa_rewire)`` and records the peak before running it (interpreter,
JAX, ``w`` and the compiler), then runs it once and records the peak again.
The difference is what rewiring itself added; it is compared with the array
size ``4 n²`` bytes and with XLA's own estimate
(``compiled.memory_analysis()``: temporaries + output). Usage:

    PYTHONPATH=. python3 benchmarks/bench_memory.py [--sizes 1024 4096 8192] [--passes in out]

Slow: 8192² takes minutes (two scans of 8191 sequential steps, each an
argsort of 8192 values). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MiB = 2**20


def peak_rss_bytes() -> int:
  """The process's peak resident set size so far."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def child(n: int, passes: tuple[str, ...]) -> dict:
  import jax
  import jax.numpy as jnp

  import parewire_jax as pw

  w = jax.block_until_ready(jax.random.normal(jax.random.key(0), (n, n), jnp.float32))
  key = jax.random.key(1)
  rewire = jax.jit(lambda k, x: pw.pa_rewire(k, x, passes=passes))
  t0 = time.perf_counter()
  compiled = rewire.lower(key, w).compile()
  compile_s = time.perf_counter() - t0
  analysis = compiled.memory_analysis()
  before = peak_rss_bytes()
  t0 = time.perf_counter()
  r = jax.block_until_ready(compiled(key, w))
  run_s = time.perf_counter() - t0
  after = peak_rss_bytes()
  exact = bool((jnp.sort(r.ravel()) == jnp.sort(w.ravel())).all())
  return dict(
    n=n,
    array_bytes=w.nbytes,
    compile_s=compile_s,
    run_s=run_s,
    peak_before=before,
    peak_after=after,
    xla_temp=getattr(analysis, "temp_size_in_bytes", -1),
    xla_out=getattr(analysis, "output_size_in_bytes", -1),
    permutation=exact,
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192])
  parser.add_argument("--passes", nargs="+", default=["in", "out"])
  parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(child(args.child, tuple(args.passes))))
    return

  import jax  # only for the header

  print(f"jax {jax.__version__}, CPU, {os.cpu_count()} cores, passes {tuple(args.passes)}\n")
  print(
    "| n x n | array MiB | peak RSS before run MiB | peak RSS after run MiB | added by run MiB "
    "| added / array | XLA temp + out MiB | compile s | run s | bit-exact permutation |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|")
  for n in args.sizes:
    proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), "--child", str(n), "--passes", *args.passes],
      capture_output=True,
      text=True,
      check=False,
    )
    if proc.returncode != 0:
      print(f"| {n} | failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]} |")
      continue
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    added = m["peak_after"] - m["peak_before"]
    print(
      f"| {n} | {m['array_bytes'] / MiB:.0f} | {m['peak_before'] / MiB:.0f} | {m['peak_after'] / MiB:.0f} "
      f"| {added / MiB:.0f} | {added / m['array_bytes']:.2f} | {(m['xla_temp'] + m['xla_out']) / MiB:.0f} "
      f"| {m['compile_s']:.1f} | {m['run_s']:.1f} | {m['permutation']} |",
      flush=True,
    )


if __name__ == "__main__":
  main()
