"""Finished chunks of a multi-seed run, kept on disk so that an interrupted run resumes.

The paper's Table 1 trains 100 seeds of four variants for many epochs (§4.1–4.2):
longer than a Colab session or a batch job's time limit may last. ``train_seeds``
trains seeds in chunks; a :class:`ChunkStore` saves every finished chunk of every
arm as one ``.npz`` file and, when resuming, hands it back instead of training it
again (``ChunkStore.arm(name)`` is what ``train_seeds`` takes).

A chunk is reused only by a run that would have computed it: each file records a
*fingerprint* (the settings that determine training and a digest of the data),
and a file whose fingerprint differs is an error, never silently mixed in.
Files are written to a temporary name and renamed, so a run killed mid-write
leaves no half-written chunk behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from parewire_jax.experiments.data import Dataset
from parewire_jax.experiments.train import TrainResult

# Every TrainResult field is an array, except the optional grad_abs, the layer names and the records (a dict of
# arrays, saved under _RECORD + name).
_ARRAYS = tuple(f for f in TrainResult._fields if f not in ("grad_abs", "layer_names", "records"))
_RECORD = "record:"


def dataset_digest(dataset: Dataset) -> str:
  """A BLAKE2b digest of every split of ``dataset`` (images, labels) and its class count."""
  digest = hashlib.blake2b(digest_size=16)
  for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
    array = np.ascontiguousarray(getattr(dataset, field))
    digest.update(f"{field}{array.dtype.str}{array.shape}".encode())
    # The raw bytes in C order, without a copy (NumPy's stubs lack the buffer protocol hashlib reads).
    digest.update(array.reshape(-1).view(np.uint8))  # pyright: ignore[reportArgumentType]
  digest.update(str(dataset.num_classes).encode())
  return digest.hexdigest()


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
  """Dotted paths of the entries where two nested mappings differ.

  >>> differing_keys({"train": {"learning_rate": 0.1, "epochs": 2}}, {"train": {"learning_rate": 0.2, "epochs": 2}})
  ['train.learning_rate']
  """
  keys = []
  for k in sorted(set(a) | set(b)):
    if isinstance(a.get(k), Mapping) and isinstance(b.get(k), Mapping):
      keys += differing_keys(a[k], b[k], f"{prefix}{k}.")
    elif a.get(k) != b.get(k):
      keys.append(f"{prefix}{k}")
  return keys


class ChunkStore:
  """Saves finished chunks of ``train_seeds`` under ``directory``; loads them back when resuming.

  Args:
    directory: where the chunk files live (created on the first save).
    fingerprint: JSON-serialisable description of everything that determines
      a chunk's training besides the variant and the seeds.
    resume: when false, :meth:`load` finds nothing and every chunk is trained
      (and saved over an older file of the same name).

  ``load`` and ``save`` take the arm (a variant, an optimizer) first;
  :meth:`arm` binds it, for ``train_seeds``' ``chunks``.

  Attributes:
    seconds: variant -> the training time of its chunks, the resumed ones
      included (as measured when they were trained).
    resumed: variant -> the seeds of every chunk loaded instead of trained.

  >>> import tempfile
  >>> from parewire_jax.experiments.train import TrainResult
  >>> curve = np.array([[0.5], [0.6]])
  >>> chunk = TrainResult(np.array([0, 1]), curve, curve, curve, curve, curve, curve, grad_abs=None,
  ...                     layer_names=("w",), init_mean_variance=np.ones(2), init_mean_fourth_moment=np.ones(2),
  ...                     train_curve_loss=curve[..., None], train_curve_acc=curve[..., None])
  >>> with tempfile.TemporaryDirectory() as d:
  ...   ChunkStore(d, {"epochs": 1}).save("base", chunk, seconds=2.0)
  ...   again = ChunkStore(d, {"epochs": 1}, resume=True)
  ...   loaded = again.arm("base").load([0, 1], epochs=1, segments=1)
  >>> loaded.val_acc.tolist(), again.resumed, again.seconds
  ([[0.5], [0.6]], {'base': [[0, 1]]}, {'base': 2.0})
  """

  def __init__(self, directory: str | pathlib.Path, fingerprint: Mapping[str, Any], *, resume: bool = False):
    self.directory = pathlib.Path(directory)
    self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))  # as it reads back from a file
    self.resume = resume
    self.seconds: dict[str, float] = {}
    self.resumed: dict[str, list[list[int]]] = {}

  def path(self, variant: str, seeds: Sequence[int]) -> pathlib.Path:
    """The file of the chunk of ``variant`` with init seeds ``seeds`` (consecutive or not)."""
    seeds = [int(s) for s in seeds]
    consecutive = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    label = (
      f"{seeds[0]}-{seeds[-1]}" if consecutive else hashlib.blake2b(repr(seeds).encode(), digest_size=8).hexdigest()
    )
    return self.directory / f"{variant}_seeds_{label}.npz"

  def arm(self, name: str, *, saves: bool = True) -> ArmChunks:
    """The chunks of arm ``name``, as ``train_seeds`` takes them; with ``saves=False`` only loaded (another
    process writes them)."""
    return ArmChunks(self, name, saves)

  def load(
    self, variant: str, seeds: Sequence[int], epochs: int | None = None, segments: int | None = None
  ) -> TrainResult | None:
    """The saved chunk of ``variant`` and ``seeds`` when resuming and one exists, else ``None``.

    With ``epochs`` and ``segments``, the chunk's curves must have that many
    epochs and training-curve points per epoch (``segments_per_epoch``, which
    the fingerprint leaves out: it changes the curves' shape, not training).

    Raises:
      ValueError: the file was written by a run with other settings or data,
        or is not a chunk file of these seeds and epochs.
    """
    path = self.path(variant, seeds)
    if not self.resume or not path.exists():
      return None
    try:
      with np.load(path, allow_pickle=False) as saved:
        stored = json.loads(str(saved["fingerprint"]))
        arrays = {name: saved[name] for name in _ARRAYS}
        grad_abs = saved["grad_abs"] if "grad_abs" in saved.files else None
        records = {name[len(_RECORD) :]: saved[name] for name in saved.files if name.startswith(_RECORD)}
        layer_names = tuple(str(n) for n in saved["layer_names"])
        seconds = float(saved["seconds"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # missing, truncated, damaged
      raise ValueError(f"{path} is not a readable chunk file ({error}); delete it to train the chunk again.") from error
    if stored != self.fingerprint:
      differing = differing_keys(stored, self.fingerprint)
      raise ValueError(
        f"{path} was written by a run with different {', '.join(differing)}; resume with the same settings "
        "and data, or write to another output directory."
      )
    if arrays["seeds"].tolist() != [int(s) for s in seeds]:
      raise ValueError(f"{path} holds seeds {arrays['seeds'].tolist()}, expected {list(seeds)}.")
    expected = (len(seeds), epochs or arrays["val_acc"].shape[1], segments or arrays["train_curve_acc"].shape[2])
    if arrays["train_curve_acc"].shape != expected:
      raise ValueError(
        f"{path} holds curves of shape {arrays['train_curve_acc'].shape} (seeds, epochs, segments), expected "
        f"{expected}: resume with the same --epochs and --segments-per-epoch."
      )
    self.seconds[variant] = self.seconds.get(variant, 0.0) + seconds
    self.resumed.setdefault(variant, []).append([int(s) for s in seeds])
    return TrainResult(grad_abs=grad_abs, layer_names=layer_names, records=records, **arrays)

  def save(self, variant: str, chunk: TrainResult, *, seconds: float) -> None:
    """Writes ``chunk`` (one chunk's :class:`TrainResult`, trained in ``seconds``) atomically."""
    path = self.path(variant, np.asarray(chunk.seeds).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(getattr(chunk, name)) for name in _ARRAYS}
    if chunk.grad_abs is not None:
      arrays["grad_abs"] = np.asarray(chunk.grad_abs)
    arrays.update({_RECORD + name: np.asarray(values) for name, values in chunk.records.items()})
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
      np.savez(
        f,
        fingerprint=np.array(json.dumps(self.fingerprint, sort_keys=True)),
        layer_names=np.array(chunk.layer_names, dtype=str),
        seconds=np.array(seconds),
        **arrays,  # pyright: ignore[reportArgumentType]  (no array is named allow_pickle)
      )
    os.replace(partial, path)
    self.seconds[variant] = self.seconds.get(variant, 0.0) + seconds


class ArmChunks(NamedTuple):
  """The chunks of one arm of a :class:`ChunkStore`: what ``train_seeds`` loads and saves (``ChunkStore.arm``).

  >>> import tempfile
  >>> with tempfile.TemporaryDirectory() as d:
  ...   chunks = ChunkStore(d, {}, resume=True).arm("rewired")
  ...   found = chunks.load([0, 1], epochs=1, segments=10)
  >>> chunks.name, found is None
  ('rewired', True)
  """

  store: ChunkStore
  name: str
  saves: bool = True

  def load(self, seeds: Sequence[int], epochs: int, segments: int) -> TrainResult | None:
    return self.store.load(self.name, seeds, epochs, segments)

  def save(self, chunk: TrainResult, *, seconds: float) -> None:
    if self.saves:
      self.store.save(self.name, chunk, seconds=seconds)
