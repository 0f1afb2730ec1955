"""Experiments of the PA rewiring paper (§4): datasets, models, training, reports.

Scabini, De Baets & Bruno, arXiv:2207.08148, §4.1 (setup) to §4.4; and the
LaPerm-against-Adam demonstration (Qiu & Suda 2020, §5.1). Every experiment
is defined by a settings record composed of parts
(``parewire_jax.experiments.settings``, which imports no JAX) and trains
its arms with one runner (``parewire_jax.experiments.runner``). Public
names are imported on first use, as in :mod:`parewire_jax`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parewire_jax import _lazy

# Public name -> the module that defines it.
_EXPORTS = {
  "COMPARE_OPTIMIZERS": "settings",
  "DATASETS": "settings",
  "INITIALIZERS": "settings",
  "INIT_VARIANTS": "settings",
  "LAPERM_ARMS": "settings",
  "MODELS": "settings",
  "MODEL_NORMS": "settings",
  "NORMS": "settings",
  "OPTIMIZERS": "settings",
  "SEQUENCE_DATASETS": "settings",
  "SEQUENCE_MODELS": "settings",
  "AtlasSettings": "settings",
  "CompareSettings": "settings",
  "DataSettings": "settings",
  "DeviceSettings": "settings",
  "LaPermSettings": "settings",
  "NetworkSettings": "settings",
  "SeedSettings": "settings",
  "Settings": "settings",
  "StrengthSettings": "settings",
  "TrainSettings": "settings",
  "setting": "settings",
  "AtlasResult": "atlas",
  "CellResult": "atlas",
  "run_atlas": "atlas",
  "AtlasCell": "atlas_grids",
  "atlas_cells": "atlas_grids",
  "atlas_grid": "atlas_grids",
  "ArmChunks": "checkpoint",
  "ChunkStore": "checkpoint",
  "CompareResult": "compare",
  "run_compare": "compare",
  "Dataset": "data",
  "MissingDatasetError": "data",
  "default_data_dir": "data",
  "load_dataset": "data",
  "pointer_sequences": "data",
  "DownloadError": "downloads",
  "StrengthResult": "kernel_strengths",
  "run_strength": "kernel_strengths",
  "LaPermResult": "laperm_demo",
  "run_laperm": "laperm_demo",
  "BestEpoch": "metrics",
  "MetricReport": "metrics",
  "select_best_epoch": "metrics",
  "base_initializer": "models",
  "build_model": "models",
  "build_network": "models",
  "kernel_initializer": "models",
  "Optimizer": "optimizers",
  "make_optimizer": "optimizers",
  "Observer": "progress",
  "TrainingProgress": "progress",
  "SavedRun": "records",
  "read_results": "records",
  "Arm": "runner",
  "RunResult": "runner",
  "run_arms": "runner",
  "Comparison": "stats",
  "PairedEffect": "stats",
  "SpreadRatio": "stats",
  "Summary": "stats",
  "paired_effect": "stats",
  "spread_ratio": "stats",
  "ChunkTrainer": "train",
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
    atlas_cells as atlas_cells,
    atlas_grid as atlas_grid,
  )
  from parewire_jax.experiments.checkpoint import (
    ArmChunks as ArmChunks,
    ChunkStore as ChunkStore,
  )
  from parewire_jax.experiments.compare import (
    CompareResult as CompareResult,
    run_compare as run_compare,
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
  from parewire_jax.experiments.kernel_strengths import (
    StrengthResult as StrengthResult,
    run_strength as run_strength,
  )
  from parewire_jax.experiments.laperm_demo import (
    LaPermResult as LaPermResult,
    run_laperm as run_laperm,
  )
  from parewire_jax.experiments.metrics import (
    BestEpoch as BestEpoch,
    MetricReport as MetricReport,
    select_best_epoch as select_best_epoch,
  )
  from parewire_jax.experiments.models import (
    base_initializer as base_initializer,
    build_model as build_model,
    build_network as build_network,
    kernel_initializer as kernel_initializer,
  )
  from parewire_jax.experiments.optimizers import (
    Optimizer as Optimizer,
    make_optimizer as make_optimizer,
  )
  from parewire_jax.experiments.progress import (
    Observer as Observer,
    TrainingProgress as TrainingProgress,
  )
  from parewire_jax.experiments.records import (
    SavedRun as SavedRun,
    read_results as read_results,
  )
  from parewire_jax.experiments.runner import (
    Arm as Arm,
    RunResult as RunResult,
    run_arms as run_arms,
  )
  from parewire_jax.experiments.settings import (
    COMPARE_OPTIMIZERS as COMPARE_OPTIMIZERS,
    DATASETS as DATASETS,
    INIT_VARIANTS as INIT_VARIANTS,
    INITIALIZERS as INITIALIZERS,
    LAPERM_ARMS as LAPERM_ARMS,
    MODEL_NORMS as MODEL_NORMS,
    MODELS as MODELS,
    NORMS as NORMS,
    OPTIMIZERS as OPTIMIZERS,
    SEQUENCE_DATASETS as SEQUENCE_DATASETS,
    SEQUENCE_MODELS as SEQUENCE_MODELS,
    AtlasSettings as AtlasSettings,
    CompareSettings as CompareSettings,
    DataSettings as DataSettings,
    DeviceSettings as DeviceSettings,
    LaPermSettings as LaPermSettings,
    NetworkSettings as NetworkSettings,
    SeedSettings as SeedSettings,
    Settings as Settings,
    StrengthSettings as StrengthSettings,
    TrainSettings as TrainSettings,
    setting as setting,
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
    ChunkTrainer as ChunkTrainer,
    TrainResult as TrainResult,
    concatenate_results as concatenate_results,
    train_seeds as train_seeds,
  )
