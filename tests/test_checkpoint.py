"""Resuming multi-seed runs (parewire_jax.experiments.checkpoint): ChunkStore, train_seeds' chunks, resume=True."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from helpers import tiny_dataset, train_result

from parewire_jax.experiments import train
from parewire_jax.experiments.checkpoint import ChunkStore, dataset_digest
from parewire_jax.experiments.compare import CompareSettings, run_compare
from parewire_jax.experiments.models import build_network

CONFIG = CompareSettings().replace(
  dataset="digits",
  model="mlp",
  variants=("base", "rewired"),
  seeds=3,
  epochs=2,
  batch_size=32,
  learning_rate=0.05,
  num_draws=4,
  mlp_hidden=(8,),
  seeds_per_chunk=2,
  track_gradients=True,
)


@pytest.fixture(scope="module")
def tiny():
  return tiny_dataset(128)


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
  out = tmp_path_factory.mktemp("uninterrupted")
  return out, run_compare(CONFIG, dataset=tiny, out_dir=out)


def _copy_chunks(source, destination):
  (destination / "chunks").mkdir()
  for path in (source / "chunks").iterdir():
    (destination / "chunks" / path.name).write_bytes(path.read_bytes())


def _assert_same_results(a, b):
  for variant in CONFIG.variants:
    for field in set(train.TrainResult._fields) - {"records"}:
      np.testing.assert_array_equal(
        np.asarray(getattr(a.results[variant], field)),
        np.asarray(getattr(b.results[variant], field)),
        err_msg=f"{variant} {field}",
      )


def test_every_chunk_is_saved_with_its_training_time(uninterrupted):
  out, outcome = uninterrupted
  names = sorted(p.name for p in (out / "chunks").iterdir())
  assert names == ["base_seeds_0-1.npz", "base_seeds_2-2.npz", "rewired_seeds_0-1.npz", "rewired_seeds_2-2.npz"]
  assert outcome.resumed == {} and all(outcome.train_seconds[v] > 0 for v in CONFIG.variants)
  saved = json.loads((out / "results.json").read_text())
  assert saved["train_seconds"] == pytest.approx(outcome.train_seconds) and saved["resumed_chunks"] == {}


def test_resuming_trains_only_missing_chunks_and_matches_an_uninterrupted_run(uninterrupted, tiny, tmp_path):
  out, expected = uninterrupted
  (tmp_path / "chunks").mkdir()
  for name in ("base_seeds_0-1.npz", "base_seeds_2-2.npz", "rewired_seeds_0-1.npz"):  # rewired 2-2 was lost
    (tmp_path / "chunks" / name).write_bytes((out / "chunks" / name).read_bytes())
  resumed = run_compare(CONFIG, dataset=tiny, out_dir=tmp_path, resume=True)
  assert resumed.resumed == {"base": [[0, 1], [2]], "rewired": [[0, 1]]}
  _assert_same_results(resumed, expected)
  assert (tmp_path / "chunks" / "rewired_seeds_2-2.npz").exists()
  assert resumed.table == expected.table
  # the training time of resumed chunks is the time measured when they were trained
  assert resumed.train_seconds["base"] == pytest.approx(expected.train_seconds["base"])


def test_resumed_chunks_are_read_not_recomputed(uninterrupted, tiny, tmp_path):
  out, _ = uninterrupted
  store = ChunkStore(out / "chunks", {}, resume=False)
  with np.load(store.path("base", [0, 1])) as saved:
    arrays = dict(saved)
  arrays["val_acc"] = np.full_like(arrays["val_acc"], 0.25)
  (tmp_path / "chunks").mkdir()
  np.savez(tmp_path / "chunks" / "base_seeds_0-1.npz", **arrays)
  outcome = run_compare(CONFIG, dataset=tiny, out_dir=tmp_path, resume=True)
  np.testing.assert_array_equal(outcome.results["base"].val_acc[:2], 0.25)
  assert not np.all(outcome.results["base"].val_acc[2] == 0.25)


def test_a_run_killed_between_chunks_resumes(tiny, tmp_path):
  training = CONFIG.training.replace(track_gradients=False)
  model = build_network(CONFIG.network, tiny.num_classes, "max_sv", num_draws=CONFIG.num_draws)
  store = ChunkStore(tmp_path / "chunks", {"anything": 1})
  saved = []

  class KilledAfterTheFirstChunk:
    def load(self, seeds, epochs, segments):
      return None

    def save(self, chunk, *, seconds):
      store.save("max_sv", chunk, seconds=seconds)
      saved.append(chunk.seeds.tolist())
      raise KeyboardInterrupt  # e.g. the job's time limit, after the first chunk

  with pytest.raises(KeyboardInterrupt):
    train.train_seeds(model, tiny, [0, 1, 2], training, seeds_per_chunk=2, chunks=KilledAfterTheFirstChunk())  # pyright: ignore[reportArgumentType]
  assert saved == [[0, 1]]
  calls = []

  class Steps:
    compiled = evaluated = staticmethod(lambda: None)
    trained = staticmethod(calls.append)

  resumed_store = ChunkStore(tmp_path / "chunks", {"anything": 1}, resume=True)
  result = train.train_seeds(
    model, tiny, [0, 1, 2], training, seeds_per_chunk=2, chunks=resumed_store.arm("max_sv"), observer=Steps()
  )
  steps_per_epoch = len(tiny.x_train) // training.batch_size
  segment = steps_per_epoch // train.segments_per_epoch(steps_per_epoch, training.segments_per_epoch)
  # chunk [0, 1] loaded: all its steps counted at once; chunk [2] trained: one report per completed segment
  assert calls[0] == training.epochs * steps_per_epoch
  assert calls[1:] == [segment] * (training.epochs * steps_per_epoch // segment)
  assert resumed_store.resumed == {"max_sv": [[0, 1]]}
  assert (tmp_path / "chunks" / "max_sv_seeds_2-2.npz").exists()  # the trained chunk was saved
  expected = train.train_seeds(model, tiny, [0, 1, 2], training)
  for field in ("seeds", "train_loss", "val_acc", "test_acc", "init_mean_variance"):
    np.testing.assert_array_equal(getattr(result, field), getattr(expected, field), err_msg=field)


def test_a_write_cut_off_leaves_no_chunk_file(tiny, tmp_path, monkeypatch):
  store = ChunkStore(tmp_path, {"anything": 1}, resume=True)
  chunk = train_result([0])

  def savez_killed_midway(f, **arrays):
    f.write(b"PK\x03\x04 half a zip")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "savez", savez_killed_midway)
  with pytest.raises(KeyboardInterrupt):
    store.save("base", chunk, seconds=1.0)
  assert not store.path("base", [0]).exists()  # only the .partial file, which load never reads
  assert store.load("base", [0]) is None


def test_a_saved_chunk_must_hold_the_requested_epochs_and_segments(tmp_path):
  store = ChunkStore(tmp_path / "chunks", {}, resume=True)
  store.save("base", train_result([0, 1], epochs=2, segments=5), seconds=1.0)
  assert store.load("base", [0, 1], epochs=2, segments=5) is not None
  with pytest.raises(ValueError, match=r"holds curves of shape \(2, 2, 5\) .*expected \(2, 3, 5\)"):
    store.load("base", [0, 1], epochs=3, segments=5)
  with pytest.raises(ValueError, match=r"expected \(2, 2, 10\): resume with the same --epochs and --segments"):
    store.load("base", [0, 1], epochs=2, segments=10)


@pytest.mark.parametrize(
  "change, differing",
  [
    (dict(epochs=3), r"settings\.training\.epochs"),
    (dict(learning_rate=0.1), r"settings\.training\.learning_rate"),
    (dict(schedule_epochs=4), r"settings\.training\.schedule_epochs"),
    (dict(init="orthogonal"), r"settings\.network\.init"),
    (dict(num_draws=5), r"settings\.num_draws"),
    (dict(mlp_hidden=(9,)), r"settings\.network\.mlp_hidden"),
    (dict(optimizer="adam"), r"settings\.optimizer"),
  ],
)
def test_chunks_of_other_settings_are_refused(uninterrupted, tiny, tmp_path, change, differing):
  _copy_chunks(uninterrupted[0], tmp_path)
  with pytest.raises(ValueError, match=rf"written by a run with different .*{differing}"):
    run_compare(CONFIG.replace(**change), dataset=tiny, out_dir=tmp_path, resume=True)


def test_chunks_of_other_data_are_refused(uninterrupted, tmp_path):
  _copy_chunks(uninterrupted[0], tmp_path)
  with pytest.raises(ValueError, match="different data_digest"):
    run_compare(CONFIG, dataset=tiny_dataset(130), out_dir=tmp_path, resume=True)


def test_chunks_of_another_device_kind_are_refused(uninterrupted, tiny, tmp_path, monkeypatch):
  _copy_chunks(uninterrupted[0], tmp_path)

  class OtherDevice:
    device_kind = "NVIDIA H200"

  monkeypatch.setattr(jax, "devices", lambda *a: [OtherDevice()])
  with pytest.raises(ValueError, match=r"different environment\.device_kind"):
    run_compare(CONFIG, dataset=tiny, out_dir=tmp_path, resume=True)


def test_other_chunking_trains_again_and_agrees(uninterrupted, tiny, tmp_path):
  out, expected = uninterrupted
  _copy_chunks(out, tmp_path)
  outcome = run_compare(CONFIG.replace(seeds_per_chunk=None), dataset=tiny, out_dir=tmp_path, resume=True)
  assert outcome.resumed == {}  # chunk [0, 1, 2] was never saved
  for variant in CONFIG.variants:
    np.testing.assert_allclose(outcome.results[variant].val_acc, expected.results[variant].val_acc, atol=1e-6)


@pytest.mark.parametrize("damage", ["not a zip", "empty", "truncated", "flipped byte"])
def test_unreadable_chunk_file_is_a_clear_error(uninterrupted, tiny, tmp_path, damage):
  _copy_chunks(uninterrupted[0], tmp_path)
  path = tmp_path / "chunks" / "base_seeds_0-1.npz"
  data = bytearray(path.read_bytes())
  if damage == "flipped byte":  # inside the first array's data: the zip's CRC-32 no longer matches
    data[len(data) // 3] ^= 0xFF
  damaged = {
    "not a zip": b"garbage",
    "empty": b"",
    "truncated": bytes(data[: len(data) // 2]),
    "flipped byte": bytes(data),
  }[damage]
  path.write_bytes(damaged)
  with pytest.raises(ValueError, match="not a readable chunk file.*delete it"):
    run_compare(CONFIG, dataset=tiny, out_dir=tmp_path, resume=True)


def test_resume_needs_an_output_directory(tiny):
  with pytest.raises(ValueError, match="resume=True needs out_dir"):
    run_compare(CONFIG, dataset=tiny, resume=True)


def test_chunk_file_names_and_seed_check(tmp_path):
  store = ChunkStore(tmp_path, {}, resume=True)
  assert store.path("base", [4, 5, 6]).name == "base_seeds_4-6.npz"
  assert store.path("base", [4, 6]).name != store.path("base", [6, 4]).name  # not consecutive: a digest
  chunk = train_result([4, 5])
  store.save("base", chunk, seconds=1.0)
  store.path("base", [4, 5]).rename(store.path("base", [5, 6]))
  with pytest.raises(ValueError, match=r"holds seeds \[4, 5\], expected \[5, 6\]"):
    store.load("base", [5, 6])


def test_dataset_digest_sees_every_split():
  a = tiny_dataset(64)
  assert dataset_digest(a) == dataset_digest(tiny_dataset(64))
  for field in ("x_train", "y_val", "x_test"):
    changed = getattr(a, field).copy()
    changed.flat[0] += 1
    assert dataset_digest(a._replace(**{field: changed})) != dataset_digest(a), field


def test_concatenate_results_rejects_mixed_chunks():
  one = train_result([0], layer_names=("a",))
  joined = train.concatenate_results([one, one._replace(seeds=np.array([1]))])
  assert joined.seeds.tolist() == [0, 1] and joined.layer_names == ("a",)
  with pytest.raises(ValueError, match="same layer_names"):
    train.concatenate_results([one, one._replace(layer_names=("b",))])
  with pytest.raises(ValueError, match="grad_abs"):
    train.concatenate_results([one, one._replace(grad_abs=np.zeros((1, 1, 1)))])
  with pytest.raises(ValueError, match="non-empty"):
    train.concatenate_results([])
