"""Typed config: YAML files, `base:` overlays, refusal of unknown keys and bad values, typed overrides."""

from __future__ import annotations

import pytest

from vqaudio.config import Config, dump_yaml, hop_length, load_config, preset_names
from vqaudio.errors import ConfigError
from vqaudio.models.encoder import Encoder


def write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_hop():
    cfg = load_config()
    assert isinstance(cfg, Config) and cfg == Config()
    assert hop_length(cfg.model) == 64
    assert cfg.prior.wavenet.classes == cfg.model.vq.codebook_size


def test_yaml_file_and_float_strings(tmp_path):
    p = write(tmp_path, "c.yaml", "train:\n  lr: 1e-3\n  batch_size: 4\nmodel:\n  encoder:\n    strides: [2, 4]\n")
    cfg = load_config(p)
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)  # YAML 1.1 reads 1e-3 as str
    assert cfg.train.batch_size == 4 and hop_length(cfg.model) == 8
    assert cfg.train.max_steps == Config().train.max_steps  # untouched fields keep defaults


def test_base_overlay(tmp_path):
    write(tmp_path, "base.yaml", "train:\n  batch_size: 4\n  lr: 0.01\nmodel:\n  vq:\n    codebook_size: 256\n")
    child = write(tmp_path, "child.yaml", "base: base.yaml\ntrain:\n  batch_size: 2\n")
    cfg = load_config(child)
    assert cfg.train.batch_size == 2  # the overlay wins
    assert cfg.train.lr == 0.01 and cfg.model.vq.codebook_size == 256  # the rest comes from the base


def test_base_cycle_refused(tmp_path):
    write(tmp_path, "a.yaml", "base: b.yaml\n")
    write(tmp_path, "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="too deep"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("text,message", [
    ("train:\n  lrr: 0.1\n", "unknown config key.*train.lrr"),
    ("trian: {}\n", "unknown config key.*trian"),
    ("train:\n  batch_size: big\n", "train.batch_size: expected an integer"),
    ("train:\n  batch_size: 1.5\n", "expected an integer"),
    ("train:\n  amp: 1\n", "train.amp: expected true/false"),
    ("train:\n  lr: fast\n", "train.lr: expected a number"),
    ("model:\n  encoder:\n    strides: 2\n", "expected a list"),
    ("model:\n  encoder:\n    strides: [2, x]\n", r"strides\[1\]: expected an integer"),
    ("model: 3\n", "model: expected a mapping"),
    ("- a\n- b\n", "mapping at the top level"),
    ("train: [unclosed\n", "not valid YAML"),
])
def test_bad_files_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "bad.yaml", text))


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown config 'no_such_preset'"):
        load_config("no_such_preset")


def test_typed_overrides():
    cfg = load_config(None, ["train.lr=1e-3", "model.vq.codebook_size=256", "train.amp=false",
                             "model.encoder.strides=[4, 4]", "model.vq.ema=true", "train.max_minutes=2"])
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.model.vq.codebook_size == 256
    assert cfg.train.amp is False and cfg.model.vq.ema is True
    assert cfg.model.encoder.strides == [4, 4] and hop_length(cfg.model) == 16
    assert cfg.train.max_minutes == 2.0 and isinstance(cfg.train.max_minutes, float)


@pytest.mark.parametrize("item,message", [
    ("train.lr", "expected key=value"),
    ("train.nope=1", "unknown key 'train.nope'"),
    ("nope.lr=1", "unknown key 'nope'"),
    ("train.lr.x=1", "unknown key"),
    ("train.batch_size=1.5", "expected an integer"),
    ("train.amp=maybe", "expected true/false"),
    ("model.encoder.strides=3", "expected a list"),
])
def test_bad_overrides_refused(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [item])


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["train.lr=2e-4", "model.encoder.strides=[2, 2, 4]"])
    p = write(tmp_path, "dump.yaml", dump_yaml(cfg))
    assert load_config(p) == cfg


@pytest.mark.parametrize("name", preset_names() or ["-"])
def test_presets_load(name):
    if name == "-":
        pytest.skip("no presets shipped yet")
    cfg = load_config(name)
    assert hop_length(cfg.model) >= 1 and cfg.train.segment_samples % hop_length(cfg.model) == 0
    assert Encoder(cfg.model.encoder, cfg.model.vq.dim).hop_length == hop_length(cfg.model)  # the sizes build
