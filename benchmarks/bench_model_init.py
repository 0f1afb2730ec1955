"""What users wait for: initialising whole models with PA-rewired kernels, each measurement in a fresh process.

Models (flax.linen, defined here; no project model code), every Dense/Conv kernel with ``kernel_init=KINIT``:

* ``resnet18``, ``resnet50``: torchvision's layer shapes (stem 7×7/2 conv + 3×3/2 max-pool, stages of widths
  64-128-256-512, basic blocks [2, 2, 2, 2] or bottlenecks ×4 [3, 4, 6, 3], BatchNorm, no conv biases, Dense
  to 1000 classes: 21 and 54 kernels, fc included), NHWC input 1×32×32×3 (CIFAR-sized), base ``he_normal()``;
* ``gpt2``: a GPT-2-small-shaped stack: 12 blocks, d=768, 12 heads, LayerNorm, Dense qkv 768→2304 and proj
  768→768, MLP 768→3072→768 (48 kernels), tied output head; token embedding (vocab 1024, not 50257, to fit the
  CPU) and 1024 positions, both ``nn.Embed`` and never rewired; 64 tokens; base ``normal(0.02)``;
* ``llama``: a LLaMA-shaped stack scaled to the CPU: ``--llama-layers`` blocks (default 2), d=1024, 8 heads,
  RMSNorm, Dense q/k/v/o without bias, SwiGLU MLP gate/up 1024→2816, down 2816→1024, untied Dense output head
  to vocab 1024 (7 kernels a block + 1), embedding not rewired; 64 tokens; base ``normal(0.02)``.

All stacks are unrolled (a Python loop of blocks, not ``nn.scan``). ``KINIT`` is the base initializer or
``pw.rewired(base)``. Variants, each run in its own fresh process (``--worker``) that prints one JSON line:

* ``base``: ``jax.jit(model.init)`` with the base initializer;
* ``rewired``: ``jax.jit(model.init)`` with ``kernel_init=pw.rewired(base)``;
* ``batched``: the library's recommended whole-model path, ``jax.jit(pw.batch_rewiring(model.init))`` with
  rewired kernels (the worker fails with a clear message where ``pw.batch_rewiring`` does not exist);
* ``rewire_params``: ``base``, then ``pw.rewire_params(jax.random.key(1), variables)`` on its output
  (embeddings excluded with ``where``); its first and second call are timed apart;
* ``reference`` (ResNets only): ``base``, then every kernel converted to PyTorch's layout ``(out, in, kh, kw)``
  and rewired by the reference repository's NumPy implementation (``benchmarks/reference_weight_rewiring.py``,
  vendored from scabini/PArewiring_weights) exactly as its README does: ``PA_rewiring_np(m.weight)`` for every
  Conv2d/Linear weight. Its time excludes the layout conversion (reported apart).

Plus ``kernel768``: one 768×768 float32 kernel (he_normal), jitted ``pa_rewire`` warm (compile excluded, best
of 3) vs the NumPy Algorithm 1 of ``tests/oracle.py`` (best of 2) and the vendored reference, in one process.

Per init: trace+lower (``jax.jit(init).lower``), backend compile (``.compile()``), the first run and a second
(warm) run of the compiled init, each until ``block_until_ready``. The driver also records the process's wall
and CPU time and the time from launching it until its parameters were ready (start-up and imports, compile included:
what a user waits for). Nothing unusual is enabled: no compilation cache, and ``XLA_FLAGS`` as inherited (the
command line ``python -m parewire_jax`` turns XLA:CPU's concurrency-optimized scheduler off; this benchmark
does not, so it measures JAX's defaults).

``--quick`` shrinks every model (ResNets: one stage of width 8, 10 classes; one GPT-2/LLaMA block of d=32; a
128² kernel) for a smoke check; its time is bound by 19 process start-ups and compiles, not by the sizes.

Usage:

    python benchmarks/bench_model_init.py --out model_init.md
    python benchmarks/bench_model_init.py --variants base,rewired,rewire_params,reference   # without `batched`
    python benchmarks/bench_model_init.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/oracle.py
sys.path.insert(2, str(Path(__file__).resolve().parent))  # reference_weight_rewiring.py

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import parewire_jax as pw

MODELS = ("resnet18", "resnet50", "gpt2", "llama", "kernel768")
VARIANTS = ("base", "rewired", "batched", "rewire_params", "reference")
RESNETS = ("resnet18", "resnet50")
_COMPILE_EVENTS = (
  "/jax/core/compile/jaxpr_trace_duration",
  "/jax/core/compile/jaxpr_to_mlir_module_duration",
  "/jax/core/compile/backend_compile_duration",
)

# ----------------------------------------------------------------------------------------------------- models


class BasicBlock(nn.Module):
  features: int
  strides: int
  kinit: Callable

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=self.kinit)
    norm = functools.partial(nn.BatchNorm, use_running_average=True)
    y = nn.relu(norm()(conv(self.features, (3, 3), self.strides, padding=1)(x)))
    y = norm()(conv(self.features, (3, 3), padding=1)(y))
    if x.shape[-1] != self.features or self.strides != 1:
      x = norm()(conv(self.features, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  features: int
  strides: int
  kinit: Callable

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=self.kinit)
    norm = functools.partial(nn.BatchNorm, use_running_average=True)
    y = nn.relu(norm()(conv(self.features, (1, 1))(x)))
    y = nn.relu(norm()(conv(self.features, (3, 3), self.strides, padding=1)(y)))  # torchvision: stride on 3×3
    y = norm()(conv(4 * self.features, (1, 1))(y))
    if x.shape[-1] != 4 * self.features or self.strides != 1:
      x = norm()(conv(4 * self.features, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  stage_sizes: Sequence[int]
  block: type[nn.Module]
  kinit: Callable
  width: int = 64
  classes: int = 1000

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.width, (7, 7), 2, padding=3, use_bias=False, kernel_init=self.kinit)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = self.block(self.width * 2**i, 2 if i > 0 and j == 0 else 1, self.kinit)(x)
    return nn.Dense(self.classes, kernel_init=self.kinit)(jnp.mean(x, axis=(1, 2)))


def causal_attention(q, k, v, heads: int):
  b, t, d = q.shape
  q, k, v = (a.reshape(b, t, heads, d // heads) for a in (q, k, v))
  out = nn.dot_product_attention(q, k, v, mask=nn.make_causal_mask(jnp.ones((b, t))))
  return out.reshape(b, t, d)


class GPT2Block(nn.Module):
  d: int
  heads: int
  kinit: Callable

  @nn.compact
  def __call__(self, x):
    dense = functools.partial(nn.Dense, kernel_init=self.kinit)
    q, k, v = jnp.split(dense(3 * self.d, name="qkv")(nn.LayerNorm()(x)), 3, axis=-1)
    x = x + dense(self.d, name="proj")(causal_attention(q, k, v, self.heads))
    h = nn.gelu(dense(4 * self.d, name="fc")(nn.LayerNorm()(x)))
    return x + dense(self.d, name="fc_proj")(h)


class GPT2(nn.Module):
  layers: int
  d: int
  heads: int
  vocab: int
  positions: int
  kinit: Callable

  @nn.compact
  def __call__(self, tokens):
    embed = nn.Embed(self.vocab, self.d, embedding_init=jax.nn.initializers.normal(0.02), name="embed_tokens")
    pos = nn.Embed(self.positions, self.d, embedding_init=jax.nn.initializers.normal(0.01), name="embed_positions")
    x = embed(tokens) + pos(jnp.arange(tokens.shape[1]))[None]
    for _ in range(self.layers):
      x = GPT2Block(self.d, self.heads, self.kinit)(x)
    return embed.attend(nn.LayerNorm()(x))  # tied output head


class LlamaBlock(nn.Module):
  d: int
  heads: int
  hidden: int
  kinit: Callable

  @nn.compact
  def __call__(self, x):
    dense = functools.partial(nn.Dense, use_bias=False, kernel_init=self.kinit)
    h = nn.RMSNorm()(x)
    q, k, v = dense(self.d, name="q")(h), dense(self.d, name="k")(h), dense(self.d, name="v")(h)
    x = x + dense(self.d, name="o")(causal_attention(q, k, v, self.heads))  # (RoPE has no parameters)
    h = nn.RMSNorm()(x)
    swiglu = nn.silu(dense(self.hidden, name="gate")(h)) * dense(self.hidden, name="up")(h)
    return x + dense(self.d, name="down")(swiglu)


class Llama(nn.Module):
  layers: int
  d: int
  heads: int
  hidden: int
  vocab: int
  kinit: Callable

  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(self.vocab, self.d, embedding_init=jax.nn.initializers.normal(0.02), name="embed_tokens")(tokens)
    for _ in range(self.layers):
      x = LlamaBlock(self.d, self.heads, self.hidden, self.kinit)(x)
    return nn.Dense(self.vocab, use_bias=False, kernel_init=self.kinit, name="lm_head")(nn.RMSNorm()(x))


def model_config(name: str, quick: bool, llama_layers: int) -> dict:
  """The model's constructor arguments (all but ``kinit``), its example input and a one-line description."""
  if name in RESNETS:
    stages = (2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3)
    block = BasicBlock if name == "resnet18" else Bottleneck
    kwargs = {"stage_sizes": (1,), "block": block, "width": 8, "classes": 10} if quick else {}
    kwargs = {"stage_sizes": stages, "block": block} | kwargs
    return {
      "cls": ResNet,
      "kwargs": kwargs,
      "input": ("float32", (1, 32, 32, 3)),
      "base": "he_normal",
      "describe": f"stages {list(kwargs['stage_sizes'])}, widths {kwargs.get('width', 64)}·2^i, "
      f"{kwargs.get('classes', 1000)} classes, input 1×32×32×3",
    }
  if name == "gpt2":
    kwargs = {"layers": 12, "d": 768, "heads": 12, "vocab": 1024, "positions": 1024}
    if quick:
      kwargs = {"layers": 1, "d": 32, "heads": 4, "vocab": 64, "positions": 16}
    seq = 16 if quick else 64
    describe = f"{kwargs['layers']} block(s), d={kwargs['d']}, MLP {4 * kwargs['d']}, vocab {kwargs['vocab']}"
    return {"cls": GPT2, "kwargs": kwargs, "input": ("int32", (1, seq)), "base": "normal(0.02)", "describe": describe}
  if name == "llama":
    kwargs = {"layers": llama_layers, "d": 1024, "heads": 8, "hidden": 2816, "vocab": 1024}
    if quick:
      kwargs = {"layers": 1, "d": 32, "heads": 4, "hidden": 96, "vocab": 64}
    seq = 16 if quick else 64
    describe = f"{kwargs['layers']} block(s), d={kwargs['d']}, SwiGLU {kwargs['hidden']}, vocab {kwargs['vocab']}"
    return {"cls": Llama, "kwargs": kwargs, "input": ("int32", (1, seq)), "base": "normal(0.02)", "describe": describe}
  raise ValueError(f"unknown model {name!r}")


def base_init(name: str):
  return jax.nn.initializers.he_normal() if name == "he_normal" else jax.nn.initializers.normal(0.02)


def is_rewired_kernel(path, x) -> bool:
  """Kernels (ndim >= 2) outside the embeddings: what ``rewire_params`` and the reference rewire."""
  return x.ndim >= 2 and "embed" not in jax.tree_util.keystr(path)


# ----------------------------------------------------------------------------------------------------- worker


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def kernel_paths(variables) -> list:
  return [(p, x) for p, x in jax.tree_util.tree_leaves_with_path(variables) if is_rewired_kernel(p, x)]


def count_changed(before, after) -> int:
  pairs = zip(kernel_paths(before), kernel_paths(after), strict=True)
  return sum(not np.array_equal(np.asarray(a), np.asarray(b)) for (_, a), (_, b) in pairs)


def to_torch_layout(x: np.ndarray) -> np.ndarray:
  """Flax ``(kh, kw, in, out)`` / ``(in, out)`` -> PyTorch ``(out, in, kh, kw)`` / ``(out, in)``, a writable copy."""
  axes = (3, 2, 0, 1) if x.ndim == 4 else (1, 0)
  return np.array(np.asarray(x).transpose(axes), order="C", copy=True)


def from_torch_layout(x: np.ndarray) -> np.ndarray:
  axes = (2, 3, 1, 0) if x.ndim == 4 else (1, 0)
  return np.ascontiguousarray(x.transpose(axes))


def worker_model(args, imported_unix: float) -> dict:
  model_name, variant = args.worker
  config = model_config(model_name, args.quick, args.llama_layers)
  base = base_init(config["base"])
  if variant == "reference" and model_name not in RESNETS:
    raise SystemExit(f"variant 'reference' is measured for {', '.join(RESNETS)} only, not {model_name}")
  kinit = pw.rewired(base) if variant in ("rewired", "batched") else base
  model = config["cls"](kinit=kinit, **config["kwargs"])
  dtype, shape = config["input"]
  x = jnp.ones(shape, dtype) if dtype == "float32" else jnp.zeros(shape, dtype)
  key = jax.random.key(0)
  init = model.init
  if variant == "batched":
    try:
      batch_rewiring = pw.batch_rewiring
    except AttributeError:
      raise SystemExit(
        "variant 'batched' needs parewire_jax.batch_rewiring (the recommended whole-model path, "
        "jax.jit(pw.batch_rewiring(model.init))), which this checkout of parewire_jax does not have; "
        "leave it out with --variants base,rewired,rewire_params,reference"
      ) from None
    init = batch_rewiring(model.init)

  compile_events = {"s": 0.0}

  def on_event(event, duration, **_):
    if event in _COMPILE_EVENTS:
      compile_events["s"] += duration

  jax.monitoring.register_event_duration_secs_listener(on_event)
  jitted = jax.jit(init)
  lowered, lower_s = timed(lambda: jitted.lower(key, x))
  compiled, compile_s = timed(lowered.compile)
  variables, first_s = timed(lambda: compiled(key, x))
  result = {"lower_s": lower_s, "compile_s": compile_s, "first_s": first_s}
  kernels = kernel_paths(variables)
  result |= {
    "kernels": len(kernels),
    "kernel_params": sum(k.size for _, k in kernels),
    "params": sum(a.size for a in jax.tree.leaves(variables.get("params", variables))),
  }

  if variant == "rewire_params":
    rewire_key = jax.random.key(1)
    compile_events["s"] = 0.0
    rewired, result["rewire_first_s"] = timed(lambda: pw.rewire_params(rewire_key, variables, where=is_rewired_kernel))
    result["rewire_first_compile_s"] = compile_events["s"]
    ready_unix = time.time()
    result["changed"] = count_changed(variables, rewired)
    rewired = None
    _, result["rewire_second_s"] = timed(lambda: pw.rewire_params(rewire_key, variables, where=is_rewired_kernel))
  elif variant == "reference":
    from reference_weight_rewiring import PA_rewiring_np

    start = time.perf_counter()
    torch_weights = [to_torch_layout(k) for _, k in kernels]
    result["convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for w in torch_weights:  # the reference README: for every Conv2d/Linear m, PA_rewiring_np(m.weight)
      PA_rewiring_np(w)
    result["reference_s"] = time.perf_counter() - start
    start = time.perf_counter()
    flax_weights = [from_torch_layout(w) for w in torch_weights]
    result["convert_s"] += time.perf_counter() - start
    ready_unix = time.time()
    pairs = zip(kernels, flax_weights, strict=True)
    result["changed"] = sum(not np.array_equal(np.asarray(k), w) for (_, k), w in pairs)
    pairs = zip(kernels, flax_weights, strict=True)
    result["permutation"] = all(np.array_equal(np.sort(np.asarray(k), None), np.sort(w, None)) for (_, k), w in pairs)
  else:
    ready_unix = time.time()
  variables = None  # free it before the warm run
  _, result["warm_s"] = timed(lambda: compiled(key, x))
  return result | {"ready_unix": ready_unix, "imported_unix": imported_unix, "peak_rss_mib": peak_rss_mib()}


def best_of(fn, repeats: int) -> float:
  return min(timed(fn)[1] for _ in range(repeats))


def worker_kernel(args, imported_unix: float) -> dict:
  from oracle import pa_rewire_oracle
  from reference_weight_rewiring import PA_rewiring_np

  n = 128 if args.quick else 768
  w = jax.nn.initializers.he_normal()(jax.random.key(0), (n, n), jnp.float32)
  key = jax.random.key(1)
  rewire = jax.jit(pw.pa_rewire)
  lowered, lower_s = timed(lambda: rewire.lower(key, w))
  compiled, compile_s = timed(lowered.compile)
  _, first_s = timed(lambda: compiled(key, w))
  ready_unix = time.time()
  warm_s = best_of(lambda: compiled(key, w), 3)
  w_np = np.asarray(w)
  oracle_s = best_of(lambda: pa_rewire_oracle(w_np, np.random.default_rng(0)), 2)
  reference_s = best_of(lambda: PA_rewiring_np(np.array(w_np.T, order="C")), 2)  # torch layout (out, in)
  return {
    "n": n,
    "lower_s": lower_s,
    "compile_s": compile_s,
    "first_s": first_s,
    "warm_s": warm_s,
    "oracle_s": oracle_s,
    "reference_s": reference_s,
    "ready_unix": ready_unix,
    "imported_unix": imported_unix,
    "peak_rss_mib": peak_rss_mib(),
  }


def worker(args, imported_unix: float) -> dict:
  result = worker_kernel(args, imported_unix) if args.worker[0] == "kernel768" else worker_model(args, imported_unix)
  return {
    "model": args.worker[0],
    "variant": args.worker[1],
    "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
    "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
  } | result


# ----------------------------------------------------------------------------------------------------- driver


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
  except OSError:
    out = ""
  for line in out.splitlines():
    if line.startswith("Model name:"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or platform.machine()


def parewire_source() -> str:
  """Where ``parewire_jax`` was imported from, and its git commit (with a note if it has uncommitted changes)."""
  package = Path(pw.__file__).resolve().parent

  def git(*cmd):
    return subprocess.run(["git", *cmd], cwd=package, capture_output=True, text=True, check=False).stdout.strip()

  commit = git("rev-parse", "--short", "HEAD")
  if not commit:
    return f"{package} (not a git checkout)"
  dirty = git("status", "--porcelain", "--", ".")
  return f"{package} at commit {commit}" + (" + uncommitted changes" if dirty else "")


def run_cell(args, model: str, variant: str) -> dict:
  """One fresh worker process; the result, or ``{"error": ...}`` where it failed."""
  command = [sys.executable, __file__, "--worker", model, variant, "--llama-layers", str(args.llama_layers)]
  command += ["--quick"] if args.quick else []
  load = os.getloadavg()[0]
  cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
  launch = time.time()
  try:
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)
  except subprocess.TimeoutExpired:
    return {"model": model, "variant": variant, "error": f"timed out after {args.timeout} s", "load": load}
  wall = time.time() - launch
  cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
  if proc.returncode:
    lines = proc.stderr.strip().splitlines()
    return {
      "model": model,
      "variant": variant,
      "error": lines[-1] if lines else f"exit {proc.returncode}",
      "load": load,
    }
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  return result | {
    "wall_s": wall,
    "cpu_s": cpu,
    "startup_s": result.pop("imported_unix") - launch,
    "to_params_s": result.pop("ready_unix") - launch,
    "load": load,
  }


def median_result(results: list[dict]) -> dict:
  """Field by field median over repeats (numbers), else the first repeat's value."""
  if any("error" in r for r in results):
    return next(r for r in results if "error" in r)
  merged = dict(results[0])
  for field, value in results[0].items():
    if isinstance(value, float):
      merged[field] = statistics.median(r[field] for r in results)
    elif isinstance(value, int) and not isinstance(value, bool):  # counts, sizes: the same in every repeat
      merged[field] = statistics.median_low(r[field] for r in results)
  return merged


def user_s(r: dict) -> float:
  """In-process time from calling the init until the rewired parameters are ready (compile included)."""
  total = r["lower_s"] + r["compile_s"] + r["first_s"]
  return total + r.get("rewire_first_s", 0.0) + r.get("reference_s", 0.0) + r.get("convert_s", 0.0)


def warm_user_s(r: dict) -> float | None:
  """The same, everything already compiled (the reference has nothing to compile: its one time)."""
  if r["variant"] == "rewire_params":
    return r["warm_s"] + r["rewire_second_s"]
  return r["warm_s"] + r.get("reference_s", 0.0) + r.get("convert_s", 0.0)


def fmt(value, digits: int = 2) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def ratio(a, b) -> str:
  return "—" if a is None or b is None or b <= 0 else f"{a / b:.2f}×"


def verdict(value: float, target: float, at_most: bool) -> str:
  ok = value <= target if at_most else value >= target
  return "met" if ok else "**not met**"


def report(args, cells: dict, descriptions: dict, started: float, loads: tuple) -> str:
  lines = []
  add = lines.append
  argv = shlex.join(sys.argv[1:])
  add("# Model initialisation with PA-rewired kernels: what users wait for\n")
  add(f"Command: `python benchmarks/bench_model_init.py {argv}`".rstrip() + "\n")
  device = next((r["device"] for r in cells.values() if "device" in r), "?")
  xla_flags = os.environ.get("XLA_FLAGS")
  cache = next((r.get("compilation_cache_dir") for r in cells.values() if "device" in r), None)
  add(
    f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu_model()}, "
    f"{os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
    f"device {device}"
  )
  add(
    f"- jax {jax.__version__}, jaxlib {metadata.version('jaxlib')}, flax {metadata.version('flax')}, "
    f"numpy {np.__version__}, Python {platform.python_version()}; parewire_jax from {parewire_source()}"
  )
  add(
    f"- XLA_FLAGS: {xla_flags!r}"
    if xla_flags
    else "- XLA_FLAGS unset (JAX's defaults; the CLI's CPU-scheduler flag is not applied)"
  )
  add(f"- Persistent compilation cache: {cache or 'off'}; every cell a fresh process, median of {args.repeats}")
  add(
    f"- Load average (1 min) at start {loads[0]:.2f}, at end {os.getloadavg()[0]:.2f} (the machine is shared: "
    f"above {os.cpu_count()} other jobs compete with the measurement); total wall time {time.time() - started:.0f} s, "
    f"CPU time of the workers {sum(r.get('cpu_s', 0.0) for r in cells.values()):.0f} s"
  )
  for model, text in descriptions.items():
    add(f"- {model}: {text}")
  add("")
  add(
    "Times in seconds. *init* = trace+lower + compile + first run (+ the first rewiring call for `rewire_params`, "
    "+ conversion and the reference for `reference`): the in-process time until the parameters are ready. "
    "*to params* = from launching the process until then (start-up and imports included). *warm* = the same "
    "init run again, compiled (+ the second `rewire_params` call / + the reference).\n"
  )
  add(
    "| model | variant | kernels | start-up+import | trace+lower | compile | first run | rewiring 1st (compile) "
    "| rewiring 2nd | init | to params | warm | process wall | process CPU | peak RSS MiB | load |"
  )
  add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for (model, variant), r in cells.items():
    if model == "kernel768":
      continue
    if "error" in r:
      add(f"| {model} | {variant} | failed (below) |" + " |" * 13)
      continue
    if variant == "rewire_params":
      rewiring = f"{r['rewire_first_s']:.2f} ({r['rewire_first_compile_s']:.2f})"
      second = fmt(r["rewire_second_s"])
    elif variant == "reference":
      rewiring, second = f"{r['reference_s']:.2f} (ref.; +{r['convert_s']:.2f} layout)", "—"
    else:
      rewiring = second = "—"
    add(
      f"| {model} | {variant} | {r['kernels']} | {r['startup_s']:.2f} | {r['lower_s']:.2f} | {r['compile_s']:.2f} "
      f"| {r['first_s']:.3f} | {rewiring} | {second} | {user_s(r):.2f} | {r['to_params_s']:.2f} "
      f"| {warm_user_s(r):.3f} | {r['wall_s']:.2f} | {r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['load']:.2f} |"
    )

  for error in sorted({r["error"] for r in cells.values() if "error" in r}):
    failed = ", ".join(f"{m} {v}" for (m, v), r in cells.items() if r.get("error") == error)
    add(f"\nFailed ({failed}): {error}")
  for (model, variant), r in cells.items():
    if "changed" in r:
      check = f", each a permutation of its base draw: {r['permutation']}" if "permutation" in r else ""
      add(f"\nCheck, {model} {variant}: {r['changed']} of {r['kernels']} kernels changed by the rewiring{check}.")
  add("\nRatios to `base` of the same model, same run:\n")
  add("| model | variant | init / base | to params / base | warm / base |")
  add("|---|---|---|---|---|")
  for (model, variant), r in cells.items():
    base = cells.get((model, "base"))
    if model == "kernel768" or variant == "base" or "error" in r or not base or "error" in base:
      continue
    add(
      f"| {model} | {variant} | {ratio(user_s(r), user_s(base))} | {ratio(r['to_params_s'], base['to_params_s'])} "
      f"| {ratio(warm_user_s(r), warm_user_s(base))} |"
    )

  kernel = cells.get(("kernel768", "kernel"))
  if kernel:
    add("\nOne kernel, in one process (`pa_rewire` jitted, warm = best of 3; oracle and reference best of 2):\n")
    if "error" in kernel:
      add(f"failed: {kernel['error']}")
    else:
      n = kernel["n"]
      add(
        "| kernel | compile | first run | pa_rewire warm | tests/oracle.py | reference PA_rewiring_np "
        "| oracle / warm | reference / warm |"
      )
      add("|---|---|---|---|---|---|---|---|")
      add(
        f"| {n}×{n} float32 | {kernel['lower_s'] + kernel['compile_s']:.2f} | {kernel['first_s']:.3f} "
        f"| {kernel['warm_s']:.4f} | {kernel['oracle_s']:.3f} | {kernel['reference_s']:.3f} "
        f"| {ratio(kernel['oracle_s'], kernel['warm_s'])} | {ratio(kernel['reference_s'], kernel['warm_s'])} |"
      )

  add("\nTargets (the issue's; ratios from this run):\n")
  add("| target | path | measured | verdict |")
  add("|---|---|---|---|")
  for model, limit in (("gpt2", 2.5), ("resnet50", 2.0)):
    base = cells.get((model, "base"))
    for variant in ("rewired", "batched"):
      r = cells.get((model, variant))
      if base and r and "error" not in base and "error" not in r:
        value = user_s(r) / user_s(base)
        add(
          f"| {model}: rewired init ≤ {limit}× base (fresh process, compile included) | {variant} "
          f"| {value:.2f}× | {verdict(value, limit, True)} |"
        )
  base, ref = cells.get(("resnet18", "base")), cells.get(("resnet18", "reference"))
  if ref and "error" not in ref:
    r = cells.get(("resnet18", "rewire_params"))
    if r and "error" not in r:
      for label, value, limit in (
        ("fresh process", ref["reference_s"] / r["rewire_first_s"], 5.0),
        ("warm", ref["reference_s"] / r["rewire_second_s"], 10.0),
      ):
        add(
          f"| resnet18: whole-model rewiring ≥ {limit:.0f}× faster than the reference, {label} "
          f"| rewire_params | {value:.2f}× | {verdict(value, limit, False)} |"
        )
    for variant in ("rewired", "batched"):
      r = cells.get(("resnet18", variant))
      if r and "error" not in r and base and "error" not in base:
        fresh, warm = user_s(r) - user_s(base), r["warm_s"] - base["warm_s"]
        for label, value, limit in (("fresh process", fresh, 5.0), ("warm", warm, 10.0)):
          speedup = ref["reference_s"] / value if value > 0 else float("inf")
          add(
            f"| resnet18: whole-model rewiring ≥ {limit:.0f}× faster than the reference, {label} "
            f"| {variant} (its time − base's: {value:.2f} s) | {speedup:.2f}× | {verdict(speedup, limit, False)} |"
          )
  if kernel and "error" not in kernel:
    value = kernel["oracle_s"] / kernel["warm_s"]
    add(
      f"| single {kernel['n']}² kernel warm ≥ 8× the NumPy Algorithm 1 (tests/oracle.py) | pa_rewire "
      f"| {value:.2f}× | {verdict(value, 8.0, False)} |"
    )
  return "\n".join(lines) + "\n"


def driver(args) -> int:
  started, loads = time.time(), os.getloadavg()
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  variants = [v.strip() for v in args.variants.split(",") if v.strip()]
  for name, allowed, given in (("--models", MODELS, models), ("--variants", VARIANTS, variants)):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
      sys.exit(f"{name}: unknown {unknown}; choose from {', '.join(allowed)}")
  cells, descriptions = {}, {}
  for model in models:
    if model == "kernel768":
      plan = ["kernel"]
    else:
      config = model_config(model, args.quick, args.llama_layers)
      descriptions[model] = f"{config['describe']}, base {config['base']}"
      plan = [v for v in variants if v != "reference" or model in RESNETS]
    for variant in plan:
      results = []
      for _ in range(args.repeats):
        results.append(run_cell(args, model, variant))
        done = results[-1]
        status = done.get("error") or f"process wall {done['wall_s']:.1f} s"
        print(f"[{time.time() - started:6.0f} s] {model} {variant}: {status}", file=sys.stderr, flush=True)
        if "error" in done:
          break
      cells[(model, variant)] = median_result(results)
  text = report(args, cells, descriptions, started, loads)
  print(text, end="")
  if args.out:
    Path(args.out).write_text(text)
  return 1 if any("error" in r for r in cells.values()) else 0


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
  parser.add_argument(
    "--variants",
    default=",".join(VARIANTS),
    help="comma-separated, from: " + ", ".join(VARIANTS) + " ('reference' runs for the ResNets only)",
  )
  parser.add_argument("--quick", action="store_true", help="every model shrunk drastically: a CPU smoke check")
  parser.add_argument("--repeats", type=int, default=1, help="fresh processes per cell; the table shows medians")
  parser.add_argument(
    "--llama-layers",
    type=int,
    default=2,
    help="blocks of the LLaMA-shaped stack (default 2, to keep the CPU run short)",
  )
  parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to one worker process")
  parser.add_argument("--out", help="also write the markdown report to this file")
  parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args, time.time())))
    return
  sys.exit(driver(args))


if __name__ == "__main__":
  main()
