"""The settings records (parewire_jax.experiments.settings): parts, replace, checks, and what is derived from them."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from parewire_jax.experiments import settings
from parewire_jax.experiments.settings import (
  AtlasSettings,
  CompareSettings,
  DataSettings,
  LaPermSettings,
  Settings,
  StrengthSettings,
  TrainSettings,
)

EXPERIMENTS = (CompareSettings(), LaPermSettings(), StrengthSettings(), AtlasSettings())


@pytest.mark.parametrize("record", EXPERIMENTS, ids=lambda r: type(r).__name__)
def test_every_setting_has_one_name_help_and_a_flag_of_its_own(record):
  fields = [field for field, _ in record.leaves()]
  names = [field.name for field in fields]
  assert len(set(names)) == len(names), names  # replace() and the options need unique names
  flags = [field.metadata["flag"] or "--" + field.name.replace("_", "-") for field in fields]
  assert len(set(flags)) == len(flags)
  for field in fields:
    assert field.metadata["help"] and not field.metadata["help"].endswith("."), field.name
  parser = argparse.ArgumentParser()
  settings.add_arguments(parser, record)
  assert settings.from_arguments(record, parser.parse_args([])) == record  # the defaults round-trip


def test_replace_reaches_every_part_by_name_and_refuses_unknown_names():
  s = CompareSettings().replace(dataset="digits", model="mlp", epochs=3, seeds=4, devices=2, num_draws=5)
  assert (s.data.dataset, s.network.model, s.training.epochs, s.seeding.seeds, s.hardware.devices) == (
    "digits",
    "mlp",
    3,
    4,
    2,
  )
  assert s.num_draws == 5 and s.training.batch_size == CompareSettings().training.batch_size
  assert s.replace(data=DataSettings()).data == DataSettings()  # a whole part
  both = s.replace(data=DataSettings(dataset="digits"), limit_train=7)  # a part and a setting of it: both apply
  assert (both.data.dataset, both.data.limit_train) == ("digits", 7)
  with pytest.raises(ValueError, match="CompareSettings has no setting 'sync_period'"):
    s.replace(sync_period=3)
  with pytest.raises(dataclasses.FrozenInstanceError):
    s.seeding.seeds = 3  # pyright: ignore[reportAttributeAccessIssue]


def test_asdict_nests_the_parts_and_the_fingerprint_keeps_what_decides_the_numbers():
  s = CompareSettings()
  assert s.asdict()["network"]["mlp_hidden"] == [256, 256] and s.asdict()["seeding"]["seeds"] == 30
  fingerprint = s.fingerprint()
  # how many seeds, which ones, how they are grouped or spread, the t-test and the variants run do not decide a
  # chunk's numbers; everything else does, including every setting added later unless it says otherwise
  assert "seeding" not in fingerprint and "hardware" not in fingerprint
  assert "variants" not in fingerprint and "equal_var" not in fingerprint
  assert "segments_per_epoch" not in fingerprint["training"]
  assert fingerprint["training"]["schedule_epochs"] is None and fingerprint["optimizer"] == "sgd"
  assert s.replace(seeds=5, devices=2, seeds_per_chunk=3).fingerprint() == fingerprint
  assert s.replace(schedule_epochs=100).fingerprint() != fingerprint


def test_adding_a_setting_is_one_definition():
  """A setting defined once reaches replace, the command line, asdict and the fingerprint."""

  @dataclasses.dataclass(frozen=True)
  class Extra(Settings):
    training: TrainSettings = TrainSettings()
    warmup: int = settings.setting(0, "warm-up epochs")

  parser = argparse.ArgumentParser()
  settings.add_arguments(parser, Extra())
  parsed = settings.from_arguments(Extra(), parser.parse_args(["--warmup", "2", "--epochs", "3"]))
  assert parsed == Extra().replace(warmup=2, epochs=3)
  assert parsed.asdict()["warmup"] == 2 and parsed.fingerprint()["warmup"] == 2
  assert "--warmup WARMUP warm-up epochs (default: 0)" in " ".join(parser.format_help().split())


@pytest.mark.parametrize(
  "bad, match",
  [
    (dict(seeds=1), "seeds must be an int >= 2"),
    (dict(epochs=0), "epochs"),
    (dict(variants=("rewired",)), "include 'base'"),
    (dict(variants=("base", "base")), "distinct"),
    (dict(variants=("base", "shuffle")), "variants must be among"),
    (dict(model="vgg"), "model"),
    (dict(dataset="imagenet"), "dataset"),
    (dict(init="xavier"), "init"),
    (dict(limit_train=0), "limit_train"),
    (dict(mlp_hidden=()), "mlp_hidden"),
    (dict(momentum=1.0), "momentum"),
    (dict(batch_size=6000), r"batch_size \(6000\) exceeds the 5000 training examples"),
    (dict(epochs=2, schedule_epochs=1), "schedule_epochs"),
    (dict(seeds_per_chunk=0), "seeds_per_chunk"),
    (dict(devices=0), "devices must be None or an int >= 1"),
    (dict(model="transformer"), "model 'transformer' takes token sequences but dataset 'mnist' holds images"),
    (dict(dataset="pointer"), "model 'lenet' takes images but dataset 'pointer' holds token sequences"),
    (dict(dataset="pointer", model="mlp"), "model 'mlp' takes images"),
    (dict(norm="group"), "norm must be one of"),
    (dict(model="mlp", norm="batch"), "norm 'batch' is not available for model 'mlp'"),
    (dict(model="resmlp", norm="batch"), "norm 'batch' is not available for model 'resmlp'"),
    (dict(model="transformer", dataset="pointer", norm="layer"), "not available for model 'transformer'"),
    (dict(model="resmlp", mlp_hidden=(8, 16)), "one width repeated once per residual block"),
    (dict(optimizer="laperm_adam"), "optimizer must be one of"),
  ],
)
def test_impossible_compare_settings_are_refused(bad, match):
  with pytest.raises(ValueError, match=match):
    CompareSettings().replace(**bad).check()


@pytest.mark.parametrize(
  "bad, match",
  [
    (dict(seeds=1), "seeds must be an int >= 2"),
    (dict(sync_period=0), "sync_period"),
    (dict(model="vgg"), "model must be one of"),
    (dict(init="xavier"), "init must be one of"),
    (dict(dataset="imagenet"), "dataset must be one of"),
    (dict(mlp_hidden=()), "mlp_hidden"),
    (dict(limit_train=0), "limit_train"),
    (dict(epochs=0), "epochs"),
    (dict(learning_rate=-1.0), "learning_rate"),
  ],
)
def test_impossible_laperm_settings_are_refused(bad, match):
  with pytest.raises(ValueError, match=match):
    LaPermSettings().replace(**bad).check()


def test_train_sizes_match_the_loaded_data():
  from parewire_jax.experiments.data import load_dataset

  assert len(load_dataset("digits").x_train) == settings.TRAIN_SIZES["digits"]
  assert len(load_dataset("digits", limit_train=100).x_train) == settings.train_size("digits", 100)
  assert DataSettings(dataset="digits", limit_train=100).num_train == 100
