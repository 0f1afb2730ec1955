"""Experiments of the PA rewiring paper (§4): datasets, models, training, reports.

Scabini, De Baets & Bruno, arXiv:2207.08148, §4.1 (setup) to §4.4; and the
LaPerm-against-Adam demonstration (Qiu & Suda 2020, §5.1). Public names are
imported on first use, as in :mod:`parewire_jax`; ``parewire_jax.experiments.settings``
(names, configurations and their checks) imports no JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parewire_jax import _lazy

# Public name -> the module that defines it.
_EXPORTS = {
  "COMPARE_OPTIMIZERS": "settings",
  "DATASETS": "settings",
  "INITIALIZERS": "settings",
  "MODELS": "settings",
  "MODEL_NORMS": "settings",
  "NORMS": "settings",
  "OPTIMIZERS": "settings",
  "SEQUENCE_DATASETS": "settings",
  "SEQUENCE_MODELS": "settings",
  "VARIANTS": "settings",
  "CompareConfig": "settings",
  "LaPermConfig": "settings",
  "TrainConfig": "settings",
  "AtlasResult": "atlas",
  "CellResult": "atlas",
  "run_atlas": "atlas",
  "AtlasCell": "atlas_grids",
  "atlas_grid": "atlas_grids",
  "ChunkStore": "checkpoint",
  "CompareResult": "compare",
  "StrengthResult": "compare",
  "run_compare": "compare",
  "run_strength": "compare",
  "Dataset": "data",
  "MissingDatasetError": "data",
  "DownloadError": "downloads",
  "default_data_dir": "data",
  "load_dataset": "data",
  "pointer_sequences": "data",
  "LaPermResult": "laperm_demo",
  "run_laperm": "laperm_demo",
  "base_initializer": "models",
  "build_model": "models",
  "kernel_initializer": "models",
  "make_optimizer": "optimizers",
  "TrainingProgress": "progress",
  "BestEpoch": "report",
  "MetricReport": "report",
  "select_best_epoch": "report",
  "Comparison": "stats",
  "PairedEffect": "stats",
  "SpreadRatio": "stats",
  "Summary": "stats",
  "paired_effect": "stats",
  "spread_ratio": "stats",
  "TrainResult": "train",
  "concatenate_results": "train",
  "train_seeds": "train",
}

__getattr__, __dir__, __all__ = _lazy.attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # what static tools see (`X as X` re-exports); tests/test_package.py checks it matches _EXPORTS
  from parewire_jax.experiments.atlas import (
    AtlasResult as AtlasResult,
    CellResult as CellResult,
    run_atlas as run_atlas,
  )
  from parewire_jax.experiments.atlas_grids import (
    AtlasCell as AtlasCell,
    atlas_grid as atlas_grid,
  )
  from parewire_jax.experiments.checkpoint import (
    ChunkStore as ChunkStore,
  )
  from parewire_jax.experiments.compare import (
    CompareResult as CompareResult,
    StrengthResult as StrengthResult,
    run_compare as run_compare,
    run_strength as run_strength,
  )
  from parewire_jax.experiments.data import (
    Dataset as Dataset,
    MissingDatasetError as MissingDatasetError,
    default_data_dir as default_data_dir,
    load_dataset as load_dataset,
    pointer_sequences as pointer_sequences,
  )
  from parewire_jax.experiments.downloads import (
    DownloadError as DownloadError,
  )
  from parewire_jax.experiments.laperm_demo import (
    LaPermResult as LaPermResult,
    run_laperm as run_laperm,
  )
  from parewire_jax.experiments.models import (
    base_initializer as base_initializer,
    build_model as build_model,
    kernel_initializer as kernel_initializer,
  )
  from parewire_jax.experiments.optimizers import (
    make_optimizer as make_optimizer,
  )
  from parewire_jax.experiments.progress import (
    TrainingProgress as TrainingProgress,
  )
  from parewire_jax.experiments.report import (
    BestEpoch as BestEpoch,
    MetricReport as MetricReport,
    select_best_epoch as select_best_epoch,
  )
  from parewire_jax.experiments.settings import (
    COMPARE_OPTIMIZERS as COMPARE_OPTIMIZERS,
    DATASETS as DATASETS,
    INITIALIZERS as INITIALIZERS,
    MODEL_NORMS as MODEL_NORMS,
    MODELS as MODELS,
    NORMS as NORMS,
    OPTIMIZERS as OPTIMIZERS,
    SEQUENCE_DATASETS as SEQUENCE_DATASETS,
    SEQUENCE_MODELS as SEQUENCE_MODELS,
    VARIANTS as VARIANTS,
    CompareConfig as CompareConfig,
    LaPermConfig as LaPermConfig,
    TrainConfig as TrainConfig,
  )
  from parewire_jax.experiments.stats import (
    Comparison as Comparison,
    PairedEffect as PairedEffect,
    SpreadRatio as SpreadRatio,
    Summary as Summary,
    paired_effect as paired_effect,
    spread_ratio as spread_ratio,
  )
  from parewire_jax.experiments.train import (
    TrainResult as TrainResult,
    concatenate_results as concatenate_results,
    train_seeds as train_seeds,
  )
