"""Whole-model PA rewiring: every dense and convolution kernel of a parameter tree (§3.3, §4).

The paper rewires every layer of a network at initialisation (§3.3, §4.1):
the weights of its fully connected and convolutional layers.
:func:`rewire_params` does that for any pytree of parameters (a plain dict,
Flax linen variables, an ``nnx.State`` or module, an Equinox module, Haiku
params, Hugging Face Flax ``model.params``) in three steps:

1. **Select.** By the package's one selection rule
   (:mod:`parewire_jax.selection`): by default the kernels of dense and
   convolution layers, told by the modules that own them or by their names
   (not embedding tables, not normalisation parameters), or the weight
   matrices for which ``where(path, leaf)`` holds. Each is viewed as
   ``(batch, n_in, n_out)`` matrices with :func:`parewire_jax.as_matrices`
   over its true output axes (by default those the tree says,
   :func:`parewire_jax.kernel_out_axes`); every other leaf is returned as
   the same object.
2. **Key.** A leaf's key is :func:`leaf_key` ``(key, path)``, folded from a
   stable hash of the leaf's path, so a leaf's result depends only on
   ``key``, its path and its value: not on the rest of the tree, its order,
   or how leaves were grouped. Matrix ``b`` of a leaf with batch axes uses
   ``jax.random.split(leaf_key(key, path), num_matrices)[b]``, exactly as
   :func:`parewire_jax.rewire` does.
3. **Group.** Matrices of equal ``(n_in, n_out, dtype)`` are stacked and
   rewired by the one engine, :func:`parewire_jax.rewiring.rewire_stack` (a
   ``vmap``-ed scan), in chunks of at most ``max_group_bytes``. One jitted function is compiled per
   ``(n_in, n_out, dtype, chunk size)`` and reused, so a 32-layer transformer
   compiles as many scans as it has distinct matrix shapes, not 224.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from parewire_jax._checks import (
  PASSES,
  Pass,
  as_typed_key,
  check_axes,
  check_bool,
  check_int,
  check_offset,
  check_passes,
)
from parewire_jax.axes import AxisSpec, MatrixLayout, as_matrices, from_matrices, matrix_layout
from parewire_jax.rewiring import rewire_stack
from parewire_jax.selection import KeyPath, TreeRule, Where, check_where, select

AxesFn = Callable[[KeyPath, Array], AxisSpec | None]

# Used when the device does not report its memory (e.g. the CPU backend).
_FALLBACK_GROUP_BYTES = 256 * 2**20
# A chunk's scan needs its input, its output and XLA temporaries (2x the input
# for both passes on the CPU, per compiled memory_analysis(); a GPU sort's
# scratch space is not measured yet), plus the copies made when stacking and
# unstacking; 16x leaves headroom on top of that.
_WORKSPACE_FACTOR = 16


def leaf_key(key: Array, path: KeyPath | str) -> Array:
  """The rewiring key of the leaf at ``path``, derived from ``key``.

  ``path`` (a key path from :func:`jax.tree_util.tree_flatten_with_path`, or
  its :func:`jax.tree_util.keystr`) is hashed with BLAKE2b to 64 bits, which
  are folded into ``key`` as two 32-bit words. The hash is stable across
  processes and machines (unlike Python's ``hash``), and 64 bits make two
  leaves of one tree sharing a key practically impossible.

  >>> import jax
  >>> path = (jax.tree_util.DictKey("dense"), jax.tree_util.DictKey("kernel"))
  >>> k = jax.random.key(0)
  >>> bool((jax.random.key_data(leaf_key(k, path))
  ...       == jax.random.key_data(leaf_key(k, "['dense']['kernel']"))).all())
  True
  """
  text = path if isinstance(path, str) else jax.tree_util.keystr(tuple(path))
  digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
  high, low = int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")
  return jax.random.fold_in(jax.random.fold_in(key, high), low)


class _LeafMatrices(NamedTuple):
  """A selected leaf, seen as ``layout.num_matrices`` matrices with their keys."""

  index: int  # position among the flattened leaves
  layout: MatrixLayout
  keys: Array  # (num_matrices,) keys, matrix b's key at b


def _leaf_layout(path: KeyPath, leaf, out_axis, batch_axis, rule: TreeRule) -> MatrixLayout:
  """Resolves (possibly per-leaf) axes and validates them for ``leaf``."""
  name = jax.tree_util.keystr(path)
  batch = batch_axis(path, leaf) if callable(batch_axis) else batch_axis
  batch = check_axes(batch, f"batch_axis for leaf {name}", allow_none=True)
  if out_axis is None:
    out = _default_out_axes(path, leaf, () if batch is None else batch, rule)
  else:
    out = out_axis(path, leaf) if callable(out_axis) else out_axis
  out = check_axes(out, f"out_axis for leaf {name}")
  try:
    return matrix_layout(leaf.shape, out, () if batch is None else batch)
  except ValueError as e:
    raise ValueError(f"leaf {name} of shape {tuple(leaf.shape)}: {e}") from None


def _default_out_axes(path: KeyPath, leaf, batch: AxisSpec, rule: TreeRule) -> AxisSpec:
  """The tree's rule applied to the leaf without its batch axes (a stack of layers is judged as one layer)."""
  ndim = len(leaf.shape)
  batch_axes = (batch,) if isinstance(batch, int) else tuple(batch)
  if not all(-ndim <= a < ndim for a in batch_axes):
    return -1  # matrix_layout reports the bad batch axis
  rest = [a for a in range(ndim) if a not in {b % ndim for b in batch_axes}]
  layer = jax.ShapeDtypeStruct(tuple(leaf.shape[a] for a in rest), leaf.dtype)
  return tuple(rest[a] for a in rule.out_axes(path, layer))


def default_group_bytes() -> int:
  """The local device's free memory over the workspace factor, if it reports it.

  With several processes every process must build the same programs, and free
  memory differs between them, so the constant fallback is used there.
  """
  if jax.process_count() > 1:
    return _FALLBACK_GROUP_BYTES
  stats = jax.local_devices()[0].memory_stats()
  if not stats or "bytes_limit" not in stats:
    return _FALLBACK_GROUP_BYTES
  free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  return max(1, free // _WORKSPACE_FACTOR)


def chunk_sizes(total: int, max_size: int) -> list[int]:
  """Splits ``total`` into the fewest chunks of at most ``max_size``, balanced.

  Sizes differ by at most one, so a group compiles at most two chunk shapes
  and no chunk is padded with wasted work.
  """
  num_chunks = -(-total // max_size)
  base, extra = divmod(total, num_chunks)
  return [base + 1] * extra + [base] * (num_chunks - extra)


def _segments(members: list[_LeafMatrices], sizes: list[int]) -> Iterator[list[tuple[_LeafMatrices, int, int]]]:
  """For each chunk, its ``(leaf, lo, hi)`` slices of the group's matrices, in order."""
  queue = [(m, 0) for m in members]
  position = 0
  for size in sizes:
    chunk, need = [], size
    while need:
      member, lo = queue[position]
      hi = min(member.layout.num_matrices, lo + need)
      chunk.append((member, lo, hi))
      need -= hi - lo
      if hi == member.layout.num_matrices:
        position += 1
      else:
        queue[position] = (member, hi)
    yield chunk


def _rewire_group(
  leaves: list,
  members: list[_LeafMatrices],
  max_matrices: int,
  passes: tuple[Pass, ...],
  offset: float,
  scale_free: bool,
) -> dict[int, Array]:
  """Rewires one group chunk by chunk; returns the new leaves by index.

  A leaf's matrices are materialised only while it has matrices left to
  rewire, and a leaf is reassembled as soon as its last chunk is done, so the
  extra memory at any time is about one chunk (plus one partly done leaf).
  """
  sizes = chunk_sizes(sum(m.layout.num_matrices for m in members), max_matrices)
  views: dict[int, Array] = {}
  done: dict[int, list[Array]] = {}
  results: dict[int, Array] = {}
  for chunk in _segments(members, sizes):
    pieces, keys = [], []
    for member, lo, hi in chunk:
      if member.index not in views:
        views[member.index] = as_matrices(leaves[member.index], member.layout.out_axes, member.layout.batch_axes)[0]
      pieces.append(views[member.index][lo:hi])
      keys.append(member.keys[lo:hi])
    stack = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)
    del pieces
    rewired = rewire_stack(
      jnp.concatenate(keys), stack, passes=passes, offset=offset, scale_free=scale_free, loop_on_cpu=True
    )
    del stack
    start = 0
    for member, lo, hi in chunk:
      done.setdefault(member.index, []).append(rewired[start : start + hi - lo])
      start += hi - lo
      if hi == member.layout.num_matrices:
        parts = done.pop(member.index)
        del views[member.index]
        matrices = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
        results[member.index] = from_matrices(matrices, member.layout)
    del rewired  # before the next chunk's stack is built
  return results


def rewire_params(
  key: Array,
  params: Any,
  *,
  where: Where | None = None,
  out_axis: AxisSpec | AxesFn | None = None,
  batch_axis: AxisSpec | AxesFn | None = None,
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
  scale_free: bool = False,
  max_group_bytes: int | None = None,
) -> Any:
  """PA-rewires every dense and convolution kernel of a parameter tree (Algorithm 1, §3.3).

  Selected leaves (by default the kernels of dense and convolution layers;
  see ``where``) are each replaced by a bit-exact permutation of themselves
  with lower neuron-strength variance. Every other leaf (embedding tables,
  norms, biases, integer counters, non-array leaves, and arrays ``where``
  rejects) is returned as the very same object. A selected leaf ``x`` at
  ``path`` becomes exactly::

      rewire(leaf_key(key, path), x, out_axis=..., batch_axis=...,
             passes=passes, offset=offset, scale_free=scale_free)

  whatever else the tree holds, in whatever order; only the work is shared:
  matrices of equal ``(n_in, n_out, dtype)`` from all leaves are rewired
  together by one compiled, ``vmap``-ed scan per chunk.

  Args:
    key: a PRNG key; leaf keys come from :func:`leaf_key`.
    params: any pytree: a dict, Flax linen variables, Hugging Face Flax
      ``model.params``, Haiku params, an ``nnx.State`` (``nnx.split`` →
      ``rewire_params`` → ``nnx.merge``) or nnx module, an Equinox module.
    where: ``None`` (default): the kernels of dense and convolution layers,
      as the paper rewires (§3.1), told by their owning Equinox/nnx modules
      or by their names (``kernel``, ``w``, ``weight``; not embeddings, not
      normalisation parameters); a weight matrix it cannot tell is an error
      naming its path (:mod:`parewire_jax.selection`). Or a callable
      ``(path, leaf) -> bool`` choosing among the weight matrices (floating,
      ``ndim >= 2``): :func:`parewire_jax.is_kernel` for the named kernels
      only, :func:`parewire_jax.is_weight_matrix` for all of them (the
      former default, of 0.1), or your own. It is called once per weight matrix
      and must return a Python bool (shared with LaPerm).
    out_axis: the output-neuron axis or axes. ``None`` (default): as the
      tree says, leaf by leaf (:func:`parewire_jax.kernel_out_axes`: Flax,
      Keras and Haiku ``(..., in, out)``; Equinox and PyTorch-style
      ``weight`` ``(out, in, ...)``; attention ``DenseGeneral`` kernels
      ``(in, heads, head_dim)`` over ``(heads, head_dim)``; an nnx
      ``LinearGeneral``'s ``out_features``; an error naming the path where
      it cannot tell). Or an int or a sequence of ints for every leaf, e.g.
      ``(-2, -1)``, or a callable ``(path, leaf) -> axes``. Axes are counted
      on the whole leaf, batch axes included.
    batch_axis: axes indexing independent matrices, e.g. ``0`` for layers
      stacked by ``nn.scan``/``nnx.vmap``; ``None`` (default) or ``()`` for
      none. An int or sequence applies to every selected leaf; a callable
      ``(path, leaf) -> axes or None`` chooses per leaf. Each matrix joins the
      group of its ``(n_in, n_out, dtype)``.
    passes, offset, scale_free: as in :func:`parewire_jax.pa_rewire`.
    max_group_bytes: the most bytes of matrices stacked into one scan. A
      group larger than this is split into balanced chunks (at most two chunk
      sizes per group); a single matrix larger than it is rewired alone.
      Default: the default device's free memory over 16 (input, output and
      scan temporaries take several times a chunk) where
      ``device.memory_stats()`` reports it, else 256 MiB.

  Returns:
    A tree of the same structure, with the selected leaves rewired.

  Memory: call it outside ``jit`` for the bound to hold: beyond ``params``
  and the result, it holds about one chunk's stack, its scan workspace, and
  at most one leaf's matrices that straddle two chunks. Under ``jit`` it
  still works, but XLA schedules the chunks.

  Raises:
    ValueError: for a bad ``key``, ``where``, ``out_axis``, ``batch_axis``,
      ``passes``, ``offset`` or ``max_group_bytes``, axes that do not fit a
      selected leaf, a weight matrix the default selection cannot tell, or a
      kernel whose output axes the default cannot tell (each message names
      the leaf's path).

  >>> import jax, jax.numpy as jnp
  >>> params = {"dense": {"kernel": jax.random.normal(jax.random.key(0), (12, 8)),
  ...                     "bias": jnp.zeros(8)}}
  >>> new = rewire_params(jax.random.key(1), params)
  >>> new["dense"]["bias"] is params["dense"]["bias"]
  True
  >>> path = (jax.tree_util.DictKey("dense"), jax.tree_util.DictKey("kernel"))
  >>> from parewire_jax import rewire
  >>> alone = rewire(leaf_key(jax.random.key(1), path), params["dense"]["kernel"])
  >>> bool((new["dense"]["kernel"] == alone).all())
  True
  """
  key = as_typed_key(key)
  where = check_where(where)
  check_axes(out_axis, "out_axis", allow_none=True, allow_callable=True)
  check_axes(batch_axis, "batch_axis", allow_none=True, allow_callable=True)
  passes = check_passes(passes)
  offset = check_offset(offset)
  scale_free = check_bool(scale_free, "scale_free")
  check_int(max_group_bytes, "max_group_bytes", allow_none=True)

  paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  chosen = jax.tree_util.tree_leaves(select(params, where))
  rule = TreeRule(params) if out_axis is None else TreeRule(None)
  groups: dict[tuple[int, int, Any], list[_LeafMatrices]] = {}
  for index, ((path, leaf), selected) in enumerate(zip(paths_and_leaves, chosen, strict=True)):
    if not selected:
      continue
    layout = _leaf_layout(path, leaf, out_axis, batch_axis, rule)
    if leaf.size == 0:
      continue  # nothing to move; rewire() returns such arrays as they are
    k = leaf_key(key, path)
    keys = jax.random.split(k, layout.num_matrices) if layout.batch_axes else k[None]
    groups.setdefault((layout.n_in, layout.n_out, jnp.dtype(leaf.dtype)), []).append(_LeafMatrices(index, layout, keys))

  if groups and max_group_bytes is None:
    max_group_bytes = default_group_bytes()
  leaves = [leaf for _, leaf in paths_and_leaves]
  new_leaves = list(leaves)
  for (n_in, n_out, dtype), members in groups.items():
    matrix_bytes = n_in * n_out * dtype.itemsize
    max_matrices = max(1, max_group_bytes // matrix_bytes)
    for index, rewired in _rewire_group(leaves, members, max_matrices, passes, offset, scale_free).items():
      new_leaves[index] = rewired
  return jax.tree_util.tree_unflatten(treedef, new_leaves)
