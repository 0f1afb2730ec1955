"""What the experiments write and read back: ``results.json``, one writer and one reader for every run.

``results.json`` holds a run's settings (``"config"``, nested as the
settings record), the data and software it ran on, and per arm the per-seed
curves and metrics, their summaries and the tests against the reference arm.
:func:`write_results` writes it for ``compare`` and ``laperm`` (each adds its
own entries) and :func:`read_results` reads it back (the atlas reuses
finished cells through it). NaN is written as ``null``.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
  from parewire_jax.experiments.train import TrainResult


def dataset_record(dataset: Any) -> dict[str, Any]:
  """What ``results.json`` says of the data a run trained on."""
  return {
    "name": dataset.name,
    "num_train": len(dataset.x_train),
    "num_val": len(dataset.x_val),
    "num_test": len(dataset.x_test),
    "num_classes": dataset.num_classes,
  }


# The per-seed curves every results.json holds, (seeds, epochs) and (seeds, epochs, segments).
CURVES = (
  "train_loss",
  "train_acc",
  "val_loss",
  "val_acc",
  "test_loss",
  "test_acc",
  "train_curve_loss",
  "train_curve_acc",
)


def curves_record(result: TrainResult) -> dict[str, np.ndarray]:
  """The per-seed curves of ``result`` by name, for ``results.json``."""
  return {name: getattr(result, name) for name in CURVES}


def to_jsonable(x: Any) -> Any:
  """NumPy arrays and scalars, NamedTuples and mappings to JSON types (nan -> null)."""
  if isinstance(x, np.ndarray):
    return to_jsonable(x.tolist())
  if isinstance(x, (np.floating, float)):
    return None if math.isnan(float(x)) else float(x)
  if isinstance(x, np.integer):
    return int(x)
  if isinstance(x, tuple) and hasattr(x, "_asdict"):  # a NamedTuple
    return {k: to_jsonable(v) for k, v in x._asdict().items()}  # pyright: ignore[reportAttributeAccessIssue]
  if isinstance(x, Mapping):
    return {str(k): to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [to_jsonable(v) for v in x]
  return x


def write_json(path: str | pathlib.Path, payload: Any) -> None:
  pathlib.Path(path).write_text(json.dumps(to_jsonable(payload), indent=1, allow_nan=False))


def environment() -> dict[str, str]:
  """The JAX version and backend a run used, as ``results.json`` records them."""
  import jax

  return {"version": jax.__version__, "backend": jax.default_backend()}


def write_results(
  out_dir: str | pathlib.Path, run: Any, *, arms: Mapping[str, Mapping[str, Any]] | None = None, **entries: Any
) -> None:
  """``results.json`` of a finished :class:`~parewire_jax.experiments.RunResult`, with ``arms[name]`` added
  to each arm's entry and ``entries`` at the top level."""
  payload: dict[str, Any] = {
    "config": run.settings.asdict(),
    "dataset": dataset_record(run.dataset),
    "jax": environment(),
    "train_seconds": run.train_seconds,
    "resumed_chunks": run.resumed,
    "reference": run.reference,
    "arms": {
      name: {
        "per_seed": {"seeds": result.seeds, **run.metrics[name]},
        "curves": curves_record(result),
        "grad_abs": result.grad_abs,
        "layer_names": result.layer_names,
        "init_mean_variance": result.init_mean_variance,
        "init_mean_fourth_moment": result.init_mean_fourth_moment,
        "records": result.records,
        "summary": run.report.summaries[name],
        "vs_reference": run.report.comparisons.get(name),
        **(arms or {}).get(name, {}),
      }
      for name, result in run.results.items()
    },
    **entries,
  }
  write_json(pathlib.Path(out_dir) / "results.json", payload)


class SavedRun(NamedTuple):
  """What :func:`read_results` reads back of a ``results.json``.

  Attributes:
    config: the settings, nested as ``Settings.asdict`` wrote them.
    jax: the JAX version and backend of the run.
    seeds: the init seeds, in the order of every per-seed array.
    curves: arm -> curve name (``CURVES``) -> per-seed array ``(S, E, ...)``.
    train_seconds: arm -> its training time.

  >>> SavedRun._fields
  ('config', 'jax', 'seeds', 'curves', 'train_seconds')
  """

  config: dict[str, Any]
  jax: dict[str, Any]
  seeds: list[int]
  curves: dict[str, dict[str, np.ndarray]]
  train_seconds: dict[str, float]


def read_results(path: str | pathlib.Path) -> SavedRun:
  """The :class:`SavedRun` in ``results.json`` at ``path`` (NaN where ``null`` was written).

  Raises:
    ValueError: the file is not a readable ``results.json``.

  >>> read_results("no/such/results.json")
  Traceback (most recent call last):
  ...
  ValueError: no/such/results.json is not a readable results.json (FileNotFoundError(2, 'No such file or directory')).
  """
  try:
    saved = json.loads(pathlib.Path(path).read_text())
    arms = saved["arms"]
    reference = arms[saved["reference"]]
    curves = {
      name: {curve: np.asarray(arm["curves"][curve], np.float64) for curve in CURVES} for name, arm in arms.items()
    }
    seeds = [int(s) for s in reference["per_seed"]["seeds"]]
    return SavedRun(saved["config"], saved["jax"], seeds, curves, dict(saved["train_seconds"]))
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ValueError(f"{path} is not a readable results.json ({error!r}).") from None
