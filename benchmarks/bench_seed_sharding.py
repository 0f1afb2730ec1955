"""Seed·images per second of ``train_seeds`` against the number of devices the seeds are sharded over.

Run from the repository root (it asks XLA for 8 virtual CPU devices itself):

    PYTHONPATH=. python3 benchmarks/bench_seed_sharding.py [--seeds 16] [--devices 1 2 4 8] [--repeats 2]

One fixed population, an MLP (784-256-256-10, Kaiming normal, rewired) on 2048
random images of MNIST's shape (the time does not depend on the values; 512
validation and 512 test images), ``--seeds`` seeds in one chunk, 2 epochs of
batch 128 of SGD, is trained with ``train_seeds(..., devices=d)`` for every
``d``. The first run of each ``d`` compiles; the median of
``--repeats`` more is the time. Throughput is seeds × trained images / time
(evaluation included, compilation not). It also checks that the per-seed
validation losses equal the 1-device run's to float rounding.

On a CPU the virtual devices share the machine's cores, so this measures the
overhead and structure of sharding (one program per device, no collective),
not what separate accelerators would gain.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=8".strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from parewire_jax.experiments import (  # noqa: E402
  Optimizer,
  TrainSettings,
  build_model,
  kernel_initializer,
  train_seeds,
)
from parewire_jax.experiments.data import Dataset  # noqa: E402


def _dataset(num_train: int, num_eval: int) -> Dataset:
  rng = np.random.default_rng(0)

  def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(n, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, n).astype(np.int32)

  (x_train, y_train), (x_val, y_val), (x_test, y_test) = split(num_train), split(num_eval), split(num_eval)
  return Dataset("random-mnist-shape", x_train, y_train, x_val, y_val, x_test, y_test, 10)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=16)
  parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  data = _dataset(2048, 512)
  training = TrainSettings(epochs=2, batch_size=128, learning_rate=0.01)
  optimizer = Optimizer("sgd", momentum=0.9)
  model = build_model("mlp", 10, kernel_initializer("kaiming_normal", "rewired"), mlp_hidden=(256, 256))
  seeds = list(range(args.seeds))
  images = args.seeds * training.epochs * (len(data.x_train) // training.batch_size) * training.batch_size
  backend = f"{jax.device_count()} {jax.default_backend()} devices"
  print(f"jax {jax.__version__}, {backend}, {args.seeds} seeds, {images} seed·images")
  print("| devices | compile + first run (s) | median run (s) | seed·images/s | vs 1 device | max abs Δ val. loss |")
  print("|---|---|---|---|---|---|")
  reference, rate_one = None, None
  for devices in args.devices:
    started = time.perf_counter()
    result = train_seeds(model, data, seeds, training, optimizer, devices=devices)
    first = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
      started = time.perf_counter()
      train_seeds(model, data, seeds, training, optimizer, devices=devices)
      times.append(time.perf_counter() - started)
    median = statistics.median(times)
    rate = images / median
    reference = result.val_loss if reference is None else reference
    rate_one = rate if rate_one is None else rate_one
    difference = float(np.abs(result.val_loss - reference).max())
    print(f"| {devices} | {first:.1f} | {median:.2f} | {rate:,.0f} | {rate / rate_one:.2f}× | {difference:.1e} |")


if __name__ == "__main__":
  main()
