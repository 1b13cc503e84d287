"""WORLD features: analysis-synthesis round trip on corpus speech, layout, and the cache of a split."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqaudio.audio import load_audio
from vqaudio.data.world import WorldSettings, analyze, n_frames, split_features, synthesize
from vqaudio.errors import ConfigError
from vqaudio.evaluate.metrics import stoi_score

SR = 16000


def corpus_wavs(corpus: Path, n: int = 2) -> list[Path]:
    return sorted((corpus / "wav48_silence_trimmed").rglob("*.flac"))[:n]


@pytest.mark.parametrize("method", ["harvest", "dio"])
def test_analysis_synthesis_round_trip_is_intelligible(tiny_corpus: Path, method: str) -> None:
    s = WorldSettings(f0_method=method)
    wav = load_audio(corpus_wavs(tiny_corpus, 1)[0], SR)
    feats = analyze(wav, s)
    assert feats.shape == (n_frames(len(wav), 64), 40 + 1 + 2) and feats.dtype == np.float32
    assert set(np.unique(feats[:, s.vuv_index])) == {0.0, 1.0} and 0.3 < feats[:, s.vuv_index].mean() < 1.0
    voiced_f0 = np.exp(feats[feats[:, s.vuv_index] > 0, s.lf0_index])
    assert 60 <= voiced_f0.min() and voiced_f0.max() <= 500
    out = synthesize(feats, s, len(wav))
    assert out.shape == wav.shape
    assert stoi_score(wav, out, SR) > 0.9


def test_level_normalisation_gives_the_same_features_for_quiet_and_loud_input(tiny_corpus: Path) -> None:
    s = WorldSettings(f0_method="dio", level_db=-20.0)
    wav = load_audio(corpus_wavs(tiny_corpus, 1)[0], SR)
    quiet, loud = analyze(0.05 * wav, s), analyze(wav, s)
    assert np.allclose(quiet, loud, atol=1e-3)
    assert not np.allclose(analyze(0.05 * wav, WorldSettings(f0_method="dio"))[:, :40], loud[:, :40], atol=0.1)


def test_synthesis_accepts_any_decoder_output() -> None:
    s = WorldSettings()
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 5, (50, s.dims)).astype(np.float32)  # aperiodicity > 0 dB, F0 out of range
    out = synthesize(feats, s)
    assert out.shape == (50 * 64,) and np.isfinite(out).all()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="f0_method"):
        WorldSettings(f0_method="yin").check()
    with pytest.raises(ConfigError, match="f0 range"):
        WorldSettings(f0_floor=400, f0_ceil=300).check()


def test_split_cache_is_reused_and_invalidated(tmp_path: Path, tiny_corpus: Path) -> None:
    paths = []
    for i, src in enumerate(corpus_wavs(tiny_corpus, 3)):
        dst = tmp_path / f"u{i}.flac"
        dst.write_bytes(src.read_bytes())
        paths.append(str(dst))
    s = WorldSettings(f0_method="dio")
    cache = tmp_path / "cache"
    feats, frames = split_features(paths, s, cache, "train", workers=2, show_progress=False)
    assert frames.sum() == len(feats) and len(frames) == 3
    first = sorted(p.name for p in cache.iterdir())
    assert len(first) == 2  # features and frame counts
    again, _ = split_features(paths, s, cache, "train", workers=1, show_progress=False)
    assert isinstance(again, np.memmap) and np.array_equal(again, feats)  # read back, not analysed again
    # other settings: a cache of their own beside this one (experiments sharing a data dir keep theirs)
    split_features(paths, WorldSettings(f0_method="dio", spectral_dims=20), cache, "train", workers=1,
                   show_progress=False)
    assert set(first) < {p.name for p in cache.iterdir()} and len(list(cache.iterdir())) == 4
    # a changed audio file: analysed afresh, its features change, and the stale cache of these settings goes
    wav, _ = sf.read(paths[0], dtype="float32")
    sf.write(paths[0], wav[::-1].copy(), SR)
    t = time.time() + 5
    os.utime(paths[0], (t, t))
    changed, _ = split_features(paths, s, cache, "train", workers=1, show_progress=False)
    assert changed.shape[1] == feats.shape[1] and not np.array_equal(changed[:frames[0]], feats[:frames[0]])
    assert np.array_equal(changed[frames[0]:], feats[frames[0]:])
    names = {p.name for p in cache.iterdir()}
    assert len(names) == 4 and not set(first) & names
