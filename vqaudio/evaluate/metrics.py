"""Signal metrics on plain arrays: STOI, wide-band PESQ, mel-cepstral distortion, log-mel distance, DTW,
codebook usage and bitrate.

Every function takes mono float waveforms `[T]` (samples) at `sample_rate` Hz, or frame features
`[N, D]`, and returns plain floats. Nothing here knows about models or data dirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

N_FFT = 512  # 32 ms at 16 kHz
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP_SECONDS = 0.01  # 10 ms analysis frames, as the phone labels
N_MELS = 40
N_MCEP = 13  # cepstral coefficients c1..c13 in the MCD (c0, the energy, is left out, as usual)
DYNAMIC_RANGE = 1e-8  # power floor relative to the reference's peak (80 dB): digital silence must not dominate
MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB; Kubichek (1993)


def _match_length(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(deg))
    return np.asarray(ref[:n], dtype=np.float64), np.asarray(deg[:n], dtype=np.float64)


def stoi_score(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) of `deg` [T] against `ref` [T], in [0, 1].

    The longer signal is cut to the shorter one (a decoded signal may differ by less than a hop).
    """
    from pystoi import stoi

    r, d = _match_length(ref, deg)
    return float(stoi(r, d, sample_rate, extended=False))


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO, about 1.0..4.6) at 16 kHz; NaN when PESQ finds no speech.

    Signals at another rate are resampled to 16 kHz first. PESQ's own failures (no utterances
    detected, buffer too short) give NaN rather than an exception: they are properties of the audio.
    """
    from pesq import PesqError, pesq

    from vqaudio.audio import resample

    r, d = _match_length(ref, deg)
    if sample_rate != 16000:
        r, d = resample(r, sample_rate, 16000), resample(d, sample_rate, 16000)
    if not (np.abs(r).max(initial=0.0) > 0 and np.abs(d).max(initial=0.0) > 0):
        return float("nan")  # digital silence: no utterance to score
    try:
        return float(pesq(16000, r, d, "wb"))
    except (PesqError, ValueError):
        return float("nan")


def log_mel(wav: np.ndarray, sample_rate: int, n_mels: int = N_MELS, floor: float = 1e-10) -> np.ndarray:
    """Natural-log mel power spectrogram [N, n_mels], 25 ms windows every 10 ms (power floored at `floor`)."""
    import librosa

    scale = sample_rate / 16000
    mel = librosa.feature.melspectrogram(
        y=np.asarray(wav, dtype=np.float32), sr=sample_rate, n_fft=int(N_FFT * scale),
        win_length=int(WIN_LENGTH * scale), hop_length=int(round(HOP_SECONDS * sample_rate)), n_mels=n_mels,
        fmin=0.0, fmax=sample_rate / 2, power=2.0, center=True,
    )
    return np.log(np.maximum(mel, floor)).T.astype(np.float64)


def log_mel_pair(ref: np.ndarray, deg: np.ndarray, sample_rate: int, n_mels: int = N_MELS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel spectrograms of two signals, both floored `DYNAMIC_RANGE` below the reference's peak power.

    One floor for both, set by the reference: silent stretches compare as equal instead of as
    arbitrary differences of tiny numbers (eSpeak and trimmed corpora hold exact digital silence).
    """
    a = log_mel(ref, sample_rate, n_mels, floor=1e-30)
    floor = math.log(max(float(np.exp(a.max())) * DYNAMIC_RANGE, 1e-20))
    return np.maximum(a, floor), np.maximum(log_mel(deg, sample_rate, n_mels, floor=1e-30), floor)


def mel_cepstrum(log_mel_power: np.ndarray, n_mcep: int = N_MCEP) -> np.ndarray:
    """Mel-cepstral coefficients c1..c_n_mcep [N, n_mcep] of a log mel power spectrogram [N, bands] (10 ms frames).

    The cepstrum of the log amplitude ln|X| = 0.5 ln|X|^2 over the mel bands, scaled as a true cepstrum
    (ln|X(w)| = c0 + 2 sum_m c_m cos(m w), so c_m = DCT-II / (2 * bands)) rather than the orthonormal
    DCT of MFCCs, which would inflate the MCD by sqrt(2 * bands). An SPTK-free stand-in for the
    mel-generalised cepstrum: MCDs are comparable among themselves, not exactly with SPTK-based ones.
    """
    from scipy.fft import dct

    bands = log_mel_power.shape[1]
    cep = dct(0.5 * log_mel_power, type=2, norm=None, axis=1) / (2 * bands)
    return cep[:, 1:n_mcep + 1]


@numba.njit(cache=True)
def _dtw_cost(dist: np.ndarray) -> tuple[float, int]:  # pragma: no cover - compiled
    n, m = dist.shape
    acc = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1), dtype=np.int64)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best, k = acc[i - 1, j - 1], steps[i - 1, j - 1]
            if acc[i - 1, j] < best:
                best, k = acc[i - 1, j], steps[i - 1, j]
            if acc[i, j - 1] < best:
                best, k = acc[i, j - 1], steps[i, j - 1]
            acc[i, j] = best + dist[i - 1, j - 1]
            steps[i, j] = k + 1
    return acc[n, m], steps[n, m]


def dtw_distance(dist: np.ndarray) -> float:
    """Mean frame distance along the cheapest monotone alignment path of a [N, M] distance matrix.

    Steps (1,0), (0,1), (1,1), each weighted 1; the total is divided by the path length, so a
    perfect match gives 0 whatever the lengths.
    """
    if dist.size == 0:
        raise ValueError("dtw_distance: empty distance matrix")
    total, length = _dtw_cost(np.ascontiguousarray(dist, dtype=np.float64))
    return float(total / length)


def dtw_path(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i [L], j [L]) of the cheapest monotone path through `dist` [N, M] (for MCD)."""
    import librosa

    _, wp = librosa.sequence.dtw(C=np.asarray(dist, dtype=np.float64), backtrack=True)
    wp = wp[::-1]
    return wp[:, 0], wp[:, 1]


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances [N, M] between rows of a [N, D] and b [M, D]."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def mcd(ref: np.ndarray, deg: np.ndarray, sample_rate: int, align: bool | None = None) -> float:
    """Mel-cepstral distortion in dB between two waveforms [T]: (10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2), mean.

    Frames are compared one to one when the frame counts agree (a reconstruction), and along a
    DTW path over the cepstra otherwise (a different reading of the same sentence); `align` forces
    either. Identical signals give 0. Powers are floored 80 dB below the reference's peak (`log_mel_pair`).
    """
    a, b = (mel_cepstrum(x) for x in log_mel_pair(ref, deg, sample_rate))
    if align is None:
        align = abs(len(a) - len(b)) > 1
    if align:
        i, j = dtw_path(euclidean(a, b))
        a, b = a[i], b[j]
    else:
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    return float(np.mean(MCD_SCALE * np.sqrt(((a - b) ** 2).sum(axis=1))))


def log_mel_distance(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> float:
    """Log-mel spectral distance in dB: per frame the RMS over 40 bands of 10 log10 difference, then the mean.

    Powers are floored 80 dB below the reference's peak (`log_mel_pair`).
    """
    a, b = log_mel_pair(ref, deg, sample_rate)
    n = min(len(a), len(b))
    db = 10.0 / math.log(10.0) * (a[:n] - b[:n])
    return float(np.mean(np.sqrt((db**2).mean(axis=1))))


@dataclass
class CodebookUsage:
    """How a codebook of size K is used on some data."""

    codebook_size: int  # K
    frames: int  # code frames counted
    used: int  # codes seen at least once
    fraction_used: float  # used / K
    perplexity: float  # exp(entropy of the code histogram, nats): K when uniform, 1 when one code
    entropy_bits: float  # log2 perplexity: bits per code under the unigram distribution
    counts: list[int]  # histogram [K]


def codebook_usage(codes: np.ndarray, codebook_size: int) -> CodebookUsage:
    """Histogram statistics of integer codes (any shape) over a codebook of `codebook_size` entries."""
    flat = np.asarray(codes, dtype=np.int64).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= codebook_size):
        raise ValueError(f"codes outside [0, {codebook_size})")
    counts = np.bincount(flat, minlength=codebook_size)
    p = counts[counts > 0] / max(flat.size, 1)
    entropy = max(0.0, float(-(p * np.log(p)).sum())) if flat.size else 0.0
    return CodebookUsage(
        codebook_size=codebook_size, frames=int(flat.size), used=int((counts > 0).sum()),
        fraction_used=float((counts > 0).sum() / codebook_size), perplexity=math.exp(entropy),
        entropy_bits=entropy / math.log(2.0), counts=counts.tolist(),
    )


def raw_bitrate(sample_rate: int, hop_length: int, codebook_size: int) -> float:
    """Bits per second of the code stream with fixed-length codes: (sample_rate / hop) * log2 K."""
    return sample_rate / hop_length * math.log2(codebook_size)


def mean_log_f0(wav: np.ndarray, sample_rate: int, f0_floor: float = 60.0, f0_ceil: float = 500.0) -> float:
    """Mean log F0 (natural log of Hz) over the voiced 5 ms frames of `wav` [T] (WORLD's DIO + StoneMask);
    NaN when fewer than 5 frames are voiced."""
    from vqaudio.data.world import WorldSettings, estimate_f0

    s = WorldSettings(sample_rate, int(round(0.005 * sample_rate)), "dio", f0_floor, f0_ceil)
    f0, _ = estimate_f0(np.ascontiguousarray(wav, np.float64), s)
    voiced = f0[f0 > 0]
    return float(np.mean(np.log(voiced))) if len(voiced) >= 5 else float("nan")


def f0_nearer_target(conv_lf0: list[float], target_lf0: list[float], source_lf0: list[float]) -> float:
    """Share of conversions whose mean log-F0 is nearer the target speaker's than the source speaker's
    (NaN entries are left out; NaN if none is left)."""
    rows = [(c, t, s) for c, t, s in zip(conv_lf0, target_lf0, source_lf0, strict=True)
            if np.isfinite(c) and np.isfinite(t) and np.isfinite(s)]
    if not rows:
        return float("nan")
    return float(np.mean([abs(c - t) < abs(c - s) for c, t, s in rows]))
