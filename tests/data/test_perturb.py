"""Training-time perturbations: each stage does what it says, targets stay clean, speaker copies shift pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.train_fixtures import make_data_root, synthetic_wav

from vqaudio.audio import load_audio
from vqaudio.config import PerturbConfig
from vqaudio.data import perturb as P
from vqaudio.data.dataset import SegmentDataset
from vqaudio.data.kaldi import DataDir
from vqaudio.data.world import WorldSettings, analyze
from vqaudio.errors import ConfigError

SR = 16000


def band_share(wav: np.ndarray, low: float, high: float) -> float:
    """Share of `wav`'s energy between `low` and `high` Hz."""
    power = np.abs(np.fft.rfft(wav)) ** 2
    f = np.fft.rfftfreq(len(wav), 1 / SR)
    return float(power[(f >= low) & (f < high)].sum() / power.sum())


def white(seed: int = 0, n: int = SR) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_telephone_band_removes_the_energy_outside_300_3400_hz() -> None:
    x = white()
    y = P.band_limit(x, SR, *P.TELEPHONE_BAND)
    assert band_share(x, 3500, 8000) > 0.5
    assert band_share(y, 3500, 8000) < 1e-6 and band_share(y, 0, 200) < 1e-6
    assert band_share(y, 400, 3300) > 0.9


def test_lowpass_and_resampling_round_trip_remove_the_energy_above_the_cutoff() -> None:
    x = white(1)
    assert band_share(P.band_limit(x, SR, 0.0, 5000.0), 5100, 8000) < 1e-6
    y = P.resample_round_trip(x, SR, 8000)
    assert y.shape == x.shape and y.dtype == np.float32
    assert band_share(y, 4100, 8000) < 1e-3 and band_share(y, 0, 4000) > 0.99


@pytest.mark.parametrize("snr", [10.0, 20.0, 30.0])
@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_noise_is_added_at_the_requested_snr(snr: float, exponent: float) -> None:
    x = synthetic_wav(0, 1.0, 150.0)
    y = P.add_noise(x, np.random.default_rng(3), snr, exponent, SR)
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.1


def test_clipping_flattens_peaks_and_keeps_the_level() -> None:
    x = synthetic_wav(1, 1.0, 120.0)
    y = P.clip_peaks(x, 0.3)
    assert np.abs(y).max() < 0.6 * np.abs(x).max()
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-3)
    assert np.mean(np.isclose(np.abs(y), np.abs(y).max())) > 0.05  # a flat top: many samples at the limit


def test_channel_gain_stays_within_its_range_and_draws_are_seeded() -> None:
    x = synthetic_wav(2, 0.5, 200.0)
    cfg = PerturbConfig(channel=1.0, eq=0.0, bandlimit=0.0, resample=0.0, noise=0.0, clip=0.0, gain_db=6.0)
    gains = [20 * np.log10(np.sqrt(np.mean(P.channel(x, np.random.default_rng(s), cfg, SR) ** 2) / np.mean(x ** 2)))
             for s in range(40)]
    assert max(np.abs(gains)) <= 6.0 + 1e-4 and np.std(gains) > 1.0
    full = PerturbConfig(channel=1.0, eq=1.0, bandlimit=1.0, resample=1.0, noise=1.0, clip=1.0)
    a, b = (P.channel(x, np.random.default_rng(9), full, SR) for _ in range(2))
    assert np.array_equal(a, b) and not np.allclose(a, x)


def test_random_eq_keeps_changes_within_its_range() -> None:
    x = white(4)
    y = P.random_eq(x, np.random.default_rng(0), SR, 6.0)
    ratio = np.abs(np.fft.rfft(y))[10:] / np.abs(np.fft.rfft(x))[10:]
    db = 20 * np.log10(ratio)
    assert db.max() <= 6.0 + 1e-3 and db.min() >= -6.0 - 1e-3 and db.std() > 0.5


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ConfigError, match="perturb.noise"):
        P.check(PerturbConfig(noise=1.5))
    with pytest.raises(ConfigError, match="snr_db"):
        P.check(PerturbConfig(snr_db=[30.0, 10.0]))


def test_speaker_copies_shift_the_pitch_and_keep_the_timing(tiny_corpus: Path) -> None:
    world = WorldSettings(f0_method="dio", level_db=-20.0)
    wav = load_audio(sorted((tiny_corpus / "wav48_silence_trimmed").rglob("*.flac"))[0], SR)
    feats = analyze(wav, world)
    cfg = PerturbConfig(speaker=1.0, copies=3, pitch_semitones=6.0, formant_warp=0.15)
    copies = P.speaker_copies(feats, np.array([len(feats)]), np.array([len(wav)]), world, cfg, seed=0,
                              features_key="k", show_progress=False)
    assert copies.shape == (3, len(wav)) and copies.dtype == np.int16
    voiced = feats[:, world.vuv_index] > 0
    for (f0_scale, _warp), copy in zip(P.copy_settings(cfg, 0, 0), copies, strict=True):
        again = analyze(copy / 32767.0, world)
        both = voiced & (again[:, world.vuv_index] > 0)
        shift = np.median(again[both, world.lf0_index] - feats[both, world.lf0_index])
        assert shift == pytest.approx(np.log(f0_scale), abs=0.06)  # within 1 semitone
        assert both.sum() > 0.7 * voiced.sum()  # same voicing, same places: the timing is kept


def test_dataset_perturbs_inputs_and_leaves_targets_untouched(tmp_path: Path) -> None:
    root = make_data_root(tmp_path / "data", utts=2, seconds=0.5)
    split = root / "train"
    speakers = DataDir.load(split).speakers
    world = WorldSettings(f0_method="dio", spectral_dims=24)
    cfg = PerturbConfig(speaker=0.5, copies=2, channel=0.5)
    args = (split, speakers, 1024, SR, 0, False, tmp_path / "cache", -20.0, world)
    clean, perturbed = SegmentDataset.from_data_dir(*args), SegmentDataset.from_data_dir(*args, perturb=cfg)
    assert list((split / "world").glob("copies-train-*.lengths.npy"))  # the copies are kept beside the features
    changed = 0
    for step in range(6):
        a, b = clean.batch(step, 4), perturbed.batch(step, 4)
        assert a.inputs is None and b.inputs is not None and b.inputs.shape == b.wav.shape
        assert torch.equal(a.wav, b.wav) and torch.equal(a.features, b.features)  # the targets are the clean ones
        changed += int((b.inputs - b.wav).abs().amax(dim=1).gt(1e-3).sum())
        assert torch.equal(perturbed.batch(step, 4).inputs, b.inputs)  # a function of (seed, rank, step)
    assert 0 < changed < 24  # some windows perturbed, some left clean (3 in 4 expected)
    assert all(v.inputs is None for v in perturbed.fixed_batches(2, 4))  # validation stays clean


def test_speaker_copies_are_read_at_the_windows_own_samples() -> None:
    """Each perturbed window is the same span of the copy as the clean window is of the samples, across utterances
    of different lengths (here the copy is the samples doubled, so the input must be twice the clean window)."""
    from vqaudio.data.dataset import Perturbation

    audio = [synthetic_wav(s, seconds, 100.0 + 30 * s) for s, seconds in enumerate((0.3, 0.05, 0.7, 0.2))]
    ds = SegmentDataset.from_waveforms(audio, [0, 1, 2, 3], 2048, seed=3)
    copies = (ds.samples.astype(np.int32)[None] // 2).astype(np.int16)  # one copy: half the samples
    ds.perturbation = Perturbation(PerturbConfig(speaker=1.0, copies=1), SR, copies)
    for step in range(5):
        batch = ds.batch(step, 8)
        assert torch.allclose(batch.inputs, batch.wav / 2, atol=1e-4)
