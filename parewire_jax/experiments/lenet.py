"""The LeNet of §4.2, fast to train from many seeds at once on XLA:CPU, and its ``nn.Conv`` reference.

§4.2's LeNet is two valid 5×5 convolutions of 20 and 50 filters, each followed
by ReLU and 2×2 max pooling, then fully connected layers of 500 and the
classes (the "800 and 500" of §4.2 on 28×28 inputs). :class:`ConvLeNet` writes
it with ``nn.Conv``; :class:`LeNet` computes the same function, with the same
parameter shapes and the same initial values, in a form that XLA:CPU runs
fast when ``jax.vmap`` maps the training step over init seeds, as the
experiments do (``tests/test_lenet.py`` checks that outputs and gradients agree
within float32 rounding):

* Inside the convolutional part activations are laid out ``(C, H, W, B)``,
  channels first and batch last. A convolution is one matrix product of the
  kernel with the image patches ``(k·k·C, H'·W'·B)`` (im2col as one gather
  whose rows are ``B`` contiguous floats), written so that XLA:CPU's matrix
  kernels take every product of the step without transposing the patches.
  Under ``vmap`` the first convolution, whose patches come from the input
  batch that all seeds share, is one matrix product for all seeds; the
  others are batched over seeds.
* Convolutions and pooling have hand-written gradients (``jax.custom_vjp``):
  XLA:CPU differentiates ``conv_general_dilated`` an order of magnitude
  slower, and the automatic gradients of the patch gather and of the pooling
  are scatters and reductions that it runs slowly.
* Pooling comes before bias and ReLU, on a quarter of the values:
  ``maxpool(relu(a + b)) = relu(maxpool(a) + b)`` holds exactly in floats
  (adding a constant and ReLU are monotone), and so do the gradients, ties
  included.

``LeNet(norm="batch")`` and ``LeNet(norm="layer")`` add a BatchNorm or a
LayerNorm after every convolution and the hidden dense layer, before its
ReLU, for the normalisation axis of the experiments (§4 trains the plain
LeNet, ``norm="none"``). ``benchmarks/bench_lenet.py`` measures the training
step of both and the machine's matrix-product throughput.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

Initializer = jax.nn.initializers.Initializer

LENET_MIN_IMAGE_SIZE = 16  # 16 → conv 12 → pool 6 → conv 2 → pool 1
FORWARD_CHUNK = 128  # images per chunk of an evaluation's convolutions, the training batch of §4.1


def _check_image_size(x: Array) -> None:
  if min(x.shape[1:3]) < LENET_MIN_IMAGE_SIZE:
    raise ValueError(
      f"lenet needs images of at least {LENET_MIN_IMAGE_SIZE}×{LENET_MIN_IMAGE_SIZE} (two valid 5×5 "
      f"convolutions, each followed by 2×2 pooling), got {x.shape[1]}×{x.shape[2]}; use the mlp model."
    )


def patches(x: Array, k: int) -> Array:
  """The ``k×k`` patches of channels-first, batch-last images: ``(C, H, W, B) -> (k·k·C, H', W', B)``.

  Row ``(i·k + j)·C + c`` holds channel ``c`` shifted by ``(i, j)``, the
  row-major order of a flattened ``(k, k, C, N)`` kernel, so a valid
  convolution is ``kernel.reshape(-1, N).T @ patches`` (with ``H' = H - k + 1``).

  >>> x = jnp.arange(2 * 3 * 3 * 1.0).reshape(2, 3, 3, 1)
  >>> p = patches(x, 2)
  >>> p.shape, p[:, 0, 0, 0].tolist()  # rows (i, j, c): x[c, i, j]
  ((8, 2, 2, 1), [0.0, 9.0, 1.0, 10.0, 3.0, 12.0, 4.0, 13.0])
  """
  c, h, w, b = x.shape
  ho, wo = h - k + 1, w - k + 1
  i, j, channel, y, col = np.ix_(range(k), range(k), range(c), range(ho), range(wo))
  rows = (channel * h * w + (y + i) * w + (col + j)).reshape(-1)
  return x.reshape(c * h * w, b)[rows].reshape(k * k * c, ho, wo, b)


def _fold_patches(dp: Array, c: int, k: int) -> Array:
  """The transpose of :func:`patches` (col2im): ``(k·k·C, H', W', B) -> (C, H, W, B)``, overlaps summed."""
  _, ho, wo, b = dp.shape
  dp = dp.reshape(k, k, c, ho, wo, b)
  shifted = [jnp.pad(dp[i, j], ((0, 0), (i, k - 1 - i), (j, k - 1 - j), (0, 0))) for i in range(k) for j in range(k)]
  return sum(shifted[1:], shifted[0])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid(x: Array, kernel: Array, shared_input: bool = False) -> Array:
  """Stride-1 valid convolution of ``(C, H, W, B)`` images with a Flax ``(k, k, C, N)`` kernel: ``(N, H', W', B)``.

  Equal to ``nn.Conv(N, (k, k), padding="VALID", use_bias=False)`` up to
  float summation order, with the activations' axes moved. Its gradient is
  hand-written: a matrix product for each operand and, for the images, the
  patches folded back (:func:`_fold_patches`). Without a gradient
  (evaluation), batches larger than :data:`FORWARD_CHUNK` images are
  convolved chunk by chunk, so that the patches of a large evaluation batch
  for many seeds at once (25× the images for the second convolution) are
  never in memory at once.

  Args:
    x: images ``(C, H, W, B)``.
    kernel: ``(k, k, C, N)``.
    shared_input: ``x`` is the model's input, which ``jax.vmap`` over seeds
      leaves unbatched; only decides how the kernel's gradient is laid out
      for XLA:CPU (one product for all seeds), not its value.
  """
  c, h, w, b = x.shape
  if b <= FORWARD_CHUNK:
    return _conv_forward(x, kernel, shared_input)[0]
  chunks = -(-b // FORWARD_CHUNK)
  x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, chunks * FORWARD_CHUNK - b)))
  x = jnp.moveaxis(x.reshape(c, h, w, chunks, FORWARD_CHUNK), 3, 0)
  y = lax.map(lambda part: _conv_forward(part, kernel, shared_input)[0], x)  # (chunks, N, H', W', chunk)
  return jnp.moveaxis(y, 0, 3).reshape(*y.shape[1:4], -1)[..., :b]


def _conv_forward(x: Array, kernel: Array, shared_input: bool) -> tuple[Array, tuple[Array, Array]]:
  del shared_input  # used by the backward pass only
  p = patches(x, kernel.shape[0])
  # (k·k·C, N) contracted on its first axis: XLA:CPU folds the transpose into the product.
  y = lax.dot_general(kernel.reshape(-1, kernel.shape[-1]), p, (((0,), (0,)), ((), ())))
  return y, (p, kernel)


def _conv_backward(shared_input: bool, residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
  p, kernel = residuals
  k, c, n = kernel.shape[0], kernel.shape[2], kernel.shape[3]
  if shared_input:
    # Patches shared by all seeds: g · Pᵀ is one product for all of them, seeds folded into its rows.
    dkernel = lax.dot_general(g, p, (((1, 2, 3), (1, 2, 3)), ((), ()))).T
  else:
    # P · gᵀ with gᵀ laid out (H', W', B, N) first: left to itself, XLA:CPU would transpose the patches for the
    # seed-batched product instead, k·k·C/N times more data. The barrier keeps it from folding the transpose
    # back into the product.
    g_t = lax.optimization_barrier(jnp.transpose(g, (1, 2, 3, 0)))
    dkernel = lax.dot_general(p, g_t, (((1, 2, 3), (0, 1, 2)), ((), ())))
  dp = lax.dot_general(kernel.reshape(-1, n), g, (((1,), (0,)), ((), ())))
  dx = _fold_patches(dp, c, k)
  # Inside shard_map (seeds sharded over devices) shared images are the same on every device while g is not:
  # their cotangent is the sum over those devices, the transpose of using one value everywhere. Training
  # never reads it, so XLA drops the sum with the rest of dx.
  varying = tuple(_varying_axes(dx) - _varying_axes(p))
  if varying:
    dx = lax.psum(dx, varying)
  return dx, dkernel.reshape(kernel.shape)


def _varying_axes(x: Array) -> frozenset[str]:
  """The shard_map mesh axes along which ``x`` varies (``manual_axis_type.varying`` since jax 0.10, ``vma`` before)."""
  aval = jax.typeof(x)
  manual = getattr(aval, "manual_axis_type", None)
  return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


conv_valid.defvjp(_conv_forward, _conv_backward)


def _windows(y: Array) -> Array:
  c, h, w, b = y.shape
  return y.reshape(c, h // 2, 2, w // 2, 2, b)


@jax.custom_vjp
def max_pool_2x2(y: Array) -> Array:
  """2×2 max pooling, stride 2, of ``(C, H, W, B)`` activations with even ``H`` and ``W``.

  The gradient is shared equally among tied maxima, as that of ``jnp.max``
  (and so of ``nn.max_pool``) is.

  >>> y = jnp.array([[1.0, 2.0], [2.0, 0.0]]).reshape(1, 2, 2, 1)
  >>> max_pool_2x2(y).ravel().tolist(), jax.grad(lambda y: max_pool_2x2(y).sum())(y).ravel().tolist()
  ([2.0], [0.0, 0.5, 0.5, 0.0])
  """
  return _windows(y).max(axis=(2, 4))


def _pool_forward(y: Array) -> tuple[Array, tuple[Array, Array]]:
  m = max_pool_2x2(y)
  return m, (y, m)


def _pool_backward(residuals: tuple[Array, Array], g: Array) -> tuple[Array]:
  y, m = residuals
  hit = _windows(y) == m[:, :, None, :, None]
  share = g / hit.sum(axis=(2, 4), dtype=g.dtype)
  return (jnp.where(hit, share[:, :, None, :, None], 0.0).reshape(y.shape),)


max_pool_2x2.defvjp(_pool_forward, _pool_backward)


def norm_layer(norm: str, train: bool, feature_axis: int, reduction_axes: tuple[int, ...]) -> nn.Module:
  """The normalisation ``norm`` (``"batch"`` or ``"layer"``) of activations with features on ``feature_axis``.

  BatchNorm takes PyTorch's defaults (momentum 0.1 there, 0.9 here; epsilon
  1e-5), as ResNet-18's: batch statistics when ``train``, running averages
  (the ``batch_stats`` collection) otherwise. LayerNorm normalises each
  example over ``reduction_axes``, the feature axis among them. Both scale
  and shift each feature (one scale and one shift per channel of a
  convolution).

  >>> import jax, jax.numpy as jnp
  >>> layer = norm_layer("layer", False, feature_axis=-1, reduction_axes=(-1,))
  >>> y, _ = layer.init_with_output(jax.random.key(0), jnp.arange(6.0).reshape(2, 3))
  >>> [round(float(v), 3) for v in y[0]]
  [-1.225, 0.0, 1.225]
  """
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, axis=feature_axis, momentum=0.9, epsilon=1e-5)
  if norm == "layer":
    return nn.LayerNorm(epsilon=1e-5, reduction_axes=reduction_axes, feature_axes=feature_axis)
  raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}.")


class ConvPoolReLU(nn.Module):
  """One convolutional stage of :class:`LeNet`: valid 5×5 convolution, 2×2 max pooling, bias, ReLU.

  Equals ``max_pool(relu(nn.Conv(features, (5, 5), padding="VALID")(x)))``
  on ``(C, H, W, B)`` activations; its parameters ``kernel (5, 5, C,
  features)`` and ``bias (features,)`` are ``nn.Conv``'s, created in the same
  order. With ``norm`` (``"batch"`` or ``"layer"``, see :func:`norm_layer`)
  the convolution has no bias, the norm's shift takes its place, and the
  stage is ``max_pool(relu(norm(conv(x))))``.
  """

  features: int
  kernel_init: Initializer
  shared_input: bool = False  # see conv_valid
  norm: str = "none"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    kernel = self.param("kernel", self.kernel_init, (5, 5, x.shape[0], self.features), jnp.float32)
    y: Array = conv_valid(x, kernel, self.shared_input)  # custom_vjp hides the return type
    y = y[:, : y.shape[1] // 2 * 2, : y.shape[2] // 2 * 2]  # pooling drops an odd last row and column
    if self.norm == "none":
      bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
      return nn.relu(max_pool_2x2(y) + bias[:, None, None, None])
    # Normalised before pooling, over the whole feature map as after nn.Conv; ReLU then commutes with pooling.
    return nn.relu(max_pool_2x2(norm_layer(self.norm, train, feature_axis=0, reduction_axes=(0, 1, 2))(y)))


class LeNet(nn.Module):
  """The LeNet of §4.2: conv5×5(20) → pool → conv5×5(50) → pool → FC 500 → classes; ReLU everywhere.

  Takes ``(B, H, W, C)`` images like any Flax model and equals
  :class:`ConvLeNet` with the same parameters, whose names here are
  ``PatchConv_0``, ``PatchConv_1`` (the convolutions), ``Dense_0`` and
  ``Dense_1``. On 28×28 inputs the flattened features are 4·4·50 = 800, in
  ``nn.Conv``'s (H, W, C) order.

  ``norm`` ``"batch"`` or ``"layer"`` puts a BatchNorm or LayerNorm
  (:func:`norm_layer`) after both convolutions and ``Dense_0``, before their
  ReLU; those layers then have no bias. ``"none"`` is §4.2's network.

  >>> import jax, jax.numpy as jnp
  >>> variables = jax.eval_shape(LeNet(10, norm="batch").init, jax.random.key(0), jnp.zeros((2, 16, 16, 1)))
  >>> sorted(variables), sorted(variables["batch_stats"])
  (['batch_stats', 'params'], ['BatchNorm_0', 'PatchConv_0', 'PatchConv_1'])
  """

  num_classes: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()
  norm: str = "none"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    _check_image_size(x)
    x = jnp.transpose(x, (3, 1, 2, 0))
    for i, filters in enumerate((20, 50)):
      stage = ConvPoolReLU(filters, self.kernel_init, shared_input=i == 0, norm=self.norm, name=f"PatchConv_{i}")
      x = stage(x, train)
    x = jnp.transpose(x, (3, 1, 2, 0)).reshape(x.shape[-1], -1)
    if self.norm == "none":
      x = nn.relu(nn.Dense(500, kernel_init=self.kernel_init)(x))
    else:
      x = nn.Dense(500, use_bias=False, kernel_init=self.kernel_init)(x)
      x = nn.relu(norm_layer(self.norm, train, feature_axis=-1, reduction_axes=(-1,))(x))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class ConvLeNet(nn.Module):
  """:class:`LeNet` written plainly with ``nn.Conv`` and ``nn.max_pool``: the reference it is tested against.

  Parameter names ``Conv_0``, ``Conv_1``, ``Dense_0``, ``Dense_1``. Slow to
  train on XLA:CPU (see ``benchmarks/bench_lenet.py``), which is why the
  experiments use :class:`LeNet`.
  """

  num_classes: int
  kernel_init: Initializer = jax.nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    _check_image_size(x)
    for filters in (20, 50):
      x = nn.Conv(filters, (5, 5), padding="VALID", kernel_init=self.kernel_init)(x)
      x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(500, kernel_init=self.kernel_init)(x))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
