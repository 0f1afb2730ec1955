# pyright: reportMissingImports=false
# (the ecosystem this adapter serves is an optional dependency: the `zoo` extra installs it)
"""Keras 3 on the JAX backend: a rewired initializer, and rewiring the kernels of a built model.

An optional adapter: ``import parewire_jax`` never loads it (nor Keras);
``from parewire_jax import keras_adapter as pwk`` does, and needs Keras 3 with
``KERAS_BACKEND=jax``.

* :class:`Rewired` is a ``keras.initializers.Initializer``: it draws
  ``base(shape, dtype)`` and PA-rewires it (§3.3), so a layer built with
  ``Dense(64, kernel_initializer=Rewired("he_normal", seed=1))`` starts from a
  bit-exact permutation of the base draw. It is seedable like Keras's own
  initializers and serialises with ``get_config``/``from_config``.
* :func:`rewire_model` rewires the kernels of a model that is already built,
  for models that hard-code their initializers (keras-hub backbones). Which
  variables are kernels and over which axes they hold input and output
  neurons is read from each layer: a ``Dense`` kernel is ``(in, out)``, an
  ``EinsumDense`` kernel's axes come from its equation (an attention query
  ``"abc,cde->abde"`` is ``(hidden, heads, head_dim)`` with outputs over
  ``(heads, head_dim)``), a convolution is ``(*kernel, in, out)``, a
  transposed convolution ``(*kernel, out, in)``, a depthwise kernel one small
  matrix per input channel; embedding tables and normalisations are left
  alone (keras-hub's ``ReversibleEmbedding.reverse_embeddings``, the
  untied ``(hidden, vocabulary)`` output projection, is a dense kernel).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import jax
import keras
from jax import Array

from parewire_jax._checks import PASSES, Pass, as_typed_key, check_offset, check_passes
from parewire_jax.axes import AxisSpec, MatrixLayout, einsum_kernel_axes, matrix_layout
from parewire_jax.rewiring import rewire
from parewire_jax.selection import EMBEDDING, KERNEL, TreeRule, is_weight_matrix, kind_by_name, path_names
from parewire_jax.tree import rewire_params

__all__ = ["Rewired", "kernel_layouts", "rewire_model"]


def _check_backend() -> None:
  backend = keras.backend.backend()
  if backend != "jax":
    raise ValueError(
      "parewire_jax.keras_adapter needs Keras's JAX backend (set KERAS_BACKEND=jax before importing keras); this "
      f"Keras runs on {backend!r}."
    )


@keras.saving.register_keras_serializable(package="parewire_jax")
class Rewired(keras.initializers.Initializer):
  """A Keras initializer that PA-rewires what ``base`` draws (Algorithm 1, §3.3).

  ``Rewired(base, seed=s)(shape, dtype)`` is a bit-exact permutation of
  ``base(shape, dtype)``: the same values, each neuron's weights reorganised
  so that input and output strengths shrink towards zero.

  Args:
    base: a Keras initializer or its name or config (``"he_normal"``,
      ``keras.initializers.HeNormal(seed=1)``); it draws with its own seed.
    out_axis: the output-neuron axis or axes of the kernels it draws.
      ``None`` (default): ``-1``, Keras's ``Dense`` ``(in, out)`` and
      ``Conv2D``/``Conv3D`` ``(*kernel, in, out)`` layout, for every rank but
      3; a rank-3 shape is an error, since an initializer cannot tell a
      ``Conv1D`` kernel ``(width, in, out)`` from an ``EinsumDense`` one such as
      an attention query ``(hidden, heads, head_dim)``. Give it for those,
      e.g. ``(1, 2)`` for ``"abc,cde->abde"``
      (:func:`parewire_jax.einsum_kernel_axes` reads it from the equation),
      ``-1`` for a ``Conv1D``, ``-2`` for a ``Conv*Transpose`` kernel.
    batch_axis: axes indexing independent matrices.
    passes, offset: as in :func:`parewire_jax.pa_rewire`.
    seed: the rewiring seed, as Keras's initializers take it: an int (every
      call rewires the same way, like a seeded Keras initializer), ``None``
      (a seed drawn once, at construction) or a ``keras.random.SeedGenerator``
      (advanced by every call).

  Raises:
    ValueError: for bad ``passes`` or ``offset`` (at construction); on a
      backend other than JAX, or for axes that do not fit the shape (at call).

  >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +SKIP
  >>> init = Rewired(keras.initializers.HeNormal(seed=1), seed=2)  # doctest: +SKIP
  >>> layer = keras.layers.Dense(64, kernel_initializer=init)  # doctest: +SKIP
  """

  def __init__(
    self,
    base: Any = "glorot_uniform",
    *,
    out_axis: AxisSpec | None = None,
    batch_axis: AxisSpec = (),
    passes: Sequence[Pass] = PASSES,
    offset: float = 1.0,
    seed: int | keras.random.SeedGenerator | None = None,
  ):
    self.base = keras.initializers.get(base)
    if self.base is None:
      raise ValueError(f"base must be a Keras initializer, its name or its config; got {base!r}.")
    self.out_axis = tuple(out_axis) if isinstance(out_axis, Sequence) else out_axis
    self.batch_axis = tuple(batch_axis) if isinstance(batch_axis, Sequence) else batch_axis
    self.passes = check_passes(passes)
    self.offset = check_offset(offset)
    if seed is not None and not isinstance(seed, (int, keras.random.SeedGenerator)):
      raise ValueError(f"seed must be None, an int or a keras.random.SeedGenerator, got {seed!r}.")
    self._init_seed = seed
    self.seed = seed if seed is not None else random.randint(1, 2**31 - 1)

  def _key(self) -> Array:
    seed: Any = self.seed
    if isinstance(seed, keras.random.SeedGenerator):
      return jax.random.wrap_key_data(seed.next())
    return jax.random.key(seed)

  def __call__(self, shape: Sequence[int], dtype: Any = None) -> Array:
    _check_backend()
    out_axis = self.out_axis
    if out_axis is None:
      if len(shape) == 3:
        raise ValueError(
          f"Rewired was asked for a rank-3 kernel {tuple(shape)} without out_axis: a Conv1D kernel (width, in, out) "
          "or an EinsumDense kernel such as (hidden, heads, head_dim)? Pass out_axis (e.g. "
          "parewire_jax.einsum_kernel_axes(equation)[0], or -1 for a Conv1D)."
        )
      out_axis = -1
    matrix_layout(shape, out_axis, self.batch_axis)
    w = self.base(shape, dtype=dtype)
    key = self._key()
    return rewire(key, w, out_axis=out_axis, batch_axis=self.batch_axis, passes=self.passes, offset=self.offset)

  def get_config(self) -> dict[str, Any]:
    return {
      "base": keras.initializers.serialize(self.base),
      "out_axis": list(self.out_axis) if isinstance(self.out_axis, tuple) else self.out_axis,
      "batch_axis": list(self.batch_axis) if isinstance(self.batch_axis, tuple) else self.batch_axis,
      "passes": list(self.passes),
      "offset": self.offset,
      "seed": keras.saving.serialize_keras_object(self._init_seed),
    }

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> Rewired:
    config = dict(config)
    seed = config.get("seed")
    if isinstance(seed, dict):
      config["seed"] = keras.saving.deserialize_keras_object(seed)
    return cls(**config)


# --------------------------------------------------------------------------- built models


def _layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
  # Layer._flatten_layers is how Keras itself walks nested layers (quantize, summaries); there is no public walk.
  return list(model._flatten_layers(include_self=True, recursive=True))


def _layer_layout(layer: keras.layers.Layer, name: str, shape: tuple[int, ...]) -> tuple[str | None, Any]:
  """``(kind, (out_axes, batch_axes))`` of the variable ``name`` of ``layer``, or ``(kind, None)`` for no kernel."""
  ndim = len(shape)
  layers = keras.layers
  if name.startswith("lora_"):
    return None, None  # LoRA adapters: not the layer's kernel
  if isinstance(layer, layers.EinsumDense) and name == "kernel":
    out, batch = einsum_kernel_axes(layer.equation, operand=1)
    return KERNEL, (out, batch)
  if isinstance(layer, layers.Dense) and name == "kernel":
    return KERNEL, ((ndim - 1,), ())
  if isinstance(layer, layers.Embedding):
    if name == "reverse_embeddings":  # keras-hub's ReversibleEmbedding, untied: inputs @ (hidden, vocabulary)
      return KERNEL, ((ndim - 1,), ())
    return EMBEDDING, None
  conv_transpose = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
  depthwise = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)
  separable = (layers.SeparableConv1D, layers.SeparableConv2D)
  if isinstance(layer, conv_transpose) and name == "kernel":
    return KERNEL, ((ndim - 2,), ())
  if (isinstance(layer, depthwise) and name == "kernel") or (
    isinstance(layer, separable) and name == "depthwise_kernel"
  ):
    return KERNEL, ((ndim - 1,), (ndim - 2,))  # one (*kernel, multiplier) matrix per input channel
  if isinstance(layer, separable) and name == "pointwise_kernel":
    return KERNEL, ((ndim - 1,), ())
  if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)) and name == "kernel":
    if getattr(layer, "groups", 1) != 1:
      raise ValueError(
        f"variable {layer.path}/{name}: a grouped convolution (groups={layer.groups}) is {layer.groups} matrices "
        "interleaved in one kernel, which parewire_jax cannot lay out; leave it out with where."
      )
    return KERNEL, ((ndim - 1,), ())
  return None, None


def kernel_layouts(
  model: keras.layers.Layer, *, where: Callable[[Any, Any], bool] | None = None
) -> dict[str, MatrixLayout]:
  """The kernels of a built Keras model, by variable path, as :func:`rewire_model` would rewire them.

  Args:
    model: a built Keras layer or model (JAX backend).
    where: ``None``: the kernels that the layers say (``Dense``,
      ``EinsumDense``, convolutions, keras-hub's untied reverse embedding);
      a variable of another layer is judged by its name
      (:mod:`parewire_jax.selection`), and one it cannot tell is an error.
      Or ``(path, value) -> bool`` narrowing the floating variables with
      ``ndim >= 2`` (``path`` is ``(jax.tree_util.DictKey(variable.path),)``).

  Returns:
    ``{variable.path: MatrixLayout}`` in the order of ``model.weights``.

  Raises:
    ValueError: on a backend other than JAX, for an unbuilt model, a
      variable the default cannot tell, a grouped convolution, or axes that do
      not fit (each message names the variable's path).
  """
  _check_backend()
  if not model.built:
    raise ValueError(f"model {model.name!r} is not built: call it on an input, or model.build(input_shape), first.")
  owners: dict[str, keras.layers.Layer] = {}
  for layer in _layers(model):
    for variable in layer.weights:
      owners.setdefault(variable.path, layer)  # deepest layers come after their parents: keep the last owner
      if variable.path.rpartition("/")[0] == layer.path:
        owners[variable.path] = layer
  rule = TreeRule(None)
  layouts: dict[str, MatrixLayout] = {}
  unknown = []
  for variable in model.weights:
    value = variable.value
    path = (jax.tree_util.DictKey(variable.path),)
    if not is_weight_matrix(path, value):
      continue
    layer = owners.get(variable.path)
    name = variable.path.rpartition("/")[2]
    shape = tuple(value.shape)
    kind, axes = _layer_layout(layer, name, shape) if layer is not None else (None, None)
    axes: Any
    if kind is None and not name.startswith("lora_"):
      kind = kind_by_name(path_names(path))
      if kind == KERNEL:
        axes = (rule.out_axes(path, value), ())
    if where is not None:
      chosen = where(path, value)
      if not isinstance(chosen, bool):
        raise ValueError(f"where must return a Python bool; got {type(chosen).__name__} for {variable.path}.")
      if not chosen:
        continue
      if axes is None:
        axes = (rule.out_axes(path, value), ())
    elif kind is None:
      unknown.append(f"{variable.path} {shape}")
      continue
    elif kind != KERNEL:
      continue
    try:
      layouts[variable.path] = matrix_layout(shape, axes[0], axes[1])
    except ValueError as e:
      raise ValueError(f"variable {variable.path} of shape {shape}: {e}") from None
  if unknown:
    raise ValueError(
      f"cannot tell what these variables are: {', '.join(unknown)}: their layers are no Dense, EinsumDense, "
      "convolution, embedding or normalisation, and their names do not say. Pass where= to choose (see "
      "parewire_jax.selection)."
    )
  return layouts


def rewire_model(
  key: Array,
  model: keras.layers.Layer,
  *,
  where: Callable[[Any, Any], bool] | None = None,
  passes: Sequence[Pass] = PASSES,
  offset: float = 1.0,
  scale_free: bool = False,
) -> dict[str, MatrixLayout]:
  """PA-rewires, in place, the kernels of a built Keras model over their true axes (§3.3).

  Every kernel that :func:`kernel_layouts` finds is assigned a bit-exact
  permutation of itself; other variables (embeddings, norms, biases, the
  optimizer's) are not touched. The variable at ``path`` gets exactly what
  :func:`parewire_jax.rewire_params` gives the leaf ``{path: value}``, so its
  key is :func:`parewire_jax.leaf_key` ``(key, (DictKey(path),))``.

  Args:
    key: a PRNG key.
    model: a built Keras layer or model (JAX backend), e.g. a keras-hub
      backbone built from its config.
    where: as in :func:`kernel_layouts`.
    passes, offset: as in :func:`parewire_jax.pa_rewire`.
    scale_free: passed on to :func:`parewire_jax.rewire_params` when true
      (the draws of Eq. 5 computed at Kaiming scale, for keras-hub's std-0.02
      kernels; needs a parewire_jax whose core has it).

  Returns:
    The layouts of the rewired variables, ``{variable.path: MatrixLayout}``.

  Raises:
    ValueError: as :func:`kernel_layouts`, and for a bad ``key``, ``passes`` or
      ``offset``.
  """
  key = as_typed_key(key)
  passes = check_passes(passes)
  offset = check_offset(offset)
  layouts = kernel_layouts(model, where=where)
  variables = {v.path: v for v in model.weights if v.path in layouts}
  tree = {path: variables[path].value for path in layouts}
  rewired = rewire_params(
    key,
    tree,
    where=lambda path, leaf: True,
    out_axis=lambda path, leaf: layouts[path[0].key].out_axes,
    batch_axis=lambda path, leaf: layouts[path[0].key].batch_axes,
    passes=passes,
    offset=offset,
    **({"scale_free": True} if scale_free else {}),  # the core's option (Eq. 5 at Kaiming scale), passed through
  )
  for path, value in rewired.items():
    variables[path].assign(value)
  return layouts
