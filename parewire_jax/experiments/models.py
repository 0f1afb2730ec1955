"""Models and named kernel initializers of the experiments (§4.1–4.4).

Every kernel of every model is drawn by one initializer chosen by name: a base
initializer of §4.1 (:data:`INITIALIZERS`) in one of the variants of Table 1
(:data:`~parewire_jax.experiments.INIT_VARIANTS`). The variants are built with the core combinators, so a
variant's kernel for a given key is derived from the base draw for that same
key (:func:`parewire_jax.rewired` permutes it; the random searches draw their
candidates from it), which is the paper's "same seeds" pairing. Flax linen
derives one key per parameter from the init key and the parameter's path, so
the same init seed gives every variant the same per-kernel keys.

Biases start at zero and norm scales at one: only kernels are random, so
the init seed changes nothing but kernels (§4.1 varies only the weights' seed).
:func:`kernels` picks them out of a parameter tree. The one exception is the
transformer's token and position embeddings: lookup tables, not weights that
sum inputs into a neuron, so they are no kernels, are drawn by a fixed
``normal(0.02)`` in every variant (the same draw for a given seed) and are
never rewired.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import DTypeLike

from parewire_jax._checks import check_choice, check_int
from parewire_jax.experiments.data import POINTER_VOCABULARY
from parewire_jax.experiments.lenet import LeNet
from parewire_jax.experiments.settings import (
  INIT_VARIANTS,
  INITIALIZERS,
  MODELS,
  NetworkSettings,
  check_norm,
  check_resmlp_hidden,
)
from parewire_jax.initializers import max_strength_variance, min_strength_variance, rewired
from parewire_jax.selection import selected_leaves

Initializer = jax.nn.initializers.Initializer


# Standard deviation of a standard normal truncated to [-3, 3]: dividing by it
# gives the truncated draw the variance of the untruncated one.
_TRUNC3_STD = math.sqrt(1.0 - 6.0 * math.exp(-4.5) / math.sqrt(2.0 * math.pi) / math.erf(3.0 / math.sqrt(2.0)))


def _fan_in(shape) -> int:
  # Flax kernels: (..., c_in, c_out); fan-in is everything but the last axis, as
  # in PyTorch's conv (c_in·kh·kw) and linear (in_features) layers.
  return math.prod(shape[:-1])


def kaiming_truncated_normal(dtype: DTypeLike = jnp.float32) -> Initializer:
  """Kaiming-normal (fan-in, gain √2) truncated at ±3σ, variance kept at 2/fan_in (§4.1).

  ``jax.nn.initializers.variance_scaling(..., "truncated_normal")`` truncates
  at ±2σ, so the ±3σ version is built here from
  :func:`jax.random.truncated_normal` divided by the truncated standard
  deviation.

  >>> import jax
  >>> w = kaiming_truncated_normal()(jax.random.key(0), (400, 300))
  >>> bool(abs(w).max() <= 3 * (2 / 400) ** 0.5 / 0.9865)
  True
  """

  default_dtype = dtype

  def init(key: Array, shape: Sequence[int], dtype: DTypeLike | None = None, out_sharding: Any = None) -> Array:
    del out_sharding  # single-device experiments
    std = math.sqrt(2.0 / _fan_in(shape)) / _TRUNC3_STD
    draw = jax.random.truncated_normal(key, -3.0, 3.0, shape, jnp.float32) * std
    return draw.astype(default_dtype if dtype is None else dtype)

  return init


def base_initializer(name: str) -> Initializer:
  """The base initializer ``name`` of §4.1 (one of :data:`INITIALIZERS`).

  ``kaiming_normal`` and ``kaiming_uniform`` are PyTorch's ``kaiming_*_``
  defaults (fan-in, ReLU gain √2: variance 2/fan_in); ``truncated_normal`` is
  ``kaiming_truncated_normal``; ``orthogonal`` has gain 1 and treats a
  convolution kernel as the matrix (kh·kw·c_in, c_out). ``normal_0.02`` is not
  the paper's: N(0, 0.02²), the kernels of BERT, GPT-2 and LLaMA.

  >>> import jax
  >>> base_initializer("kaiming_normal")(jax.random.key(0), (3, 3)).shape
  (3, 3)
  """
  check_choice(name, INITIALIZERS, "init")
  if name == "kaiming_normal":
    return jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
  if name == "kaiming_uniform":
    return jax.nn.initializers.variance_scaling(2.0, "fan_in", "uniform")
  if name == "truncated_normal":
    return kaiming_truncated_normal()
  if name == "normal_0.02":
    return jax.nn.initializers.normal(0.02)
  return jax.nn.initializers.orthogonal()


def kernel_initializer(init: str, variant: str = "base", *, num_draws: int = 100) -> Initializer:
  """Initializer ``init`` in ``variant`` (Table 1's rows), for Flax kernels.

  Args:
    init: one of :data:`INITIALIZERS`.
    variant: ``base`` (the initializer itself), ``rewired`` (PA rewiring,
      §3.3), ``min_sv`` / ``max_sv`` (the lowest / highest strength variance
      among ``num_draws`` draws, §4.2), ``rewired_scale_free`` (PA rewiring
      with the draws computed from the kernel at Kaiming scale,
      ``rewired(base, scale_free=True)``: the same as ``rewired`` for a
      Kaiming-scale kernel, stronger for small weights).
    num_draws: candidates of the random searches (the paper's 100).

  >>> import jax, jax.numpy as jnp
  >>> key = jax.random.key(0)
  >>> w = kernel_initializer("orthogonal", "rewired")(key, (16, 8))
  >>> b = kernel_initializer("orthogonal", "base")(key, (16, 8))
  >>> bool((jnp.sort(w.ravel()) == jnp.sort(b.ravel())).all())
  True
  """
  base = base_initializer(init)
  check_choice(variant, INIT_VARIANTS, "variant")
  if variant == "base":
    return base
  if variant == "rewired":
    return rewired(base)
  if variant == "rewired_scale_free":
    return rewired(base, scale_free=True)
  if variant == "min_sv":
    return min_strength_variance(base, num_draws)
  return max_strength_variance(base, num_draws)


class MLP(nn.Module):
  """Fully connected ReLU network on flattened inputs."""

  num_classes: int
  hidden: Sequence[int] = (256, 256)
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train  # no train/eval difference
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, kernel_init=self.kernel_init)(x))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class ResMLP(nn.Module):
  """Residual MLP on flattened inputs: a projection to ``width``, ``blocks`` residual blocks, the classifier.

  Each block adds ``Dense(relu(Dense(h)))`` (both ``width`` wide) to its
  input ``x``, where ``h`` is ``x``, or ``LayerNorm(x)`` with
  ``norm="layer"`` (pre-LayerNorm, which then also normalises the classifier's
  input). Every Dense is a kernel drawn by ``kernel_init``.

  >>> import jax, jax.numpy as jnp
  >>> params = jax.eval_shape(ResMLP(10, width=32, blocks=3).init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
  >>> len(kernels(params)), params["Dense_0"]["kernel"].shape
  (8, (64, 32))
  """

  num_classes: int
  width: int = 256
  blocks: int = 2
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  norm: str = "none"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train  # no train/eval difference
    x = nn.Dense(self.width, kernel_init=self.kernel_init)(x.reshape(x.shape[0], -1))
    for _ in range(self.blocks):
      h = nn.LayerNorm(epsilon=1e-5)(x) if self.norm == "layer" else x
      h = nn.relu(nn.Dense(self.width, kernel_init=self.kernel_init)(h))
      x = x + nn.Dense(self.width, kernel_init=self.kernel_init)(h)
    if self.norm == "layer":
      x = nn.LayerNorm(epsilon=1e-5)(x)
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


EMBEDDING_INIT = jax.nn.initializers.normal(0.02)


class SelfAttention(nn.Module):
  """Multi-head self-attention whose query, key, value and output projections are ``(d, d)`` Dense kernels.

  Written with plain ``nn.Dense`` rather than ``nn.MultiHeadDotProductAttention``
  (whose kernels are ``(d, heads, d / heads)``): each projection is then one
  matrix whose columns are its output neurons, the layout rewiring acts on.
  """

  num_heads: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x: Array) -> Array:
    batch, length, width = x.shape
    head_width = width // self.num_heads

    def project(name: str) -> Array:
      y = nn.Dense(width, kernel_init=self.kernel_init, name=name)(x)
      return y.reshape(batch, length, self.num_heads, head_width)

    query, key, value = project("query"), project("key"), project("value")
    weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", query, key) / math.sqrt(head_width), axis=-1)
    mixed = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, length, width)
    return nn.Dense(width, kernel_init=self.kernel_init, name="out")(mixed)


class Transformer(nn.Module):
  """A small pre-LayerNorm transformer encoder that classifies a token sequence from its first position.

  Token embedding plus a learned position embedding (both ``normal(0.02)``,
  see the module docstring), ``num_layers`` blocks of ``x + attention(LN(x))``
  and ``x + MLP(LN(x))`` (GELU, hidden ``mlp_ratio · d_model``), a final
  LayerNorm, and the classifier on position 0, where the pointer task puts
  the token that says which position to read. The attention projections and
  the MLP's two layers are kernels drawn by ``kernel_init``.

  >>> import jax, jax.numpy as jnp
  >>> params = jax.eval_shape(Transformer(8).init, jax.random.key(0), jnp.zeros((1, 9), jnp.int32))["params"]
  >>> len(kernels(params)), params["Embed_0"]["embedding"].shape, params["position_embedding"].shape
  (13, (16, 48), (9, 48))
  """

  num_classes: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  vocabulary_size: int = POINTER_VOCABULARY
  d_model: int = 48
  num_layers: int = 2
  num_heads: int = 4
  mlp_ratio: int = 4

  @nn.compact
  def __call__(self, tokens: Array, train: bool = False) -> Array:
    del train  # no dropout: no train/eval difference
    x = nn.Embed(self.vocabulary_size, self.d_model, embedding_init=EMBEDDING_INIT)(tokens)
    x = x + self.param("position_embedding", EMBEDDING_INIT, (tokens.shape[1], self.d_model), jnp.float32)
    for _ in range(self.num_layers):
      x = x + SelfAttention(self.num_heads, self.kernel_init)(nn.LayerNorm(epsilon=1e-5)(x))
      h = nn.gelu(nn.Dense(self.mlp_ratio * self.d_model, kernel_init=self.kernel_init)(nn.LayerNorm(epsilon=1e-5)(x)))
      x = x + nn.Dense(self.d_model, kernel_init=self.kernel_init)(h)
    x = nn.LayerNorm(epsilon=1e-5)(x[:, 0])
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class BasicBlock(nn.Module):
  """ResNet basic block (two 3×3 convolutions) with BatchNorm."""

  features: int
  strides: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    def norm() -> nn.Module:
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)

    def conv(f: int, k: tuple[int, int], s: int) -> nn.Module:
      pad = (k[0] // 2, k[0] // 2)
      return nn.Conv(f, k, (s, s), padding=[pad, pad], use_bias=False, kernel_init=self.kernel_init)

    y = nn.relu(norm()(conv(self.features, (3, 3), self.strides)(x)))
    y = norm()(conv(self.features, (3, 3), 1)(y))
    if self.strides != 1 or x.shape[-1] != self.features:
      x = norm()(conv(self.features, (1, 1), self.strides)(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """CIFAR ResNet-18 (§4.4): 3×3 stem without pooling, 4 stages of 2 basic blocks."""

  num_classes: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    x = nn.Conv(64, (3, 3), padding=[(1, 1), (1, 1)], use_bias=False, kernel_init=self.kernel_init)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x))
    for stage, features in enumerate((64, 128, 256, 512)):
      for block in range(2):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(features, strides, self.kernel_init)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


def kernels(params: Any, *, seed_axis: bool = False) -> dict[str, Any]:
  """The kernels of a parameter tree by path, e.g. ``"Dense_0/kernel"``, in flattening order.

  Kernels are the weights with a strength: the leaves that the package's one
  selection rule selects by default (:mod:`parewire_jax.selection`: the
  kernels of dense and convolution layers), so not the transformer's token
  and position embeddings (lookup tables, no neuron sums their rows), nor
  biases and norm scales.

  Args:
    params: a parameter tree (``variables["params"]``) of arrays or
      ``jax.ShapeDtypeStruct``.
    seed_axis: every leaf has a leading seed axis (one row per init seed).
      Which leaves are kernels is then decided on one seed's shapes, since a
      batched bias is 2-D.

  >>> import jax.numpy as jnp
  >>> params = {"Dense_0": {"bias": jnp.zeros(2), "kernel": jnp.ones((3, 2))}}
  >>> batched = jax.tree.map(lambda x: jnp.stack([x, x]), params)
  >>> list(kernels(params)), list(kernels(batched, seed_axis=True))
  (['Dense_0/kernel'], ['Dense_0/kernel'])
  """
  one_seed = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), params) if seed_axis else params
  leaves = dict(jax.tree_util.tree_flatten_with_path(params)[0])
  names = {path: jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in selected_leaves(one_seed)}
  return {name: leaves[path] for path, name in names.items()}


def build_model(
  name: str,
  num_classes: int,
  kernel_init: Initializer,
  *,
  mlp_hidden: Sequence[int] = (256, 256),
  norm: str = "none",
) -> nn.Module:
  """Model ``name`` (one of :data:`MODELS`) whose every kernel uses ``kernel_init``.

  ``mlp_hidden`` gives the hidden widths of ``mlp``, and the residual blocks
  of ``resmlp`` (one width, repeated once per block). ``norm`` is one of the
  normalisations the model has (``settings.MODEL_NORMS``): ``lenet`` takes
  ``"batch"`` or ``"layer"``, ``resmlp`` ``"layer"``. ``transformer`` takes
  the pointer task's token sequences (``load_dataset("pointer")``).

  >>> import jax, jax.numpy as jnp
  >>> model = build_model("lenet", 10, kernel_initializer("kaiming_normal"))
  >>> params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  >>> params["PatchConv_1"]["kernel"].shape, params["Dense_0"]["kernel"].shape
  ((5, 5, 20, 50), (800, 500))
  >>> build_model("resmlp", 10, kernel_initializer("orthogonal"), mlp_hidden=(64, 64, 64), norm="layer").blocks
  3
  """
  check_choice(name, MODELS, "model")
  check_int(num_classes, "num_classes", minimum=2)
  check_norm(norm, name)
  if name == "resmlp":
    check_resmlp_hidden(mlp_hidden)
  builders: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: MLP(num_classes, tuple(mlp_hidden), kernel_init),
    "lenet": lambda: LeNet(num_classes, kernel_init, norm),
    "resnet18": lambda: ResNet18(num_classes, kernel_init),
    "resmlp": lambda: ResMLP(num_classes, mlp_hidden[0], len(mlp_hidden), kernel_init, norm),
    "transformer": lambda: Transformer(num_classes, kernel_init),
  }
  return builders[name]()


def build_network(
  network: NetworkSettings, num_classes: int, variant: str = "base", *, num_draws: int = 100
) -> nn.Module:
  """The model ``network`` describes, every kernel drawn by its initializer in ``variant``.

  :func:`build_model` with ``kernel_initializer(network.init, variant,
  num_draws=num_draws)``: what ``compare`` trains for each variant and
  ``laperm`` for each arm.

  >>> from parewire_jax.experiments import NetworkSettings
  >>> build_network(NetworkSettings(model="mlp", mlp_hidden=(32,)), 10, "rewired").hidden
  (32,)
  """
  kernel_init = kernel_initializer(network.init, variant, num_draws=num_draws)
  return build_model(network.model, num_classes, kernel_init, mlp_hidden=network.mlp_hidden, norm=network.norm)
