"""Audio I/O: formats, resampling, downmix, refusals that name the file, mu-law, atomic saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio.audio import load_audio, mu_law_decode, mu_law_encode, resample, save_audio
from vqaudio.errors import AudioError


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(wav: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav))
    return float(np.argmax(spectrum) * sr / len(wav))


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled(tmp_path, sr):
    sf.write(tmp_path / "a.wav", sine(440, 0.5, sr), sr)
    wav = load_audio(tmp_path / "a.wav", 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 8000) <= 1
    assert abs(peak_hz(wav, 16000) - 440) < 5
    assert abs(np.abs(wav).max() - 0.5) < 0.02


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"),
                                         ("flac", "PCM_16"), ("ogg", "VORBIS")])
def test_formats(tmp_path, ext, subtype):
    x = sine(300, 0.25, 16000)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 16000, subtype=subtype)
    wav = load_audio(path)
    assert len(wav) == len(x)
    tolerance = 0.05 if subtype == "VORBIS" else 1e-3
    assert np.sqrt(np.mean((wav - x) ** 2)) < tolerance


def test_stereo_is_averaged(tmp_path):
    x = sine(300, 0.1, 16000)
    sf.write(tmp_path / "s.wav", np.stack([x, 0.5 * x], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), 0.75 * x, atol=1e-6)


def test_refusals_name_the_file(tmp_path):
    (tmp_path / "text.wav").write_text("not audio at all")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    bad = sine(300, 0.1, 16000)
    bad[10] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    bad[10] = np.inf
    sf.write(tmp_path / "inf.wav", bad, 16000, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", sine(300, 0.01, 16000), 16000)
    cases = {"missing.wav": "no such file", "text.wav": "not a readable", "empty.wav": "empty",
             "nan.wav": "NaN", "inf.wav": "NaN or infinite", "short.wav": "too short", ".": "directory"}
    for name, message in cases.items():
        with pytest.raises(AudioError, match=message) as err:
            load_audio(tmp_path / name, min_samples=1000)
        assert str(tmp_path / name) in str(err.value) or name == "."
        assert "\n" not in str(err.value)


def test_resample_noop_and_length():
    x = np.random.default_rng(0).standard_normal(4800).astype(np.float32)
    assert resample(x, 16000, 16000) is x
    assert len(resample(x, 48000, 16000)) == 1600


def test_mu_law_round_trip():
    x = torch.linspace(-1, 1, 20001)
    codes = mu_law_encode(x)
    assert codes.dtype == torch.long and codes.min() == 0 and codes.max() == 255
    assert (codes[1:] >= codes[:-1]).all()  # monotonic
    err = (mu_law_decode(codes) - x).abs()
    assert err.max() < 0.035  # coarse steps near full scale
    assert err[(x.abs() < 0.01)].max() < 1e-3  # fine steps near zero: the point of companding
    small = mu_law_encode(np.array([-1.0, 0.0, 1.0]), classes=16)
    assert small.tolist()[0] == 0 and small.tolist()[-1] == 15
    assert mu_law_encode(torch.tensor([5.0, -5.0])).tolist() == [255, 0]  # clipped


def test_save_audio_round_trip_and_clipping(tmp_path):
    x = torch.from_numpy(sine(500, 0.2, 16000, amp=1.5))
    save_audio(tmp_path / "o.wav", x)
    assert sf.info(tmp_path / "o.wav").subtype == "PCM_16"
    y = load_audio(tmp_path / "o.wav")
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99
    save_audio(tmp_path / "o.flac", x.numpy() / 2, 24000)
    assert sf.info(tmp_path / "o.flac").samplerate == 24000 and sf.info(tmp_path / "o.flac").format == "FLAC"


def test_save_audio_is_atomic(tmp_path):
    path = tmp_path / "keep.wav"
    save_audio(path, sine(500, 0.1, 16000))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_audio(path, sine(500, 0.2, 16000), subtype="NO_SUCH_SUBTYPE")
    assert path.read_bytes() == before
    assert [p.name for p in Path(tmp_path).iterdir()] == ["keep.wav"]  # no temp files left
