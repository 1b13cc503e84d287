"""Speaker identification on clearly different synthetic voices."""

from __future__ import annotations

import numpy as np

from vqaudio.evaluate.speaker_id import SpeakerClassifier, speaker_features

SR = 16000
VOICES = {"low": (100.0, (600.0, 1100.0)), "mid": (170.0, (400.0, 2000.0)), "high": (250.0, (800.0, 2600.0))}


def voice(f0: float, formants: tuple[float, float], seed: int, seconds: float = 0.8) -> np.ndarray:
    """A harmonic source at `f0` (with jitter) shaped by two resonances: a crude vowel of one voice."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    wav = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        gain = sum(1.0 / (1 + ((k * f0 - fm) / 150.0) ** 2) for fm in formants)
        wav += gain * np.sin(k * phase) / k
    wav *= 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(1, 3) * t))
    return (0.3 * wav / np.abs(wav).max() + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def test_features_shape_and_finite():
    f = speaker_features(voice(120, (500, 1500), 0), SR)
    assert f.shape == (80,) and np.isfinite(f).all()


def test_speaker_id_separates_synthetic_voices():
    train = [(voice(*VOICES[s], seed=i), s) for s in VOICES for i in range(6)]
    test = [(voice(*VOICES[s], seed=100 + i), s) for s in VOICES for i in range(3)]
    clf = SpeakerClassifier(SR).fit([w for w, _ in train], [s for _, s in train])
    assert clf.speakers == sorted(VOICES)
    scores = clf.score([w for w, _ in test], [s for _, s in test], sources=["low"] * len(test))
    assert scores.target_share == 1.0
    assert abs(scores.source_share - 1 / 3) < 1e-9  # only the true "low" utterances
