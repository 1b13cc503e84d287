"""Parallel readings: other voices, the same words at the original's timing, at the model's level; cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.train_fixtures import make_data_root, synthetic_wav

from vqaudio.audio import load_audio, speech_level_db
from vqaudio.config import PerturbConfig
from vqaudio.data import perturb as P
from vqaudio.data import readings as R
from vqaudio.data.dataset import Perturbation, SegmentDataset
from vqaudio.data.kaldi import DataDir
from vqaudio.data.synth import SPEAKERS
from vqaudio.data.world import WorldSettings, analyze
from vqaudio.errors import ConfigError

SR = 16000


def test_partners_alternate_genders_and_are_never_the_speaker_or_an_unnamed_voice() -> None:
    voices = R.reading_voices(["p225", "p226", "p227", "p228", "alice"])
    assert [v.id for v in voices] == ["p225", "p226", "p227", "p228"]  # a held-out voice never reads
    own = ["p225", "p226", "p227", "p228"] * 5
    partners = R.reading_partners(own, voices, 3, seed=0)
    for speaker, chosen in zip(own, partners, strict=True):
        assert [v.gender for v in chosen] == ["F", "M", "F"]
        assert all(v.id != speaker for v in chosen)
    assert partners == R.reading_partners(own, voices, 3, seed=0)  # seeded
    assert partners != R.reading_partners(own, voices, 3, seed=1)
    assert R.reading_voices(["alice", "bob"]) == list(SPEAKERS)  # no embedded name: all 48 voices read


def test_alignment_recovers_a_known_time_warp() -> None:
    rng = np.random.default_rng(0)
    original = np.cumsum(rng.standard_normal((120, 8)), axis=0)  # a random walk: every frame distinct
    # the reading: the same trajectory 1.5x slower, shifted by a constant (mean removal must cancel it)
    slow = np.arange(180) / 1.5
    reading = np.stack([np.interp(slow, np.arange(120), original[:, d]) for d in range(8)], axis=1) + 3.0
    frames = R.align_frames(original, reading)
    assert frames.shape == (120,) and np.all(np.diff(frames) >= 0)
    assert np.abs(frames - np.arange(120) * 1.5).max() <= 1.5


def test_readings_are_other_voices_saying_the_same_words_at_the_same_time(tiny_corpus: Path) -> None:
    world = WorldSettings(f0_method="dio", level_db=-20.0)
    path = tiny_corpus / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac"  # p225: American female
    wav = load_audio(path, SR)
    text = (tiny_corpus / "txt" / "p225" / "p225_001.txt").read_text().strip()
    feats = analyze(wav, world)
    cfg = PerturbConfig(speaker=1.0, copies=2, readings=2)
    rows = R.parallel_readings(np.concatenate([feats, feats]), np.array([len(feats)] * 2),
                               np.array([len(wav)] * 2), [text, ""], ["p225", "p225"],
                               ["p225", "p226", "p227", "p228"], world, cfg, 0, "k", show_progress=False)
    assert rows.shape == (2, 2 * len(wav)) and rows.dtype == np.int16
    female, male = rows[0, :len(wav)] / 32767.0, rows[1, :len(wav)] / 32767.0

    def energy(x: np.ndarray) -> np.ndarray:
        n = len(x) // 320
        return np.log(np.square(x[:n * 320].reshape(n, 320), dtype=np.float64).mean(1) + 1e-4)

    def median_f0(x: np.ndarray) -> float:
        f = analyze(x, world)
        return float(np.exp(np.median(f[f[:, world.vuv_index] > 0, world.lf0_index])))

    for reading in (female, male):
        assert np.corrcoef(energy(wav / np.abs(wav).max()), energy(reading))[0, 1] > 0.7  # the original's timing
        assert speech_level_db(reading, SR) == pytest.approx(-20.0, abs=1.0)
        assert np.abs(reading - wav * 10 ** ((-20 - speech_level_db(wav, SR)) / 20)).mean() > 0.01  # not a copy
    assert median_f0(male) < 0.75 * median_f0(wav)  # p226 or p228 (male) read it
    # no transcript (the second utterance): its speaker copy 0 instead, for each reading
    copies = P.speaker_copies(np.concatenate([feats, feats]), np.array([len(feats)] * 2), np.array([len(wav)] * 2),
                              world, cfg, 0, "k", show_progress=False)
    assert np.array_equal(rows[0, len(wav):], copies[0, len(wav):])
    assert np.array_equal(rows[1, len(wav):], copies[0, len(wav):])


def test_perturbed_windows_are_drawn_from_copies_and_readings_alike() -> None:
    audio = [synthetic_wav(s, seconds, 100.0 + 30 * s) for s, seconds in enumerate((0.3, 0.7, 0.2))]
    ds = SegmentDataset.from_waveforms(audio, [0, 1, 2], 2048, seed=3)
    half = (ds.samples.astype(np.int32)[None] // 2).astype(np.int16)
    quarter = (ds.samples.astype(np.int32)[None] // 4).astype(np.int16)
    ds.perturbation = Perturbation(PerturbConfig(speaker=1.0, copies=1, readings=1), SR, half, quarter)
    seen = set()
    for step in range(8):
        batch = ds.batch(step, 8)
        for x, y in zip(batch.inputs, batch.wav, strict=True):
            kind = [k for k, d in ((2, 2), (4, 4)) if torch.allclose(x, y / d, atol=1e-4)]
            assert len(kind) == 1 or not y.abs().max() > 0
            seen.update(kind)
    assert seen == {2, 4}


def test_training_data_keeps_the_readings_beside_the_features(tmp_path: Path) -> None:
    root = make_data_root(tmp_path / "data", utts=2, seconds=0.5)
    split = root / "train"
    data = DataDir.load(split)
    data.text = {u: "the cat sat on the mat" for u in data.utterances}
    data.save()
    world = WorldSettings(f0_method="dio", spectral_dims=24)
    cfg = PerturbConfig(speaker=0.5, copies=1, readings=2)
    ds = SegmentDataset.from_data_dir(split, data.speakers, 1024, SR, 0, False, tmp_path / "cache", -20.0, world,
                                      perturb=cfg)
    assert ds.perturbation.readings.shape == (2, len(ds.samples))
    assert list((split / "world").glob("readings-train-*.lengths.npy"))
    again = SegmentDataset.from_data_dir(split, data.speakers, 1024, SR, 0, False, tmp_path / "cache", -20.0, world,
                                         perturb=cfg)
    assert isinstance(again.perturbation.readings, np.memmap)  # read from the cache, not made again
    assert np.array_equal(again.perturbation.readings, ds.perturbation.readings)


def test_bad_readings_are_refused() -> None:
    with pytest.raises(ConfigError, match="perturb.readings"):
        P.check(PerturbConfig(speaker=0.5, readings=-1))
    with pytest.raises(ConfigError, match="perturb.readings"):
        P.check(PerturbConfig(speaker=0.0, readings=2))
