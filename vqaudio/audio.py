"""Audio I/O in one place: load, save, resample, downmix, and mu-law companding.

Every audio file vqaudio reads goes through `load_audio`; every one it writes through
`save_audio` (atomically). No torchaudio: its wheels do not load against CPU-only torch,
and what it would give here is a few lines of numpy/torch/librosa.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqaudio.errors import AudioError
from vqaudio.fileio import atomic_path

DEFAULT_SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")  # what folders of audio are searched for
INT16_SCALE = 32767.0  # float [-1, 1] <-> the int16 stores of training audio


def load_audio(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE, min_samples: int = 1,
               warnings: list[str] | None = None) -> np.ndarray:
    """Read any file soundfile can read as mono float32 at `sample_rate`.

    Integer and float formats, any channel count (averaged to mono) and any sample
    rate (resampled with soxr HQ, as librosa's soxr_hq) are accepted. With a `warnings` list, what
    `input_warnings` finds in the file (at its own rate) is appended to it, each naming the file.

    Returns:
        float32 array of shape [T] (samples), nominally in [-1, 1].

    Raises:
        AudioError: the file is missing, not audio, empty, shorter than `min_samples`
            after resampling, or holds NaN/inf samples. The message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{p}: not a readable audio file ({_first_line(e)})") from None
    if data.size == 0:
        raise AudioError(f"{p}: audio file is empty")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: audio holds NaN or infinite samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if warnings is not None:
        warnings.extend(f"{p}: {w}" for w in input_warnings(wav, sr, sample_rate))
    wav = resample(wav, sr, sample_rate)
    if len(wav) < min_samples:
        raise AudioError(
            f"{p}: too short ({len(wav)} samples at {sample_rate} Hz; at least {min_samples} needed)"
        )
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a [T] float array from `orig_sr` to `target_sr` Hz (no-op when equal)."""
    if orig_sr == target_sr:
        return wav
    # soxr directly: the same resampler as librosa's res_type="soxr_hq", without librosa's
    # several-second import (numba), which every command that reads audio would pay.
    import soxr

    return soxr.resample(np.asarray(wav, dtype=np.float32), orig_sr, target_sr, quality="HQ")


def save_audio(path: str | os.PathLike, wav: np.ndarray | torch.Tensor, sample_rate: int = DEFAULT_SAMPLE_RATE,
               subtype: str | None = None) -> None:
    """Write a mono [T] float waveform atomically; the format follows the extension.

    Samples are clipped to [-1, 1]. WAV files default to 16-bit PCM.
    """
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    p = Path(path)
    fmt = p.suffix.lstrip(".").upper() or "WAV"
    if subtype is None and fmt == "WAV":
        subtype = "PCM_16"
    with atomic_path(p) as tmp:
        sf.write(str(tmp), wav, sample_rate, format=fmt, subtype=subtype)


def to_int16(wav: np.ndarray) -> np.ndarray:
    """float [T] in [-1, 1] -> int16 [T], clipped and rounded (int16 input is returned as is)."""
    if wav.dtype == np.int16:
        return wav
    return np.round(np.clip(wav, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def frame_power(wav: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE, seconds: float = 0.02) -> np.ndarray:
    """Mean power of each whole frame of `seconds` (20 ms) of `wav` [T], float64 [T // frame] (one frame of all of
    `wav` when it is shorter; [0.0] when empty)."""
    frame = max(1, int(seconds * sample_rate))
    n = len(wav) // frame
    if n == 0:
        return np.array([np.mean(np.square(wav, dtype=np.float64))]) if len(wav) else np.zeros(1)
    return np.square(wav[: n * frame].reshape(n, frame), dtype=np.float64).mean(axis=1)


def speech_level_db(wav: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE) -> float:
    """Speech level in dBFS: the mean power of the loudest half of the 20 ms frames of `wav` [T].

    The loudest half, so pauses and leading silence do not lower it (a crude active-speech level); -inf for
    digital silence.
    """
    power = frame_power(wav, sample_rate)
    loud = np.sort(power)[len(power) // 2:]
    mean = float(loud.mean())
    return 10.0 * math.log10(mean) if mean > 0 else -math.inf


def level_gain(wav: np.ndarray, target_db: float | None, sample_rate: int = DEFAULT_SAMPLE_RATE,
               max_gain_db: float = 40.0) -> float:
    """Linear gain that brings `wav` to `target_db` dBFS speech level (1 when target_db is None or the input is
    silent); at most `max_gain_db` of boost, so near-silence is not blown up into noise."""
    if target_db is None:
        return 1.0
    level = speech_level_db(wav, sample_rate)
    if not math.isfinite(level):
        return 1.0
    return float(10.0 ** (min(target_db - level, max_gain_db) / 20.0))


def normalize_level(wav: np.ndarray, target_db: float | None, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """`wav` [T] scaled to `target_db` dBFS speech level (see `level_gain`), float32; unchanged for None."""
    if target_db is None:
        return wav
    return (np.asarray(wav, np.float32) * np.float32(level_gain(wav, target_db, sample_rate))).astype(np.float32)


SILENT_DB = -50.0  # speech level (dBFS) below which an input is called near-silent
CLIPPED_SHARE = 0.001  # share of samples in flat runs at the peak above which an input is called clipped
BAND_FLOOR_DB = 60.0  # spectrum this far below its peak counts as empty (bandwidth estimate)
FULL_BAND = 0.9  # a bandwidth this share of the model's Nyquist frequency or more counts as full band


def bandwidth_hz(wav: np.ndarray, sample_rate: int) -> float:
    """Effective bandwidth of `wav` [T]: the highest frequency whose long-term level (mean power of 32 ms frames,
    smoothed over 250 Hz) is within BAND_FLOOR_DB of the peak level; an 8 kHz recording upsampled to 16 kHz gives
    ~4000 Hz."""
    n = 512 * max(1, sample_rate // 16000)
    frames = len(wav) // n
    if frames == 0:
        return sample_rate / 2
    x = wav[: frames * n].reshape(frames, n) * np.hanning(n)
    power = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0)
    width = max(1, int(round(250 / (sample_rate / n))))
    level = 10 * np.log10(np.convolve(power, np.ones(width) / width, mode="same") + 1e-20)
    above = np.nonzero(level >= level.max() - BAND_FLOOR_DB)[0]
    return float(above[-1] * sample_rate / n)


def clipped_share(wav: np.ndarray) -> float:
    """Share of samples of `wav` [T] in runs of 3 or more equal samples at (within 0.1% of) the absolute peak."""
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak <= 0:
        return 0.0
    at_peak = np.abs(wav) >= 0.999 * peak
    run = at_peak[2:] & at_peak[1:-1] & at_peak[:-2] & (np.abs(np.diff(wav, 2)) < 1e-6 * max(peak, 1.0))
    return float(run.sum()) / len(wav)


def input_warnings(wav: np.ndarray, sample_rate: int, model_rate: int = DEFAULT_SAMPLE_RATE) -> list[str]:
    """What may make an input code or convert worse (warnings, not refusals) for `wav` [T] at its own
    `sample_rate`: a bandwidth below the model's (`model_rate` / 2), clipping, near-silence."""
    out = []
    level = speech_level_db(wav - np.mean(wav), sample_rate)
    if not level > SILENT_DB:
        return [f"near-silent (speech level {level:.0f} dBFS); the codes will say little"]
    band = min(bandwidth_hz(wav, sample_rate), sample_rate / 2)
    if band < FULL_BAND * model_rate / 2:
        out.append(f"band-limited to ~{band / 1000:.1f} kHz (the model codes {model_rate / 2000:.0f} kHz); "
                   "expect duller output")
    share = clipped_share(wav)
    if share > CLIPPED_SHARE:
        out.append(f"clipped ({100 * share:.1f}% of samples flat at the peak)")
    return out


def mu_law_encode(x: torch.Tensor | np.ndarray, classes: int = 256) -> torch.Tensor:
    """Mu-law compand samples in [-1, 1] and quantise to integers in [0, classes).

    F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu), mu = classes - 1 (WaveNet, van den Oord 2016).
    """
    x = torch.as_tensor(x, dtype=torch.float32).clamp(-1.0, 1.0)
    mu = classes - 1
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)


def mu_law_decode(q: torch.Tensor | np.ndarray, classes: int = 256) -> torch.Tensor:
    """Invert `mu_law_encode`: integers in [0, classes) to float samples in [-1, 1]."""
    q = torch.as_tensor(q)
    mu = classes - 1
    y = q.float() / mu * 2 - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
