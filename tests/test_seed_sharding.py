"""Seeds sharded over devices (DeviceSettings.devices, --devices): the same per-seed results on 1, 2, 4 and 8.

The 8 devices are XLA's virtual CPU devices of tests/conftest.py. The runs are
tiny (an MLP of 16 hidden units, 256 training images, one epoch) and shared by
the module's tests, to keep them within seconds.
"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest
from helpers import random_images

from parewire_jax.experiments import ChunkStore, CompareSettings, load_dataset, run_compare, train_seeds
from parewire_jax.experiments.models import build_network
from parewire_jax.experiments.optimizers import Optimizer, make_optimizer
from parewire_jax.experiments.runner import training_fingerprint
from parewire_jax.experiments.seeds import device_shares, seed_mesh
from parewire_jax.experiments.steps import make_step_functions

DEVICE_COUNTS = (1, 2, 4, 8)
# 5 seeds in chunks of 3: chunks [0, 1, 2] and [3, 4], neither divisible by 2 or 4 devices (padded), and
# seeds_per_vmap=1, so every device vectorizes the same one-seed groups as one device does.
CONFIG = CompareSettings().replace(
  dataset="digits",
  model="mlp",
  seeds=5,
  epochs=1,
  batch_size=64,
  limit_train=256,
  limit_eval=128,
  mlp_hidden=(16,),
  seeds_per_chunk=3,
  seeds_per_vmap=1,
)
# Each training and evaluation record is the same bits on any number of devices.
EXACT = ("train_loss", "train_acc", "train_curve_loss", "train_curve_acc")
EXACT += ("val_loss", "val_acc", "test_loss", "test_acc")
# The initial strength statistics reduce over seeds vectorized by device share, not by seeds_per_vmap.
ROUNDED = ("init_mean_variance", "init_mean_fourth_moment")
COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")


def _train(model, dataset, settings: CompareSettings, **kwargs):
  """``train_seeds`` with the seeds, schedule, grouping and devices of ``settings``."""
  seeding = settings.seeding
  return train_seeds(
    model,
    dataset,
    seeding.range,
    settings.training,
    seeds_per_chunk=seeding.seeds_per_chunk,
    seeds_per_vmap=seeding.seeds_per_vmap,
    devices=settings.hardware.devices,
    **kwargs,
  )


@pytest.fixture(scope="module")
def dataset():
  return load_dataset("digits", limit_train=CONFIG.data.limit_train, limit_eval=CONFIG.data.limit_eval)


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
  """devices -> (the base variant of CONFIG trained on that many devices, the directory of its chunks)."""
  assert len(jax.devices()) == 8
  outcomes = {}
  for devices in DEVICE_COUNTS:
    chunks = tmp_path_factory.mktemp(f"devices{devices}") / "chunks"
    store = ChunkStore(chunks, training_fingerprint(CONFIG, dataset))
    model = build_network(CONFIG.network, dataset.num_classes)
    outcomes[devices] = _train(model, dataset, CONFIG.replace(devices=devices), chunks=store.arm("base")), chunks
  return outcomes


def test_device_shares_never_lose_or_repeat_a_seed():
  for chunk in range(1, 20):
    for devices in range(1, 9):
      share, used = device_shares(chunk, devices)
      assert used <= devices and share * used >= chunk > share * (used - 1), (chunk, devices)


@pytest.mark.parametrize("devices", DEVICE_COUNTS[1:])
def test_per_seed_results_do_not_depend_on_the_devices(runs, devices):
  one, sharded = runs[1][0], runs[devices][0]
  assert sharded.seeds.tolist() == CONFIG.seeding.range  # every seed once, in order, padding dropped
  for field in EXACT:
    np.testing.assert_array_equal(getattr(sharded, field), getattr(one, field), err_msg=field)
  for field in ROUNDED:
    np.testing.assert_allclose(getattr(sharded, field), getattr(one, field), rtol=1e-6, err_msg=field)


def test_default_vectorization_agrees_to_float_rounding(dataset, runs):
  """seeds_per_vmap=None: 8 devices vectorize 1 seed each where one device vectorizes all 5 (other rounding)."""
  config = CONFIG.replace(seeds_per_chunk=None, seeds_per_vmap=None)
  outcome = run_compare(config.replace(devices=8), dataset=dataset)
  assert [result.seeds.tolist() for result in outcome.results.values()] == [CONFIG.seeding.range] * 2
  for field in EXACT + ROUNDED:
    np.testing.assert_allclose(
      getattr(outcome.results["base"], field), getattr(runs[1][0], field), rtol=1e-5, atol=1e-6, err_msg=field
    )


@pytest.mark.parametrize("saved_on, resumed_on", [(1, 8), (8, 1)])
def test_chunks_resume_on_another_number_of_devices(dataset, runs, tmp_path, saved_on, resumed_on):
  saved, chunks = runs[saved_on]
  shutil.copytree(chunks, tmp_path / "chunks")
  (tmp_path / "chunks" / "base_seeds_3-4.npz").unlink()  # trained again, on the other device count
  config = CONFIG.replace(devices=resumed_on)
  store = ChunkStore(tmp_path / "chunks", training_fingerprint(config, dataset), resume=True)
  model = build_network(config.network, dataset.num_classes)
  resumed = _train(model, dataset, config, chunks=store.arm("base"))
  assert store.resumed == {"base": [[0, 1, 2]]}
  for field in EXACT:
    np.testing.assert_array_equal(getattr(resumed, field), getattr(saved, field), err_msg=field)


def test_training_has_no_cross_device_collective(dataset):
  model = build_network(CONFIG.network, dataset.num_classes)
  x = dataset.x_train[:1]
  fns = make_step_functions(
    model,
    make_optimizer(Optimizer(), CONFIG.training, 4),
    x,
    seeds_per_vmap=None,
    track_gradients=False,
    laperm_evaluation=False,
    mesh=seed_mesh(8),
  )
  seeds = np.arange(8, dtype=np.uint32)
  params, state, opt_state, counts, _, _ = jax.eval_shape(fns.init, seeds, x)
  carry = ((params, state, opt_state), counts)
  batch_indices = np.zeros((2, CONFIG.training.batch_size), np.int32)
  hlo = fns.segment.lower(carry, dataset.x_train, dataset.y_train, batch_indices).compile().as_text()
  assert "num_partitions=8" in hlo  # one program for the 8 devices
  assert [c for c in COLLECTIVES if c in hlo] == []


def test_devices_beyond_those_jax_sees_are_refused_before_any_data(tmp_path):
  with pytest.raises(ValueError, match=r"devices \(9\) exceeds the 8 device\(s\)"):
    run_compare(CONFIG.replace(devices=9), data_dir=tmp_path, download=False)


def test_lenet_trains_sharded_like_on_one_device_without_a_collective():
  # LeNet's first convolution has a hand-written gradient that also yields one for the images all seeds share;
  # under shard_map that cotangent must sum over the devices, and XLA must drop it, as nothing reads it.
  dataset = random_images(64)
  config = CompareSettings().replace(model="lenet", seeds=2, batch_size=32, seeds_per_vmap=1)
  model = build_network(config.network, dataset.num_classes)
  results = [_train(model, dataset, config.replace(devices=devices)) for devices in (1, 2)]
  # Training is the same bits; the evaluation's first convolution computes a device's seeds in one product.
  for field in EXACT:
    compare = np.testing.assert_array_equal if field.startswith("train") else np.testing.assert_allclose
    compare(getattr(results[1], field), getattr(results[0], field), err_msg=field)
  fns = make_step_functions(
    model,
    make_optimizer(Optimizer(), config.training, 2),
    dataset.x_train[:1],
    seeds_per_vmap=None,
    track_gradients=False,
    laperm_evaluation=False,
    mesh=seed_mesh(2),
  )
  params, state, opt_state, counts, _, _ = jax.eval_shape(fns.init, np.arange(2, dtype=np.uint32), dataset.x_train[:1])
  indices = np.zeros((2, config.training.batch_size), np.int32)
  hlo = fns.segment.lower(((params, state, opt_state), counts), dataset.x_train, dataset.y_train, indices)
  assert [c for c in COLLECTIVES if c in hlo.compile().as_text()] == []
