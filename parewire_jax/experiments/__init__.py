"""Experiments of the PA rewiring paper (§4): datasets, models, training, reports.

Scabini, De Baets & Bruno, arXiv:2207.08148, §4.1 (setup) to §4.4; and the
LaPerm-against-Adam demonstration (Qiu & Suda 2020, §5.1).
"""

from parewire_jax.experiments.checkpoint import ChunkStore
from parewire_jax.experiments.compare import CompareConfig, run_compare, run_strength
from parewire_jax.experiments.data import DATASETS, Dataset, default_data_dir, load_dataset
from parewire_jax.experiments.laperm_demo import LaPermConfig, LaPermResult, run_laperm
from parewire_jax.experiments.models import (
  INITIALIZERS,
  MODELS,
  VARIANTS,
  base_initializer,
  build_model,
  kernel_initializer,
)
from parewire_jax.experiments.optimizers import OPTIMIZERS, make_optimizer
from parewire_jax.experiments.report import select_best_epoch
from parewire_jax.experiments.train import TrainConfig, TrainResult, concatenate_results, train_seeds

__all__ = [
  "DATASETS",
  "INITIALIZERS",
  "MODELS",
  "OPTIMIZERS",
  "VARIANTS",
  "ChunkStore",
  "CompareConfig",
  "Dataset",
  "LaPermConfig",
  "LaPermResult",
  "TrainConfig",
  "TrainResult",
  "base_initializer",
  "build_model",
  "concatenate_results",
  "default_data_dir",
  "kernel_initializer",
  "load_dataset",
  "make_optimizer",
  "run_compare",
  "run_laperm",
  "run_strength",
  "select_best_epoch",
  "train_seeds",
]
