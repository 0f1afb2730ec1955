"""Sharded PA rewiring on an 8-device CPU mesh: layer-sharded vs replicated vs sharded scanned axis.

Run from the repository root (it asks XLA for 8 virtual CPU devices itself):

    PYTHONPATH=. python3 benchmarks/bench_sharding.py [--layers 8] [--n 256] [--big 1024] [--repeats 5]

Case A, a stack of ``--layers`` ``n x n`` kernels initialised by
``rewired(lecun_normal(batch_axis=0), batch_axis=0)`` under
``jax.jit(..., out_shardings=...)``:

* ``layer-sharded``: ``P("layers")``: each device draws and rewires its own layers;
* ``replicated``: ``P()``: every device computes the whole stack;
* ``single device``: plain ``jax.jit`` (one device does everything).

Case B, one ``big x big`` kernel by ``rewired(lecun_normal())`` with the
scanned axis sharded (``P(None, "model")``: pass "in" scans over the sharded
output columns; ``P("model", None)``: pass "out" scans over sharded rows),
against replicated and single-device.

For every variant it prints the median wall time of the compiled function, the
compile time, the number of collectives in the compiled HLO (and how many sit
inside a ``while`` body, i.e. run once per scan step), and checks that the
result equals the single-device result bit for bit. The 8 "devices" share the
machine's CPU cores, so the speedups show work per device, not what 8 real
accelerators would give.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.nn import initializers as jinit  # noqa: E402
from jax.sharding import (  # noqa: E402
  AxisType,
  NamedSharding,
  PartitionSpec as P,  # noqa: E402
)

import parewire_jax as pw  # noqa: E402

COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce", "reduce-scatter")


def _computations(text: str) -> dict[str, str]:
  """HLO computations by name."""
  blocks, name, lines = {}, None, []
  for line in text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if header:
      name, lines = header.group(1), []
    elif line == "}" and name is not None:
      blocks[name] = "\n".join(lines)
      name = None
    elif name is not None:
      lines.append(line)
  return blocks


def collective_counts(text: str) -> tuple[int, int]:
  """(collectives in the program, those inside a while-loop body), nested calls followed."""
  blocks = _computations(text)
  pattern = re.compile(rf"\b(?:{'|'.join(COLLECTIVES)})(?:-start)?\(")
  bodies = set(re.findall(r"body=%?([\w.\-]+)", text))
  calls = {
    name: set(re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)", b))
    for name, b in blocks.items()
  }

  def reachable(roots):
    seen, stack = set(), list(roots)
    while stack:
      c = stack.pop()
      if c in seen or c not in blocks:
        continue
      seen.add(c)
      stack.extend(calls.get(c, ()))
    return seen

  in_loops = reachable(bodies)
  total = sum(len(pattern.findall(b)) for b in blocks.values())
  looped = sum(len(pattern.findall(blocks[c])) for c in in_loops)
  return total, looped


def time_compiled(fn, *args, repeats: int) -> tuple[float, float, object, str]:
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  out = compiled(*args)
  jax.block_until_ready(out)  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), compile_s, out, compiled.as_text()


def row(name, spec, median_s, compile_s, text, out, reference, baseline_s):
  total, looped = collective_counts(text)
  exact = np.array_equal(np.asarray(out).view(np.uint32), np.asarray(reference).view(np.uint32))
  print(
    f"| {name} | `{spec}` | {median_s * 1e3:.1f} | {baseline_s / median_s:.2f}x | {compile_s:.1f} "
    f"| {total} | {looped} | {exact} |"
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--layers", type=int, default=8)
  parser.add_argument("--n", type=int, default=256)
  parser.add_argument("--big", type=int, default=1024)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  if jax.device_count() < 8:
    raise SystemExit(f"needs 8 devices, found {jax.device_count()}; unset XLA_FLAGS's device count")
  mesh = jax.make_mesh((8,), ("layers",), axis_types=(AxisType.Auto,))
  key = jax.random.key(0)
  header = (
    "| variant | out sharding | median ms | speedup vs single device | compile s "
    "| collectives | in scan loops | equal to single device |\n|---|---|---|---|---|---|---|---|"
  )
  print(f"jax {jax.__version__}, {jax.device_count()} CPU devices on {os.cpu_count()} cores\n")

  shape = (args.layers, args.n, args.n)
  stack_init = pw.rewired(jinit.lecun_normal(batch_axis=0), batch_axis=0)
  print(f"## A. stack of {args.layers} layers {args.n}x{args.n}, rewired(batch_axis=0)\n\n{header}")
  single = jax.jit(lambda k: stack_init(k, shape, jnp.float32))
  base_s, compile_s, reference, text = time_compiled(single, key, repeats=args.repeats)
  row("single device", "-", base_s, compile_s, text, reference, reference, base_s)
  for name, spec in (("layer-sharded", P("layers")), ("replicated", P())):
    fn = jax.jit(lambda k: stack_init(k, shape, jnp.float32), out_shardings=NamedSharding(mesh, spec))
    median_s, compile_s, out, text = time_compiled(fn, key, repeats=args.repeats)
    row(name, spec, median_s, compile_s, text, out, reference, base_s)

  shape = (args.big, args.big)
  init = pw.rewired(jinit.lecun_normal())
  print(f"\n## B. one {args.big}x{args.big} kernel, scanned axis sharded\n\n{header}")
  single = jax.jit(lambda k: init(k, shape, jnp.float32))
  base_s, compile_s, reference, text = time_compiled(single, key, repeats=args.repeats)
  row("single device", "-", base_s, compile_s, text, reference, reference, base_s)
  for name, spec in (
    ("output axis sharded", P(None, "layers")),
    ("input axis sharded", P("layers", None)),
    ("replicated", P()),
  ):
    fn = jax.jit(lambda k: init(k, shape, jnp.float32), out_shardings=NamedSharding(mesh, spec))
    median_s, compile_s, out, text = time_compiled(fn, key, repeats=args.repeats)
    row(name, spec, median_s, compile_s, text, out, reference, base_s)


if __name__ == "__main__":
  main()
