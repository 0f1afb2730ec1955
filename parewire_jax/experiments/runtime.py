"""How a process that runs experiments is set up: XLA flags, the compilation cache, the cluster, the outputs.

The command line (:mod:`parewire_jax.__main__`) and the tests
(``tests/conftest.py``) share the XLA flags and the cache. The process
options (where outputs go, where data is, the cache, the cluster) are
records of :func:`~parewire_jax.experiments.setting` fields like
the experiments' settings, so the command line derives their options the
same way; none of them changes a result. Flags and cache must be set before JAX creates a
backend: XLA reads ``XLA_FLAGS`` once, and JAX reads its configuration from
the environment when it is imported. Nothing here imports JAX, except to
configure a JAX already imported and to start ``jax.distributed``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys

from parewire_jax._checks import check_int
from parewire_jax.experiments.settings import Settings, setting

# XLA:CPU's concurrency-optimized scheduler (jaxlib 0.10) now and then deadlocks a program: an atlas run's
# vmapped orthogonal initializer (a batched QR) waited forever with every thread idle. Without it the results
# are the same bits (checked on a cell of the atlas), so experiment processes turn it off unless XLA_FLAGS
# says otherwise.
CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def set_xla_flag(flag: str, value: object) -> None:
  """Adds ``flag=value`` to ``XLA_FLAGS`` unless the flag is there already (what the user set wins).

  Takes effect only for a backend JAX has not started yet.

  >>> import os
  >>> os.environ["XLA_FLAGS"] = "--xla_foo=1"
  >>> set_xla_flag("--xla_foo", 2); set_xla_flag("--xla_bar", "false"); os.environ["XLA_FLAGS"]
  '--xla_foo=1 --xla_bar=false'
  >>> del os.environ["XLA_FLAGS"]
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if flag not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {flag}={value}".strip()


def avoid_cpu_scheduler_deadlock() -> None:
  """``CPU_SCHEDULER_FLAG=false`` unless ``XLA_FLAGS`` says otherwise; only before JAX is imported."""
  if "jax" not in sys.modules:
    set_xla_flag(CPU_SCHEDULER_FLAG, "false")


def default_cache_dir() -> str:
  """``$JAX_COMPILATION_CACHE_DIR`` if set, else ``~/.cache/parewire_jax/xla``."""
  return os.environ.get(CACHE_ENV) or str(pathlib.Path.home() / ".cache" / "parewire_jax" / "xla")


def use_compilation_cache(directory: str | os.PathLike | None) -> None:
  """Keeps every program XLA compiles in ``directory`` (``None``: :func:`default_cache_dir`; ``"off"``: nothing).

  A cached program is the one XLA compiled for the same computation, so
  results are the same bits as without the cache. Every program is cached,
  however fast it compiled: the training steps of a run's arms are the
  programs that take longest, and a cached one loads in a fraction of its
  compile time. Before JAX is imported this sets the environment, which child
  processes (test workers, notebook kernels) inherit; after, JAX's config.
  """
  if directory == "off":
    return
  directory = str(directory or default_cache_dir())
  if "jax" in sys.modules:
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return
  os.environ[CACHE_ENV] = directory
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def ensure_writable(out_dir: str | pathlib.Path) -> pathlib.Path:
  """``out_dir``, created if needed, after checking a file can be written there: before any training.

  Raises:
    ValueError: naming ``out_dir`` and why it cannot be written.
  """
  out = pathlib.Path(out_dir)
  probe = out / f".parewire-write-check-{os.getpid()}"  # one per process: several may share out_dir
  try:
    out.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b"")
    probe.unlink(missing_ok=True)
  except OSError as error:
    raise ValueError(f"out_dir {str(out)!r} cannot be written ({error.strerror or error}); choose another.") from None
  return out


@dataclasses.dataclass(frozen=True)
class OutputOptions(Settings):
  """Where a run's outputs go, and whether it resumes the work an interrupted run left there."""

  out: str = setting("runs", "directory the outputs go to")
  resume: bool = setting(
    False, "reuse the work an interrupted run with the same settings saved in --out (finished chunks of seeds, cells)"
  )

  def check(self) -> None:
    ensure_writable(self.out)


@dataclasses.dataclass(frozen=True)
class DataSource(Settings):
  """Where the datasets are."""

  data_dir: str | None = setting(
    None,
    "directory holding <dataset>/ with its files",
    parse=str,
    metavar="DIR",
    none_means="$PAREWIRE_DATA or ~/.cache/parewire_jax",
  )
  download: bool = setting(True, "download a missing dataset; --no-download fails instead")


@dataclasses.dataclass(frozen=True)
class CacheOptions(Settings):
  """Where XLA's compiled programs are kept (:func:`use_compilation_cache`)."""

  compilation_cache: str | None = setting(
    None,
    "keep XLA's compiled programs in DIR and reuse them: the arms of a run share theirs, and a repeated run "
    "compiles nothing; 'off' to disable",
    parse=str,
    metavar="DIR",
    none_means=f"${CACHE_ENV} if set, else ~/.cache/parewire_jax/xla",
  )


@dataclasses.dataclass(frozen=True)
class DistributedOptions(Settings):
  """One process of a multi-host run (``jax.distributed.initialize``); what is not given, JAX detects."""

  distributed: bool = setting(
    False,
    "one process of a multi-host run: call jax.distributed.initialize first; every process runs the same "
    "command, process 0 writes the outputs",
  )
  coordinator_address: str | None = setting(
    None,
    "with --distributed: process 0's address",
    parse=str,
    metavar="HOST:PORT",
    none_means="detected from the cluster environment",
  )
  num_processes: int | None = setting(
    None,
    "with --distributed: the number of processes",
    parse=int,
    metavar="N",
    none_means="detected from the cluster environment",
  )
  process_id: int | None = setting(
    None,
    "with --distributed: this process's index, 0 to N-1",
    parse=int,
    metavar="I",
    none_means="detected from the cluster environment",
  )

  def check(self) -> None:
    given = [name for name in ("coordinator_address", "num_processes", "process_id") if getattr(self, name) is not None]
    if given and not self.distributed:
      raise ValueError(f"{', '.join('--' + name.replace('_', '-') for name in given)}: only read with --distributed.")
    check_int(self.num_processes, "num_processes (--num-processes)", allow_none=True)
    check_int(self.process_id, "process_id (--process-id)", minimum=0, allow_none=True)
    if self.num_processes is not None and self.process_id is not None and self.process_id >= self.num_processes:
      raise ValueError(f"--process-id ({self.process_id}) must be below --num-processes ({self.num_processes}).")

  def start(self) -> None:
    """``jax.distributed.initialize`` with what is given, when ``distributed``; before anything else uses JAX."""
    if not self.distributed:
      return
    import jax

    jax.distributed.initialize(
      coordinator_address=self.coordinator_address, num_processes=self.num_processes, process_id=self.process_id
    )


@dataclasses.dataclass(frozen=True)
class RunOptions(Settings):
  """How a process runs an experiment that trains: outputs, data, cache, cluster. None of it changes results."""

  output: OutputOptions = OutputOptions()
  source: DataSource = DataSource()
  cache: CacheOptions = CacheOptions()
  cluster: DistributedOptions = DistributedOptions()

  def check(self) -> None:
    self.output.check()
    self.cluster.check()


def start(options: Settings) -> None:
  """Sets the process up for ``options`` (any record with ``cache`` and maybe ``cluster``), in the order JAX needs.

  The XLA flags first (before any backend), then ``jax.distributed`` (before
  anything else touches a backend), then the compilation cache.
  """
  avoid_cpu_scheduler_deadlock()
  cluster = getattr(options, "cluster", None)
  if cluster is not None:
    cluster.start()
  use_compilation_cache(options.cache.compilation_cache)  # pyright: ignore[reportAttributeAccessIssue]
