"""Which leaves of a parameter tree an operation acts on: one rule for the whole package.

Every function that takes a tree (:func:`parewire_jax.rewire_params`,
:func:`parewire_jax.laperm`, :func:`parewire_jax.random_prune`, the
diagnostics, the experiments) selects its leaves the same way:

    a leaf is selected  ⇔  ``where(path, leaf)``  and  the operation can act on it

``where=None`` means :func:`~parewire_jax.is_weight_matrix`. What an operation can act on is
its *eligibility*: a weight matrix (a floating array with ``ndim >= 2``) for
rewiring, LaPerm, pruning and ranking distances; any floating array for
:func:`parewire_jax.weight_deviation`. So ``where`` only ever narrows, and can
be written about names alone (``lambda path, x: "embed" not in
jax.tree_util.keystr(path)``): a bias it also matches is left alone, not an
error. ``where`` is called only on the leaves the operation can act on, once
each, at trace time, and must return a Python bool. Unselected leaves are
returned as the very same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

KeyPath = tuple[Any, ...]
Where = Callable[[KeyPath, Any], bool]


def _is_array(leaf: Any) -> bool:
  return isinstance(leaf, (jax.Array, np.ndarray, jax.ShapeDtypeStruct))


def is_floating_array(path: KeyPath, leaf: Any) -> bool:
  """Any floating array (or ``jax.ShapeDtypeStruct``), whatever its rank."""
  del path
  return _is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating)


def is_weight_matrix(path: KeyPath, leaf: Any) -> bool:
  """The default selection: every floating array with ``ndim >= 2``.

  Biases, norms, integer leaves and non-array leaves (e.g. an Equinox module's
  activation function) are left out. Shapes (``jax.ShapeDtypeStruct``) are
  judged like the arrays they describe.

  >>> import jax.numpy as jnp
  >>> is_weight_matrix((), jnp.zeros((3, 4))), is_weight_matrix((), jnp.zeros(4))
  (True, False)
  """
  return is_floating_array(path, leaf) and len(leaf.shape) >= 2


def check_where(where: Where | None) -> Where:
  """``where`` itself if it is callable, :func:`is_weight_matrix` for ``None``."""
  if where is None:
    return is_weight_matrix
  if not callable(where):
    raise ValueError(f"where must be None or a callable (path, leaf) -> bool, got {where!r}.")
  return where  # its results are checked to be bools where they are used (select)


def select(tree: Any, where: Where | None = None, *, eligible: Where = is_weight_matrix) -> Any:
  """A tree of Python bools like ``tree``: ``True`` at the selected leaves.

  Args:
    tree: any pytree.
    where: ``(path, leaf) -> bool``; ``None`` selects the weight matrices.
    eligible: what the calling operation can act on.

  Raises:
    ValueError: if ``where`` is neither ``None`` nor callable, or returns
      anything but a Python (or NumPy) bool.

  >>> import jax.numpy as jnp
  >>> select({"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}, lambda path, x: True)
  {'bias': False, 'kernel': True}
  """
  where = check_where(where)

  def choose(path: KeyPath, leaf: Any) -> bool:
    if not eligible(path, leaf):
      return False  # where never sees a leaf the operation cannot act on
    chosen = where(path, leaf)
    if not isinstance(chosen, (bool, np.bool_)):
      raise ValueError(
        "where must return a Python bool (it runs at trace time, once per leaf); got "
        f"{type(chosen).__name__} for leaf {jax.tree_util.keystr(path)}."
      )
    return bool(chosen)

  return jax.tree_util.tree_map_with_path(choose, tree)


def selected_leaves(tree: Any, where: Where | None = None, *, eligible: Where = is_weight_matrix) -> list:
  """``[(path, leaf), ...]`` of the selected leaves, in flattening order.

  >>> import jax.numpy as jnp
  >>> [jax.tree_util.keystr(p) for p, _ in selected_leaves({"w": jnp.ones((2, 2)), "b": jnp.ones(2)})]
  ["['w']"]
  """
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  chosen = jax.tree_util.tree_leaves(select(tree, where, eligible=eligible))
  return [path_leaf for path_leaf, keep in zip(flat, chosen, strict=True) if keep]
