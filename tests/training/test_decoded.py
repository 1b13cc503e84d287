"""Decoded copies (`perturb.decoded_from`): the second phase trains on the model's own reconstructions and
conversions; the pause, the copies and a resume inside the second phase."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.train_fixtures import make_data_root, quick_config

from vqaudio.audio import INT16_SCALE
from vqaudio.errors import ConfigError
from vqaudio.inference.codec import convert, load_codec
from vqaudio.training.decoded import copy_targets, make_decoded_copies
from vqaudio.training.vqvae import train_vqvae, vqvae_task

TWO_PHASES = ("train.max_steps=6", "train.checkpoint_every=2", "perturb.speaker=1.0", "perturb.copies=2",
              "perturb.decoded_from=0.5")


class Crash(Exception):
    """Stands in for the process dying between checkpoints."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data_root(tmp_path_factory.mktemp("decoded") / "data", speakers=("p225", "p226", "p227"))


@pytest.fixture(scope="module")
def whole(data: Path, tmp_path_factory) -> Path:
    """A two-phase run of 6 steps, uninterrupted."""
    exp = tmp_path_factory.mktemp("whole") / "exp"
    train_vqvae(data, exp, quick_config(*TWO_PHASES), show_progress=False)
    return exp


def losses(exp: Path) -> list[tuple[int, float]]:
    lines = (exp / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["kind"] == "train"]


def same_numbers(a: object, b: object) -> bool:
    """Nested dicts / lists equal in structure, their numbers to a relative 1e-5 (torch's float reductions may sum
    in another order from run to run)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_numbers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(np.isclose(a, b, rtol=1e-5, atol=0.0))
    return a == b


def test_copy_targets_put_the_own_voice_first_then_distinct_other_voices() -> None:
    speakers = np.array([0, 1, 2, 3, 1, 0])
    targets = copy_targets(speakers, 4, 3, seed=0)
    assert targets.shape == (6, 3) and np.array_equal(targets[:, 0], speakers)
    for own, row in zip(speakers, targets, strict=True):
        assert own not in row[1:] and len(set(row[1:])) == 2
    assert np.array_equal(targets, copy_targets(speakers, 4, 3, seed=0))
    assert not np.array_equal(targets, copy_targets(speakers, 4, 3, seed=1))
    assert np.array_equal(copy_targets(np.zeros(2, int), 1, 3, seed=0), np.zeros((2, 3)))  # one voice: itself


def test_the_copies_are_the_models_reconstruction_and_conversions(data: Path, whole: Path) -> None:
    loaded = load_codec(whole / "model.pt", "cpu")
    recorded = loaded.extra.pop("postfilter")  # as exported at the pause: no postfilter reference yet
    task = vqvae_task(data, quick_config(*TWO_PHASES), show_progress=False)
    ds = task.train_data
    out = make_decoded_copies(loaded, ds, 2, 0, np.zeros((2, len(ds.samples)), np.int16), show_progress=False)
    # measured first, as training records it at the end (the same statistics, up to float summation order)
    assert same_numbers(loaded.extra["postfilter"], recorded)
    targets = copy_targets(ds.speaker_index, 3, 2, 0)
    for u in (0, len(ds) - 1):
        a, b = ds.offsets[u], ds.offsets[u + 1]
        wav = ds.samples[a:b] / INT16_SCALE
        for c in range(2):
            alone = convert(loaded, [wav], loaded.speakers[targets[u, c]])[0]
            copy = out[c, a:b].astype(np.float64)
            assert np.corrcoef(copy, alone)[0, 1] > 0.99  # the same conversion, at the speech level
            assert abs(np.corrcoef(copy, wav)[0, 1]) < 0.9  # vocoded, not the utterance itself


def test_two_phases_change_the_encoder_inputs_at_the_pause_only(data: Path, whole: Path, tmp_path: Path) -> None:
    marker = json.loads((whole / "cache" / "decoded-copies.json").read_text(encoding="utf-8"))
    assert marker == {"step": 3, "copies": 2, "seed": 0}
    starts = [json.loads(line)["step"] for line in (whole / "log.jsonl").read_text(encoding="utf-8").splitlines()
              if json.loads(line)["kind"] == "start"]
    assert starts == [0, 3]
    one_phase = quick_config(*TWO_PHASES[:-1])
    train_vqvae(data, tmp_path / "one", one_phase, show_progress=False)
    a, b = losses(whole), losses(tmp_path / "one")
    assert a[:3] == b[:3] and all(x[1] != y[1] for x, y in zip(a[3:], b[3:], strict=True))


def test_a_crash_in_the_second_phase_resumes_the_same_run_with_the_same_copies(data: Path, whole: Path,
                                                                              tmp_path: Path) -> None:
    def crash(step: int, record: dict) -> None:
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        train_vqvae(data, tmp_path / "split", quick_config(*TWO_PHASES), on_step=crash, show_progress=False)
    copies = tmp_path / "split" / "cache" / "decoded-copies.npy"
    made = copies.stat().st_mtime_ns
    result = train_vqvae(data, tmp_path / "split", quick_config(*TWO_PHASES), show_progress=False)
    assert (result.step, result.stop_reason) == (6, "max_steps")
    assert copies.stat().st_mtime_ns == made  # reused, not made again from the later model
    assert np.array_equal(np.load(copies), np.load(whole / "cache" / "decoded-copies.npy"))
    assert losses(tmp_path / "split") == losses(whole)


def test_a_fresh_run_makes_its_own_copies_not_those_left_in_the_cache(data: Path, whole: Path,
                                                                    tmp_path: Path) -> None:
    cache = tmp_path / "exp" / "cache"
    cache.mkdir(parents=True)
    for name in ("decoded-copies.npy", "decoded-copies.lengths.npy", "decoded-copies.json"):
        (cache / name).write_bytes((whole / "cache" / name).read_bytes())
    stale = np.zeros_like(np.load(cache / "decoded-copies.npy"))  # another run's copies, same shape and marker
    np.save(cache / "decoded-copies.npy", stale)
    train_vqvae(data, tmp_path / "exp", quick_config(*TWO_PHASES), show_progress=False)
    assert np.array_equal(np.load(cache / "decoded-copies.npy"), np.load(whole / "cache" / "decoded-copies.npy"))
    assert losses(tmp_path / "exp") == losses(whole)


@pytest.mark.parametrize("overrides, message", [
    (("perturb.speaker=0.5", "perturb.decoded_from=1.0"), "fraction of the run"),
    (("perturb.decoded_from=0.5",), "needs perturb.speaker > 0"),
])
def test_bad_decoded_from_is_refused(data: Path, tmp_path: Path, overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_vqvae(data, tmp_path / "exp", quick_config(*overrides), show_progress=False)
