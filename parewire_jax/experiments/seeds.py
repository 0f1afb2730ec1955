"""Many init seeds as one computation: the seed axis of the experiments.

Seed ``s`` initializes with ``jax.random.key(s)`` (:func:`seed_keys`). A
function of one seed runs on all of them through :func:`over_seeds`, as one
``jax.vmap`` or in groups one after the other. Optimizer step counts are the
same for every seed (all take the same steps), so they are kept off the seed
axis (:func:`step_count_mask`, :func:`split_counts`, :func:`merge_counts`):
batched, they would turn LaPerm's periodic synchronisation into one computed
at every step.

The seed axis is also sharded over devices (:func:`seed_mesh`,
:func:`device_shares`): every device trains its own share of the seeds, with
the data replicated, and no device needs another's values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import Mesh

from parewire_jax._checks import check_int

SEED_AXIS = "seeds"
"""The name of the device mesh axis the seeds are sharded over."""


def seed_keys(seeds: Sequence[int]) -> Array:
  """Typed PRNG keys ``jax.random.key(s)`` for the init seeds, stacked.

  >>> seed_keys([0, 1]).shape
  (2,)
  """
  return jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32))


def available_devices(devices: int | None) -> int:
  """The number of devices to shard seeds over: ``devices``, or every device JAX sees when ``None``.

  Every device of every process counts (``jax.devices()``), so a multi-host
  run shards its seeds over all hosts.

  Raises:
    ValueError: ``devices`` is below 1 or above the number of devices.

  >>> available_devices(1)
  1
  """
  available = len(jax.devices())
  devices = check_int(devices, "devices", allow_none=True)
  if devices is None:
    return available
  if devices > available:
    raise ValueError(
      f"devices ({devices}) exceeds the {available} device(s) JAX sees ({jax.default_backend()}); lower devices "
      "(--devices) or leave it unset to use them all."
    )
  return devices


def device_shares(chunk: int, devices: int) -> tuple[int, int]:
  """``(seeds per device, devices used)`` for a chunk of ``chunk`` seeds on at most ``devices`` devices.

  Each device gets ``ceil(chunk / devices)`` seeds, and only as many devices
  as that share needs are used, so the padding (repeats of the chunk's last
  seed, dropped from the results) is less than one share: 9 seeds on 8
  devices are 5 devices of 2 seeds, not 8 devices of 2 with 7 repeats.

  >>> device_shares(9, 8), device_shares(8, 8), device_shares(3, 8), device_shares(30, 1)
  ((2, 5), (1, 8), (1, 3), (30, 1))
  """
  share = -(-chunk // devices)
  return share, -(-chunk // share)


def seed_mesh(devices: int) -> Mesh:
  """A 1-D mesh of the first ``devices`` of ``jax.devices()`` with the axis :data:`SEED_AXIS`.

  >>> seed_mesh(1).axis_names
  ('seeds',)
  """
  return Mesh(np.array(jax.devices()[:devices]), (SEED_AXIS,))


def over_seeds(fn: Callable, seeds_per_vmap: int | None, *, shared_output: bool = False) -> Callable:
  """``fn(per_seed, shared)`` mapped over the leading (seed) axis of ``per_seed``.

  Args:
    fn: a function of one seed's ``per_seed`` tree and a ``shared`` tree.
    seeds_per_vmap: ``None`` vectorizes all seeds in one ``jax.vmap``; an int
      maps groups of that many seeds one after the other
      (``lax.map(..., batch_size=seeds_per_vmap)``).
    shared_output: ``fn`` returns ``(per_seed_output, same)`` where ``same``
      does not depend on the seed; it is returned once, without a seed axis.
  """
  if seeds_per_vmap is None:
    return jax.vmap(fn, in_axes=(0, None), out_axes=(0, None) if shared_output else 0)
  if not shared_output:
    return lambda per_seed, shared: jax.lax.map(lambda p: fn(p, shared), per_seed, batch_size=seeds_per_vmap)

  def mapped(per_seed, shared):
    outputs, same = jax.lax.map(lambda p: fn(p, shared), per_seed, batch_size=seeds_per_vmap)
    return outputs, jax.tree.map(lambda x: x[0], same)  # one copy per seed, all equal

  return mapped


def step_count_mask(opt_state_shapes: Any) -> Any:
  """``True`` at the integer scalars of one seed's optimizer state: step counts.

  optax's and LaPerm's ``count`` fields are the only integer scalars of the
  states of :data:`~parewire_jax.experiments.OPTIMIZERS`. Every
  seed takes the same steps, so they are equal across seeds and are kept out
  of the ``vmap`` over seeds: a ``lax.cond`` on a batched predicate computes
  both branches at every step, which would run LaPerm's synchronisation (a
  sort of every weight vector) at every step instead of every
  ``sync_period``-th.
  """
  return jax.tree.map(lambda x: x.ndim == 0 and jnp.issubdtype(x.dtype, jnp.integer), opt_state_shapes)


def split_counts(mask: Any, opt_state: Any) -> tuple[Any, Any]:
  """``(opt_state without its step counts, the step counts)``, ``None`` in the holes."""
  return (
    jax.tree.map(lambda is_count, x: None if is_count else x, mask, opt_state),
    jax.tree.map(lambda is_count, x: x if is_count else None, mask, opt_state),
  )


def merge_counts(mask: Any, per_seed: Any, counts: Any) -> Any:
  """The optimizer state that :func:`split_counts` took apart."""
  return jax.tree.map(lambda is_count, x, c: c if is_count else x, mask, per_seed, counts)
