"""The LeNet training step of the experiments: ``nn.Conv`` reference vs the fast LeNet, on whatever JAX runs.

Both are trained exactly as ``python -m parewire_jax compare`` trains them:
the jitted epoch of :func:`parewire_jax.experiments.steps.make_step_functions`
(a ``lax.scan`` of SGD steps, momentum 0.9, batch 128) with ``--seeds`` init
seeds vmapped together, on MNIST-shaped random images. Reported per model:
seconds per step and images·seeds per second (median over ``--rounds``; the
two models alternate round by round, so a change of the machine's load hits
both), the matrix-product FLOPs per image of a training step and of an
evaluation, and the fraction of the machine's matrix-product throughput that
this reaches. That throughput is measured here too: a jitted float32
``(n, n) @ (n, n)`` product (and, for comparison, bfloat16 inputs with
float32 accumulation).

Usage (prints markdown):

    python benchmarks/bench_lenet.py --seeds 10 --steps 4 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from parewire_jax.experiments import lenet, models  # noqa: E402
from parewire_jax.experiments.seeds import seed_keys  # noqa: E402
from parewire_jax.experiments.steps import eval_batches, make_step_functions  # noqa: E402

BATCH = 128
# Matrix-product multiply-adds per 28×28 image: (conv1, conv2, fc1, fc2).
MACS = (24 * 24 * 25 * 20, 8 * 8 * 500 * 50, 800 * 500, 500 * 10)
# Forward: 2 FLOPs per multiply-add. Training: forward, kernel gradients, and input gradients of every layer
# but the first (the images need none).
FORWARD_FLOPS = 2 * sum(MACS)
TRAIN_FLOPS = 3 * FORWARD_FLOPS - 2 * MACS[0]


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def matmul_throughput(n: int, dtype, repeats: int) -> float:
  """FLOP/s of a jitted (n, n) @ (n, n) product, repeated in a fori_loop (best of ``repeats`` calls)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  inner = 4

  @jax.jit
  def products(a, b):
    def body(_, acc):
      return jnp.matmul(a + acc[0, 0].astype(dtype), b, preferred_element_type=jnp.float32)

    return lax.fori_loop(0, inner, body, jnp.zeros((n, n), jnp.float32))

  jax.block_until_ready(products(a, b))
  best = min(_timed(products, a, b) for _ in range(repeats))
  return inner * 2 * n**3 / best


def _timed(f, *args) -> float:
  started = time.perf_counter()
  jax.block_until_ready(f(*args))
  return time.perf_counter() - started


class StepBench:
  """The compiled epoch of one model for ``seeds`` seeds over ``steps`` batches, ready to time."""

  def __init__(self, model, seeds: int, steps: int):
    rng = np.random.default_rng(0)
    self.x = jnp.asarray(rng.uniform(size=(BATCH * steps, 28, 28, 1)).astype(np.float32))
    self.y = jnp.asarray(rng.integers(0, 10, BATCH * steps).astype(np.int32))
    self.batches = jnp.arange(BATCH * steps, dtype=jnp.int32).reshape(steps, BATCH)
    self.fns = make_step_functions(
      model,
      optax.sgd(0.01, momentum=0.9),
      self.x[:1],
      seeds_per_vmap=None,
      track_gradients=False,
      laperm_evaluation=False,
    )
    params, state, opt_state, counts, _, _ = self.fns.init(seed_keys(range(seeds)), self.x[:1])
    self.params, self.state = params, state
    self.carry = ((params, state, opt_state), counts)
    self.steps = steps
    self.compile_s = _timed(self.fns.segment, self.carry, self.x, self.y, self.batches)

  def step_seconds(self) -> float:
    return _timed(self.fns.segment, self.carry, self.x, self.y, self.batches) / self.steps

  def evaluation_seconds(self, images: int = 1000) -> float:
    """One evaluation of ``images`` images in one batch of ``images`` (compiled before timing)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(images, 28, 28, 1)).astype(np.float32)
    xs, ys, masks = eval_batches(x, rng.integers(0, 10, images).astype(np.int32), images)
    jax.block_until_ready(self.fns.evaluate(self.params, self.state, xs, ys, masks))
    return _timed(self.fns.evaluate, self.params, self.state, xs, ys, masks)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", type=int, default=10, help="seeds vmapped together (default: %(default)s)")
  parser.add_argument("--steps", type=int, default=4, help="training steps per timed epoch (default: %(default)s)")
  parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default: %(default)s)")
  parser.add_argument("--matmul-size", type=int, default=2048, help="n of the throughput product")
  args = parser.parse_args()

  print(
    f"# LeNet training step — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC — "
    f"{jax.default_backend()} ({jax.devices()[0].device_kind}), {cpu_name()}, {os.cpu_count()} CPUs, "
    f"jax {jax.__version__}"
  )
  print(f"# command: python {' '.join(sys.argv)}")
  print(f"# load average before: {os.getloadavg()[0]:.2f}\n")

  f32 = matmul_throughput(args.matmul_size, jnp.float32, 3)
  bf16 = matmul_throughput(args.matmul_size, jnp.bfloat16, 3)
  print(f"matrix product {args.matmul_size}² float32: {f32 / 1e9:.1f} GFLOP/s; bfloat16 inputs, float32 sums: "
        f"{bf16 / 1e9:.1f} GFLOP/s ({bf16 / f32:.2f}×)\n")  # fmt: skip

  init = models.kernel_initializer("kaiming_normal")
  benches = {
    "nn.Conv (ConvLeNet)": StepBench(lenet.ConvLeNet(10, init), args.seeds, args.steps),
    "fast (LeNet)": StepBench(lenet.LeNet(10, init), args.seeds, args.steps),
  }
  times: dict[str, list[float]] = {name: [] for name in benches}
  for _ in range(args.rounds):
    for name, bench in benches.items():
      times[name].append(bench.step_seconds())
  evaluations = {name: bench.evaluation_seconds() for name, bench in benches.items()}
  load_after = os.getloadavg()[0]

  print(f"{args.seeds} seeds vmapped, batch {BATCH}, {args.steps} steps per timed epoch, median of {args.rounds} "
        f"alternating rounds; matrix-product FLOPs per image: {TRAIN_FLOPS / 1e6:.2f} M per training step, "
        f"{FORWARD_FLOPS / 1e6:.2f} M per evaluation\n")  # fmt: skip
  print(
    "| model | compile + first epoch (s) | s / step | images·seeds / s | GFLOP/s | of float32 matmul "
    "| evaluation images·seeds / s |"
  )
  print("|---|---|---|---|---|---|---|")
  rates = {}
  for name, bench in benches.items():
    step = statistics.median(times[name])
    rates[name] = BATCH * args.seeds / step
    flops = rates[name] * TRAIN_FLOPS
    evaluation = 1000 * args.seeds / evaluations[name]
    print(
      f"| {name} | {bench.compile_s:.1f} | {step:.3f} | {rates[name]:.0f} | {flops / 1e9:.1f} | "
      f"{flops / f32:.0%} | {evaluation:.0f} |"
    )
  slow, fast = (statistics.median(times[name]) for name in benches)
  ratios = [a / b for a, b in zip(*times.values(), strict=True)]
  print(f"\nfast vs nn.Conv: {slow / fast:.1f}× the images·seeds per second (per-round ratios "
        f"{', '.join(f'{r:.1f}' for r in ratios)}); load average after: {load_after:.2f}")  # fmt: skip


if __name__ == "__main__":
  main()
