"""Experiments of the PA rewiring paper (§4): datasets, models, training, reports.

Scabini, De Baets & Bruno, arXiv:2207.08148, §4.1 (setup) to §4.4.
"""

from parewire_jax.experiments.compare import CompareConfig, run_compare, run_strength
from parewire_jax.experiments.data import DATASETS, Dataset, default_data_dir, load_dataset
from parewire_jax.experiments.models import (
    INITIALIZERS,
    MODELS,
    VARIANTS,
    base_initializer,
    build_model,
    kernel_initializer,
)
from parewire_jax.experiments.train import TrainConfig, TrainResult, select_best_epoch, train_seeds

__all__ = [
    "DATASETS",
    "INITIALIZERS",
    "MODELS",
    "VARIANTS",
    "CompareConfig",
    "Dataset",
    "TrainConfig",
    "TrainResult",
    "base_initializer",
    "build_model",
    "default_data_dir",
    "kernel_initializer",
    "load_dataset",
    "run_compare",
    "run_strength",
    "select_best_epoch",
    "train_seeds",
]
