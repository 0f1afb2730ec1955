"""Which leaves of a parameter tree an operation acts on, and how: one rule for the whole package.

Every function that takes a tree (:func:`parewire_jax.rewire_params`,
:func:`parewire_jax.laperm`, :func:`parewire_jax.random_prune`, the
diagnostics, the experiments) selects its leaves the same way:

    a leaf is selected  ⇔  ``where(path, leaf)``  and  the operation can act on it

What an operation can act on is its *eligibility*: a weight matrix (a floating
array with ``ndim >= 2``, :func:`~parewire_jax.is_weight_matrix`) for rewiring, LaPerm,
pruning and ranking distances; any floating array for
:func:`parewire_jax.weight_deviation`. So ``where`` only ever narrows, and can
be written about names alone (``lambda path, x: "encoder" in
jax.tree_util.keystr(path)``): a bias it also matches is left alone, not an
error. ``where`` is called only on the leaves the operation can act on, once
each, at trace time, and must return a Python bool. Unselected leaves are
returned as the very same objects.

**The default, ``where=None``: the kernels of dense and convolution layers.**
The paper rewires the weights of fully connected and convolutional layers
(§3.1: a layer is a bipartite graph of input and output neurons; the reference
implementation loops over PyTorch's ``nn.Linear`` and ``nn.Conv2d``). An
embedding table is a lookup, not a neuron summing its inputs, and a
normalisation scale is no connection at all, so neither is selected. What a
leaf is comes from what the tree tells:

* **the module that owns it**, where the tree holds modules: an Equinox
  ``eqx.nn.Linear``/``Conv*`` weight or an nnx ``Linear``/``LinearGeneral``/
  ``Conv``/``Einsum`` kernel is a kernel, an ``eqx.nn.Embedding`` or
  ``nnx.Embed`` table is not;
* **its name** otherwise (the last name of its path; ``Dict`` keys such as
  Haiku's ``"mlp/~/linear_0"`` or Keras's ``"dense/kernel"`` are split at ``/``
  and ``.``): ``kernel`` (Flax linen and nnx, Hugging Face Flax, Keras),
  ``w`` (Haiku ``Linear``, ``ConvND``) and ``weight`` (Equinox, PyTorch-style
  trees) name kernels, except a ``weight`` whose owner's name says
  embedding (``embed``, ``embedding``, ``embed_tokens``, ``wte``, ``wpe``, …);
  names with an embedding, token or position word (``embedding``,
  ``embeddings``, ``cls_token``, ``pos_embed``, ``position_embeddings``) and
  the parameters of normalisations and biases (``scale``, ``bias``, ``b``,
  ``gamma``, ``beta``, ``offset``, ``mean``, ``var``, …) are not kernels, and
  neither is any leaf but a ``kernel`` or ``w`` whose owner's name says embedding.

A weight matrix the default cannot tell is an error naming its path; pass
``where=is_kernel`` to rewire only the leaves named as kernels, or
``where=is_weight_matrix`` to select every weight matrix (the former
default, of 0.1), or a ``where`` of your own.

**Axes.** :func:`~parewire_jax.kernel_out_axes` is the default ``out_axis`` of
:func:`parewire_jax.rewire_params`: from the owning module where the tree has
one (an ``nnx.LinearGeneral`` kernel ``(*in_features, *out_features)``, an
``nnx.Einsum`` equation, Equinox's ``(out, in, ...)``), else from the
ecosystems' conventions, in this order:

* ``weight`` (Equinox, PyTorch-style): ``(out, in, *kernel)``, output axis ``0``;
* ``kernel`` of ``c_attn``/``c_fc``/``c_proj`` in a tree with a ``c_attn``
  kernel (Hugging Face GPT-2's ``FlaxConv1D``): ``(out, in)``, output axis ``0``;
* a rank-3 ``kernel``/``w`` of ``query``/``key``/``value`` (Flax's
  ``MultiHeadDotProductAttention``/``MultiHeadAttention`` ``DenseGeneral``):
  ``(in, heads, head_dim)``, output axes ``(1, 2)``;
* a rank-3 ``kernel``/``w`` of ``out``/``output``/``attention_output``
  (their output projection): ``(heads, head_dim, out)``, output axis ``2``;
* Haiku's ``w`` of a ``*_transpose`` module: ``(*kernel, out, in)``, output
  axis ``-2``;
* any other ``kernel``/``w`` (dense of rank 2, convolution of rank ≥ 4, or of
  rank 3 when its owner's name says ``conv``): ``(*in_axes, out)``, output
  axis ``-1``.

A rank-3 ``kernel``/``w`` of no attention projection and no convolution (its
owner's name has no ``conv`` and no module tells) could be a ``Conv1D``
``(width, in, out)`` or a ``DenseGeneral`` ``(in, heads, head_dim)``: that is an
error naming its path, never a guess; pass ``out_axis`` (a callable per leaf)
for it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, GetAttrKey

KeyPath = tuple[Any, ...]
Where = Callable[[KeyPath, Any], bool]

# The last name of a kernel's path in each ecosystem.
KERNEL_NAMES = ("kernel", "w", "weight")
# Parameters of normalisations and biases: never kernels, whatever their rank (Haiku's BatchNorm scale is (1, 1, 1, C)).
NORM_AND_BIAS_NAMES = frozenset(
  {
    "bias",
    "b",
    "scale",
    "offset",
    "gamma",
    "beta",
    "mean",
    "var",
    "moving_mean",
    "moving_variance",
    "running_mean",
    "running_var",
  }
)
_EMBEDDING_NAMES = frozenset({"wte", "wpe"})
_EMBEDDING_WORDS = frozenset({"token", "tokens", "pos", "position", "positions", "positional"})
_ATTENTION_INPUT_PROJECTIONS = frozenset({"query", "key", "value"})
_ATTENTION_OUTPUT_PROJECTIONS = frozenset({"out", "attention_output", "output"})
_GPT2_CONV1D = frozenset({"c_attn", "c_fc", "c_proj"})

KERNEL, EMBEDDING, NORM_OR_BIAS = "kernel", "embedding", "normalisation or bias"


def _is_array(leaf: Any) -> bool:
  return isinstance(leaf, (jax.Array, np.ndarray, jax.ShapeDtypeStruct))


def is_floating_array(path: KeyPath, leaf: Any) -> bool:
  """Any floating array (or ``jax.ShapeDtypeStruct``), whatever its rank."""
  del path
  return _is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating)


def is_weight_matrix(path: KeyPath, leaf: Any) -> bool:
  """Every floating array with ``ndim >= 2``: pass ``where=is_weight_matrix`` to select them all.

  This was the default selection of 0.1: embedding tables and
  higher-rank normalisation parameters included. Biases, 1-D norms, integer
  leaves and non-array leaves (e.g. an Equinox module's activation function)
  are left out. Shapes (``jax.ShapeDtypeStruct``) are judged like the arrays
  they describe.

  >>> import jax.numpy as jnp
  >>> is_weight_matrix((), jnp.zeros((3, 4))), is_weight_matrix((), jnp.zeros(4))
  (True, False)
  """
  return is_floating_array(path, leaf) and len(leaf.shape) >= 2


# --------------------------------------------------------------------------- names


def path_names(path: KeyPath) -> tuple[str, ...]:
  """The names along ``path``: attribute names and string dict keys, split at ``/`` and ``.``.

  Sequence indices and integer keys are positions, not names, and are left
  out; so is the ``.value`` attribute that ends the path of an nnx
  ``Variable``'s array.

  >>> from jax.tree_util import DictKey, GetAttrKey, SequenceKey
  >>> path_names((DictKey("mlp/~/linear_0"), DictKey("w")))
  ('mlp', '~', 'linear_0', 'w')
  >>> path_names((GetAttrKey("layers"), SequenceKey(0), GetAttrKey("kernel"), GetAttrKey("value")))
  ('layers', 'kernel')
  """
  names: list[str] = []
  for entry in path:
    if isinstance(entry, DictKey) and isinstance(entry.key, str):
      names.extend(part for part in re.split(r"[/.]", entry.key) if part)
    elif isinstance(entry, GetAttrKey):
      names.append(entry.name)
  if len(names) > 1 and path and isinstance(path[-1], GetAttrKey) and path[-1].name == "value":
    names.pop()
  return tuple(names)


def _words(name: str) -> list[str]:
  """``"PatchConv_1"`` -> ``["patch", "conv"]``; ``"embed_tokens"`` -> ``["embed", "tokens"]``."""
  return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", name)]


def _names_embedding(name: str) -> bool:
  if name.lower() in _EMBEDDING_NAMES:
    return True
  return any(w.startswith("emb") or w in _EMBEDDING_WORDS for w in _words(name))


def kind_by_name(names: Sequence[str]) -> str | None:
  """What the names of a path say its leaf is: ``"kernel"``, ``"embedding"``, ``"normalisation or bias"`` or ``None``.

  >>> kind_by_name(("bert", "embeddings", "word_embeddings", "embedding"))
  'embedding'
  >>> kind_by_name(("vit", "embeddings", "patch_embeddings", "projection", "kernel"))
  'kernel'
  >>> kind_by_name(("embed_tokens", "weight")), kind_by_name(("res_net18", "~", "initial_batchnorm", "scale"))
  ('embedding', 'normalisation or bias')
  >>> kind_by_name(("pairs",)) is None
  True
  """
  if not names:
    return None
  name, owner = names[-1], names[-2] if len(names) > 1 else ""
  if name in ("kernel", "w"):
    return KERNEL  # Flax/Keras embeddings are `embedding(s)`, Haiku's `embeddings`: a kernel is never one
  if owner and _names_embedding(owner):
    return EMBEDDING  # Equinox's Embedding.weight, a PyTorch-style `embed_tokens.weight`, a table under `embed`
  if name == "weight":
    return KERNEL
  if _names_embedding(name):
    return EMBEDDING
  if name in NORM_AND_BIAS_NAMES:
    return NORM_OR_BIAS
  return None


def is_kernel(path: KeyPath, leaf: Any) -> bool:
  """A weight matrix whose path names it a dense or convolution kernel (names only).

  ``kernel`` (Flax, Hugging Face Flax, Keras), ``w`` (Haiku) or ``weight``
  (Equinox, PyTorch-style), and not a ``w``/``weight`` of an embedding (see
  the module docstring). Unlike the default selection (``where=None``) it
  reads no module types and raises for nothing: a weight matrix with another
  name is simply not selected, so ``where=is_kernel`` is the way to rewire the
  named kernels of a tree that also holds matrices the default cannot tell.
  Compose it to narrow further: ``lambda p, x: is_kernel(p, x) and "encoder"
  in jax.tree_util.keystr(p)``.

  >>> import jax.numpy as jnp
  >>> from jax.tree_util import DictKey
  >>> w = jnp.zeros((4, 3))
  >>> is_kernel((DictKey("Dense_0"), DictKey("kernel")), w), is_kernel((DictKey("Embed_0"), DictKey("embedding")), w)
  (True, False)
  """
  return is_weight_matrix(path, leaf) and kind_by_name(path_names(path)) == KERNEL


# --------------------------------------------------------------------------- owning modules


def _module_bases() -> tuple[type, ...]:
  """The module classes whose instances a tree may hold (only of libraries already imported)."""
  bases: list[type] = []
  eqx = sys.modules.get("equinox")
  if eqx is not None:
    bases.append(eqx.Module)
  nnx = sys.modules.get("flax.nnx")
  if nnx is not None:
    bases.append(nnx.Module)
  return tuple(bases)


def owners(tree: Any) -> dict[KeyPath, Any]:
  """The module that directly owns each leaf of ``tree``, for Equinox and nnx modules.

  Keys are leaf paths as :func:`jax.tree_util.tree_flatten_with_path` gives
  them; leaves of no module are absent. Empty unless equinox or flax.nnx was
  imported (a tree cannot hold their modules otherwise).
  """
  bases = _module_bases()
  found: dict[KeyPath, Any] = {}
  if not bases:
    return found

  def walk(node: Any, prefix: KeyPath) -> None:
    is_module = isinstance(node, bases)
    flat = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node and isinstance(x, bases))[0]
    for path, x in flat:
      if x is not node and isinstance(x, bases):
        walk(x, prefix + tuple(path))
      elif is_module:
        found[prefix + tuple(path)] = node

  walk(tree, ())
  return found


class OwnerLayout(NamedTuple):
  """What an owning module says of a leaf: its kind, and for a kernel its output axes (``None``: unknown)."""

  kind: str | None
  out_axes: tuple[int, ...] | None = None


def _qualname(module: Any) -> str:
  cls = type(module)
  return f"{cls.__module__}.{cls.__qualname__}"


def owner_layout(owner: Any, names: Sequence[str], shape: Sequence[int]) -> OwnerLayout:
  """What ``owner`` (an Equinox or nnx module) says of its leaf named ``names[-1]`` of ``shape``."""
  name = names[-1] if names else ""
  eqx = sys.modules.get("equinox")
  if eqx is not None and isinstance(owner, eqx.Module):
    if isinstance(owner, eqx.nn.Embedding):
      return OwnerLayout(EMBEDDING)
    if isinstance(owner, (eqx.nn.Linear, eqx.nn.Conv, eqx.nn.ConvTranspose)) and name == "weight":
      return OwnerLayout(KERNEL, (0,))  # (out, in, *kernel) for all three
    return OwnerLayout(None)
  nnx = sys.modules.get("flax.nnx")
  if nnx is not None and isinstance(owner, nnx.Module) and name in ("kernel", "embedding"):
    if isinstance(owner, nnx.Embed):
      return OwnerLayout(EMBEDDING)
    if isinstance(owner, nnx.LinearGeneral):
      out_features = owner.out_features
      count = len(out_features) if isinstance(out_features, Sequence) else 1
      return OwnerLayout(KERNEL, tuple(range(len(shape) - count, len(shape))))
    if isinstance(owner, nnx.Einsum):
      from parewire_jax.axes import einsum_kernel_axes

      out_axes, _ = einsum_kernel_axes(owner.einsum_str, operand=1)
      return OwnerLayout(KERNEL, out_axes)
    if isinstance(owner, (nnx.Linear, nnx.Conv, nnx.ConvTranspose)):
      return OwnerLayout(KERNEL, (len(shape) - 1,))
  return OwnerLayout(None)


# --------------------------------------------------------------------------- the default rule on a tree


class TreeRule:
  """The default selection and axes of one tree: what its modules and names say of each leaf."""

  def __init__(self, tree: Any):
    self._owners = owners(tree)
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    # Hugging Face's GPT-2 stores its FlaxConv1D kernels (out, in); GPT-Neo's c_fc/c_proj are Dense (in, out).
    self._gpt2 = any(path_names(p)[-2:] in (("c_attn", "kernel"),) for p in paths)

  def owner(self, path: KeyPath) -> OwnerLayout | None:
    owner = self._owners.get(tuple(path))
    return None if owner is None else owner_layout(owner, path_names(path), ())

  def kind(self, path: KeyPath, leaf: Any) -> str | None:
    owner = self._owners.get(tuple(path))
    if owner is not None:
      said = owner_layout(owner, path_names(path), leaf.shape).kind
      if said is not None:
        return said
    return kind_by_name(path_names(path))

  def out_axes(self, path: KeyPath, leaf: Any) -> tuple[int, ...]:
    """The output axes of a selected leaf (:func:`~parewire_jax.kernel_out_axes` with this tree's context)."""
    shape = tuple(leaf.shape)
    ndim = len(shape)
    names = path_names(path)
    owner = self._owners.get(tuple(path))
    if owner is not None:
      said = owner_layout(owner, names, shape)
      if said.out_axes is not None:
        return said.out_axes
    name = names[-1] if names else ""
    owner_name = names[-2] if len(names) > 1 else ""
    owner_words = _words(owner_name)
    if name == "weight":
      return (0,)
    if name == "kernel" and self._gpt2 and owner_name in _GPT2_CONV1D and ndim == 2:
      return (0,)
    if name in ("kernel", "w") and ndim == 3 and owner_name in _ATTENTION_INPUT_PROJECTIONS:
      return (1, 2)
    if name in ("kernel", "w") and ndim == 3 and owner_name in _ATTENTION_OUTPUT_PROJECTIONS:
      return (2,)
    if name == "w" and ndim >= 3 and "transpose" in owner_words:
      return (ndim - 2,)
    if name in ("kernel", "w") and ndim == 3 and "conv" not in owner_words and owner is None:
      raise ValueError(
        f"leaf {jax.tree_util.keystr(tuple(path))} of shape {shape}: a rank-3 kernel of no attention projection "
        "and no convolution; it could be a Conv1D kernel (width, in, out) or a DenseGeneral/LinearGeneral kernel "
        "(in, heads, head_dim), and its names do not say which. Pass out_axis for it, e.g. "
        "out_axis=lambda path, leaf: (1, 2) if ... else -1 (see parewire_jax.selection)."
      )
    return (ndim - 1,)

  def default_selection(self, flat: list[tuple[KeyPath, Any]], eligible: Where) -> list[bool]:
    """``True`` at the kernels among the eligible leaves; a ValueError naming the weight matrices it cannot tell."""
    chosen, unknown = [], []
    for path, leaf in flat:
      if not eligible(path, leaf):
        chosen.append(False)
        continue
      kind = self.kind(path, leaf)
      if kind is None and is_weight_matrix(path, leaf):
        unknown.append(f"{jax.tree_util.keystr(tuple(path))} {tuple(leaf.shape)}")
      chosen.append(kind == KERNEL and is_weight_matrix(path, leaf))
    if unknown:
      shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
      raise ValueError(
        "the default selection (where=None: the kernels of dense and convolution layers) cannot tell what these "
        f"weight matrices are: {shown}. No module owning them and none of their names says kernel (kernel, w, "
        "weight), embedding, token, position, normalisation or bias. Pass where=parewire_jax.is_kernel to select "
        "only the leaves named as kernels, where=parewire_jax.is_weight_matrix to select every weight matrix, or a "
        "where of your own (see parewire_jax.selection)."
      )
    return chosen


def kernel_out_axes(path: KeyPath, leaf: Any) -> tuple[int, ...]:
  """The output axes of a kernel from its path alone (the table of the module docstring).

  :func:`parewire_jax.rewire_params` applies the same rule with the whole
  tree at hand (owning Equinox and nnx modules, GPT-2's ``c_attn``); this
  function is that rule for one leaf, without them. Use it to inspect or
  compose: ``out_axis=lambda p, x: 0 if "mine" in keystr(p) else
  kernel_out_axes(p, x)``.

  Raises:
    ValueError: for a rank-3 kernel whose names say neither attention nor
      convolution (the message names the path).

  >>> import jax.numpy as jnp
  >>> from jax.tree_util import DictKey
  >>> kernel_out_axes((DictKey("query"), DictKey("kernel")), jnp.zeros((64, 4, 16)))
  (1, 2)
  >>> kernel_out_axes((DictKey("Conv_0"), DictKey("kernel")), jnp.zeros((3, 3, 8, 16)))
  (3,)
  """
  return TreeRule(None).out_axes(path, leaf)


def refuse_named_axes(tree: Any) -> None:
  """Raises for penzai's named arrays and variables: their axes have names, and the selection works on positions.

  A penzai ``NamedArray`` orders its data by its axis names, not by a layout
  convention, and a ``pz.Parameter`` is a leaf holding one: neither can be
  read by position without guessing, so every tree operation refuses them
  rather than act on the wrong axes (or silently on nothing).
  """
  named, variables = sys.modules.get("penzai.core.named_axes"), sys.modules.get("penzai.core.variables")
  if named is None and variables is None:
    return
  types = tuple(
    t
    for t in (getattr(named, "NamedArrayBase", None), getattr(variables, "AbstractVariable", None))
    if isinstance(t, type)
  )
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, types))[0]:
    if isinstance(leaf, types):
      raise ValueError(
        f"leaf {jax.tree_util.keystr(tuple(path))} is a penzai {type(leaf).__name__}: its axes are named, and "
        "parewire_jax selects and lays out leaves by position. Rewire penzai weights where they are drawn, with "
        "the penzai initializer of the 'Rewiring models you did not write' guide, which reads each layer's input, "
        "output and parallel axis names."
      )


def check_where(where: Where | None) -> Where | None:
  """``where`` itself if it is callable or ``None`` (the default rule)."""
  if where is None or callable(where):
    return where  # a callable's results are checked to be bools where they are used (select)
  raise ValueError(f"where must be None or a callable (path, leaf) -> bool, got {where!r}.")


def select(tree: Any, where: Where | None = None, *, eligible: Where = is_weight_matrix) -> Any:
  """A tree of Python bools like ``tree``: ``True`` at the selected leaves.

  Args:
    tree: any pytree.
    where: ``(path, leaf) -> bool``; ``None`` selects the kernels of dense
      and convolution layers (the module docstring says how they are told).
    eligible: what the calling operation can act on.

  Raises:
    ValueError: if ``where`` is neither ``None`` nor callable, or returns
      anything but a Python (or NumPy) bool; with ``where=None``, if an
      eligible weight matrix is neither told a kernel nor told something else;
      if the tree holds penzai named arrays (``refuse_named_axes``).

  >>> import jax.numpy as jnp
  >>> select({"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}, lambda path, x: True)
  {'bias': False, 'kernel': True}
  >>> select({"embed": {"embedding": jnp.ones((5, 3))}, "dense": {"kernel": jnp.ones((3, 2))}})
  {'dense': {'kernel': True}, 'embed': {'embedding': False}}
  """
  where = check_where(where)
  refuse_named_axes(tree)
  flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
  if where is None:
    return jax.tree_util.tree_unflatten(treedef, TreeRule(tree).default_selection(flat, eligible))

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

  return jax.tree_util.tree_unflatten(treedef, [choose(path, leaf) for path, leaf in flat])


def selected_leaves(tree: Any, where: Where | None = None, *, eligible: Where = is_weight_matrix) -> list:
  """``[(path, leaf), ...]`` of the selected leaves, in flattening order.

  >>> import jax.numpy as jnp
  >>> [jax.tree_util.keystr(p) for p, _ in selected_leaves({"w": jnp.ones((2, 2)), "b": jnp.ones(2)})]
  ["['w']"]
  """
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  chosen = jax.tree_util.tree_leaves(select(tree, where, eligible=eligible))
  return [path_leaf for path_leaf, keep in zip(flat, chosen, strict=True) if keep]
