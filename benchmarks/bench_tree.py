"""Benchmark of whole-model rewiring (`rewire_params`) on a LLaMA-7B-shaped tree.

The tree has, per layer, q/k/v/o ``(d, d)``, gate/up ``(d, f)``, down ``(f, d)``
(Flax orientation) and two RMSNorm scales ``(d,)``, with ``d = 4096 / scale``
and ``f = 11008 / scale``; random weights (no download). Two modes, each in a
fresh subprocess so its compile cache and peak memory are its own:

* ``grouped``: ``rewire_params`` (same-shaped matrices stacked, one
  ``vmap``-ed scan per chunk);
* ``ungrouped``: the same leaves rewired leaf by leaf with a jitted
  ``rewire(leaf_key(key, path), leaf)`` (one compile per leaf shape).

Both must give bit-identical trees (checked by a position-sensitive
fingerprint). Compile time is the sum of JAX's trace, lowering and backend
compile events during the first call; run time is the rest of that call; a
second ("warm") call is timed too. Peak memory is the device's
``peak_bytes_in_use`` where JAX reports it, else the process's peak RSS.

CPU-sized:  python benchmarks/bench_tree.py --layers 2 --scale 8
Full (GPU): python benchmarks/bench_tree.py --layers 32 --scale 1
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import tree_flatten_with_path

import parewire_jax as pw
from parewire_jax import tree as pw_tree
from parewire_jax.selection import is_weight_matrix
from parewire_jax.tree import leaf_key, rewire_params

D_MODEL, D_FF = 4096, 11008
_COMPILE_EVENTS = (
  "/jax/core/compile/jaxpr_trace_duration",
  "/jax/core/compile/jaxpr_to_mlir_module_duration",
  "/jax/core/compile/backend_compile_duration",
)


def llama_tree(key, layers: int, scale: int, dtype) -> dict:
  d, f = D_MODEL // scale, D_FF // scale
  shapes = {
    "attention": {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d)},
    "mlp": {"gate": (d, f), "up": (d, f), "down": (f, d)},
    "attention_norm": (d,),
    "ffn_norm": (d,),
  }
  template = {f"layer_{i:02d}": shapes for i in range(layers)}
  paths, treedef = jax.tree_util.tree_flatten_with_path(template, is_leaf=lambda x: isinstance(x, tuple))
  leaves = []
  for _, shape in paths:  # one leaf at a time keeps the init transient small
    k = jax.random.fold_in(key, len(leaves))
    leaf = jnp.ones(shape, dtype) if len(shape) == 1 else jax.random.normal(k, shape, dtype) / np.sqrt(shape[0])
    leaves.append(leaf.astype(dtype).block_until_ready())
  return jax.tree_util.tree_unflatten(treedef, leaves)


def fingerprint(tree) -> int:
  """Position-sensitive uint32 checksum of all leaves, computed on the device."""
  total = jnp.uint32(0)
  for i, x in enumerate(jax.tree.leaves(tree)):
    bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{x.dtype.itemsize * 8}")).astype(jnp.uint32).ravel()
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(2 * i + 1)
    total = total + jnp.sum(bits * weights, dtype=jnp.uint32)
  return int(total)


def peak_memory() -> tuple[int, str]:
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def rewire_leaf_by_leaf(key, params):
  rewire_one = jax.jit(pw.rewire)  # compiles once per leaf shape
  paths_and_leaves, treedef = tree_flatten_with_path(params)
  leaves = [rewire_one(leaf_key(key, p), x) if x.ndim >= 2 else x for p, x in paths_and_leaves]
  return jax.tree_util.tree_unflatten(treedef, leaves)


def worker(args) -> dict:
  compile_s = collections.Counter()

  def on_event(event, duration, **_):
    if event in _COMPILE_EVENTS:
      compile_s["total"] += duration

  jax.monitoring.register_event_duration_secs_listener(on_event)
  dtype = jnp.dtype(args.dtype)
  params = llama_tree(jax.random.key(args.seed), args.layers, args.scale, dtype)
  key = jax.random.key(args.seed + 1)
  tree_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
  peak_before, peak_kind = peak_memory()
  if args.worker == "grouped":
    # The tree's leaves are named q, k, ..., down, not kernel: select every weight matrix, as before the default
    # selection became the named dense/conv kernels.
    run = functools.partial(rewire_params, key, params, where=is_weight_matrix, max_group_bytes=args.max_group_bytes)
  else:
    run = functools.partial(rewire_leaf_by_leaf, key, params)
  compile_s.clear()
  start = time.perf_counter()
  out = jax.block_until_ready(run())
  cold = time.perf_counter() - start
  compiled = compile_s["total"]
  warm = []
  for _ in range(args.repeats - 1):
    del out
    start = time.perf_counter()
    out = jax.block_until_ready(run())
    warm.append(time.perf_counter() - start)
  peak_after, _ = peak_memory()
  result = largest_chunk_memory(args) if args.worker == "grouped" else {}
  return result | {
    "mode": args.worker,
    "device": str(jax.devices()[0]),
    "tree_bytes": tree_bytes,
    "cold_s": cold,
    "compile_s": compiled,
    "warm_s": min(warm) if warm else None,
    "peak_before": peak_before,
    "peak_after": peak_after,
    "peak_kind": peak_kind,
    "fingerprint_in": fingerprint(params),
    "fingerprint_out": fingerprint(out),
  }


def chunk_plan(args) -> list[tuple[int, int, list[int]]]:
  """``(n_in, n_out, chunk sizes)`` per group, as ``rewire_params`` will split them."""
  d, f = D_MODEL // args.scale, D_FF // args.scale
  itemsize = jnp.dtype(args.dtype).itemsize
  max_group_bytes = args.max_group_bytes or pw_tree.default_group_bytes()
  plan = []
  for (n_in, n_out), count in (((d, d), 4), ((d, f), 2), ((f, d), 1)):
    max_matrices = max(1, max_group_bytes // (n_in * n_out * itemsize))
    plan.append((n_in, n_out, pw_tree.chunk_sizes(count * args.layers, max_matrices)))
  return plan


def largest_chunk_memory(args) -> dict:
  """XLA's memory analysis of the compiled scan for the largest chunk (device-independent)."""
  n_in, n_out, sizes = max(chunk_plan(args), key=lambda g: g[0] * g[1] * max(g[2]))
  size = max(sizes)
  stack = jax.ShapeDtypeStruct((size, n_in, n_out), jnp.dtype(args.dtype))
  keys = jax.random.split(jax.random.key(0), size)
  analysis = pw.rewiring.rewire_stack.lower(keys, stack, passes=("in", "out"), offset=1.0).compile().memory_analysis()
  return {
    "chunk_bytes": size * n_in * n_out * jnp.dtype(args.dtype).itemsize,
    "scan_bytes": analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--layers", type=int, default=32)
  parser.add_argument("--scale", type=int, default=1, help="divide d_model=4096 and d_ff=11008 by this")
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--max-group-bytes", type=int, default=None, help="default: rewire_params' own")
  parser.add_argument("--modes", default="grouped,ungrouped")
  parser.add_argument("--repeats", type=int, default=3, help="calls per mode; the first one compiles")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--worker", choices=("grouped", "ungrouped"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args)))
    return

  mib = 2**20
  command = "python benchmarks/bench_tree.py " + shlex.join(sys.argv[1:])
  results = []
  for mode in args.modes.split(","):
    proc = subprocess.run(
      [sys.executable, __file__, *sys.argv[1:], "--worker", mode], capture_output=True, text=True, check=False
    )
    if proc.returncode:
      sys.exit(f"{mode} worker failed:\n{proc.stderr}")
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

  d, f = D_MODEL // args.scale, D_FF // args.scale
  print(f"Command: `{command}`\n")
  print(
    f"Device: {results[0]['device']}; {args.layers} layers, d={d}, f={f}, {args.dtype}; "
    f"tree {results[0]['tree_bytes'] / mib:.1f} MiB; memory: {results[0]['peak_kind']}\n"
  )
  print("Groups (grouped mode):")
  itemsize = jnp.dtype(args.dtype).itemsize
  for n_in, n_out, sizes in chunk_plan(args):
    print(
      f"- ({n_in}, {n_out}): {sum(sizes)} matrices in {len(sizes)} chunk(s) of {sorted(set(sizes), reverse=True)}"
      f" (largest {max(sizes) * n_in * n_out * itemsize / mib:.1f} MiB)"
    )
  grouped = next((r for r in results if r["mode"] == "grouped"), None)
  if grouped:
    print(
      f"- compiled scan for the largest chunk ({grouped['chunk_bytes'] / mib:.1f} MiB): arguments + outputs + "
      f"temporaries = {grouped['scan_bytes'] / mib:.1f} MiB (XLA memory_analysis)"
    )
  print("\nrun = fastest warm call; compile = JAX trace + lowering + backend compile time in the first call.\n")
  print("| mode | first call (s) | compile (s) | run (s) | peak before (MiB) | peak after (MiB) | weights changed |")
  print("|---|---|---|---|---|---|---|")
  for r in results:
    warm = f"{r['warm_s']:.2f}" if r["warm_s"] is not None else "-"
    print(
      f"| {r['mode']} | {r['cold_s']:.2f} | {r['compile_s']:.2f} | {warm} "
      f"| {r['peak_before'] / mib:.0f} | {r['peak_after'] / mib:.0f} "
      f"| {r['fingerprint_out'] != r['fingerprint_in']} |"
    )
  if len(results) > 1:
    same = len({r["fingerprint_out"] for r in results}) == 1
    print(f"\nAll modes bit-identical (position-sensitive fingerprint): {same}")


if __name__ == "__main__":
  main()
