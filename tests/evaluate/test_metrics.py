"""Signal metrics on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vqaudio.evaluate import metrics

SR = 16000


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic tone with changing f0: enough structure for STOI and PESQ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) ** 2
    return (0.2 * env * wav + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def test_identical_audio_is_perfect_and_noise_is_worse():
    clean = speechlike()
    noisy = clean + 0.1 * np.random.default_rng(1).standard_normal(len(clean)).astype(np.float32)
    assert metrics.stoi_score(clean, clean, SR) > 0.99
    assert metrics.stoi_score(clean, noisy, SR) < 0.9
    assert metrics.mcd(clean, clean, SR) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mcd(clean, noisy, SR) > 2.0
    assert metrics.log_mel_distance(clean, clean, SR) == pytest.approx(0.0, abs=1e-9)
    assert metrics.log_mel_distance(clean, noisy, SR) > 1.0


def test_pesq_orders_clean_above_noisy_and_gives_nan_on_silence():
    clean = speechlike()
    noisy = clean + 0.05 * np.random.default_rng(2).standard_normal(len(clean)).astype(np.float32)
    assert metrics.pesq_wb(clean, clean, SR) > 4.0
    assert metrics.pesq_wb(clean, noisy, SR) < 3.0
    assert math.isnan(metrics.pesq_wb(np.zeros(SR), np.zeros(SR), SR))


def test_mcd_uses_dtw_when_lengths_differ():
    clean = speechlike()
    slowed = np.repeat(clean[: len(clean) // 2], 2)  # same content, different timing
    aligned = metrics.mcd(clean[: len(clean) // 2], clean[: len(clean) // 2][::-1].copy(), SR, align=True)
    assert metrics.mcd(clean, clean, SR, align=True) == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(metrics.mcd(clean, slowed, SR)) and np.isfinite(aligned)


def test_dtw_distance_is_zero_for_time_warped_copy_and_positive_otherwise():
    a = np.array([[0.0], [1.0], [2.0]])
    b = np.array([[0.0], [0.0], [1.0], [2.0], [2.0]])
    assert metrics.dtw_distance(metrics.euclidean(a, b)) == pytest.approx(0.0)
    assert metrics.dtw_distance(metrics.euclidean(a, b + 1.0)) > 0.3


def test_codebook_usage_uniform_and_single_code():
    uni = metrics.codebook_usage(np.arange(64).repeat(10), 64)
    assert uni.perplexity == pytest.approx(64.0) and uni.fraction_used == 1.0 and uni.entropy_bits == pytest.approx(6)
    one = metrics.codebook_usage(np.zeros(100, dtype=int), 64)
    assert one.perplexity == pytest.approx(1.0) and one.used == 1
    with pytest.raises(ValueError):
        metrics.codebook_usage(np.array([64]), 64)


def test_raw_bitrate():
    assert metrics.raw_bitrate(16000, 64, 512) == pytest.approx(250 * 9)
    assert metrics.raw_bitrate(16000, 640, 128) == pytest.approx(25 * 7)


def test_digital_silence_does_not_dominate():
    """Inaudible noise (-100 dB) over exact zeros must not look like a large distortion."""
    x = np.concatenate([np.zeros(SR // 2, np.float32), speechlike(), np.zeros(SR // 2, np.float32)])
    y = x + 1e-5 * np.random.default_rng(3).standard_normal(len(x)).astype(np.float32)
    assert metrics.mcd(x, y, SR) < 0.5
    assert metrics.log_mel_distance(x, y, SR) < 0.5
    louder = x + 1e-2 * np.random.default_rng(3).standard_normal(len(x)).astype(np.float32)
    assert metrics.mcd(x, louder, SR) > 2.0


def test_mel_cepstrum_has_true_cepstrum_scale():
    """ln|X(w)| = 2 c1 cos(w) over the bands must give c1 back (not the orthonormal DCT's sqrt(2 N) c1)."""
    bands = 40
    w = np.pi * (np.arange(bands) + 0.5) / bands
    log_power = 2 * (2 * 0.3 * np.cos(w))  # ln|X|^2 = 2 ln|X|
    cep = metrics.mel_cepstrum(log_power[None], 3)
    assert cep[0] == pytest.approx([0.3, 0.0, 0.0], abs=1e-9)
