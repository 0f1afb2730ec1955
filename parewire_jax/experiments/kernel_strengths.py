"""The experiment behind ``python -m parewire_jax strength``: strength statistics of one kernel shape (§3.2, Fig. 1).

:func:`run_strength` draws kernels of one shape with a base initializer in
every variant (the base draw, rewired, the random searches) and tabulates the
variance, fourth central moment and largest magnitude of their input and
output neuron strengths, mean over seeds (§3.2–3.3, Fig. 1b–c).
"""

from __future__ import annotations

import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from parewire_jax.experiments import models as models_lib, plots, records, tables
from parewire_jax.experiments.runtime import ensure_writable
from parewire_jax.experiments.seeds import seed_keys
from parewire_jax.experiments.settings import StrengthSettings
from parewire_jax.strength import strength_stats

STRENGTH_COLUMNS = ("in σ²", "out σ²", "in μ₄", "out μ₄", "in max abs(s)", "out max abs(s)")
_STATS_FIELDS = ("in_variance", "out_variance", "in_fourth_moment", "out_fourth_moment", "in_max_abs", "out_max_abs")


class StrengthResult(NamedTuple):
  """Outcome of :func:`run_strength`.

  Attributes:
    stats: variant -> column of the table -> mean over seeds.
    per_seed: variant -> :class:`~parewire_jax.StrengthStats` of arrays with one entry per seed.
    table: the markdown table.

  >>> run_strength(StrengthSettings(init="orthogonal", shape=(16, 8), seeds=2)).stats["base"]["in σ²"] > 0
  True
  """

  stats: dict[str, dict[str, float]]
  per_seed: dict[str, Any]
  table: str


def _draws(initializer: models_lib.Initializer, keys: Array, shape: tuple[int, ...]) -> Array:
  """One float32 draw of ``shape`` from ``initializer`` per key, stacked."""
  return jax.jit(jax.vmap(lambda k: initializer(k, shape, jnp.float32)))(keys)


def run_strength(
  settings: StrengthSettings = StrengthSettings(),  # noqa: B008 (frozen)
  *,
  out_dir: str | pathlib.Path | None = None,
) -> StrengthResult:
  """Strength statistics of ``settings.init`` kernels of ``settings.shape`` per variant, mean over seeds (§3.2).

  The kernel is a Flax kernel: the last axis holds the output neurons, all
  others the inputs. Seed ``s`` draws with ``jax.random.key(s)``, so every
  variant of a seed starts from the same base draw. With ``out_dir``, writes
  ``strength.json``, ``strength.md`` and ``strength.png`` (Fig. 1b for seed 0).

  >>> r = run_strength(StrengthSettings(shape=(64, 32), seeds=2))
  >>> r.stats["rewired"]["in σ²"] < r.stats["base"]["in σ²"]
  True
  """
  settings = settings.replace(shape=tuple(settings.shape), variants=tuple(settings.variants))
  settings.check()
  if out_dir is not None:
    ensure_writable(out_dir)
  init, shape = settings.init, settings.shape
  keys = seed_keys(range(settings.seeds))
  stats, per_seed, first_draw = {}, {}, {}
  for variant in settings.variants:
    initializer = models_lib.kernel_initializer(init, variant, num_draws=settings.num_draws)
    draws = _draws(initializer, keys, shape)
    seed_stats = jax.vmap(strength_stats)(draws)
    per_seed[variant] = jax.tree.map(np.asarray, seed_stats)
    means = (float(np.mean(getattr(seed_stats, f))) for f in _STATS_FIELDS)
    stats[variant] = dict(zip(STRENGTH_COLUMNS, means, strict=True))
    first_draw[variant] = np.asarray(draws[0])
  table = f"{init} {shape}: strength statistics, mean over {settings.seeds} seed(s)\n\n" + tables.strength_table(
    stats, STRENGTH_COLUMNS
  )
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    payload = {**settings.asdict(), "mean": stats, "per_seed": per_seed}
    records.write_json(out / "strength.json", payload)
    (out / "strength.md").write_text(table + "\n")
    plots.plot_strength_distributions(first_draw, out / "strength.png", title=f"{init} {shape}, seed 0")
  return StrengthResult(stats, per_seed, table)
