"""Training-time perturbations of the encoder's input (`PerturbConfig`, the config's `perturb:` section).

The decoder's targets stay the clean originals: the encoder sees a perturbed copy, so the codes must carry what
survives the perturbation (the words) and drop what it changes (the channel, the voice). Two families:

- **channel** (`channel`, on the fly, per window): random EQ, band-limiting (telephone 300-3400 Hz or a random
  low-pass), a resampling round trip, additive coloured noise at a random SNR, clipping and gain. Real recordings
  (a laptop microphone, an 8 kHz phone call) differ from the training corpus in exactly these.
- **speaker** (`speaker_copies`, made once from the cached WORLD features and kept beside them in
  DATA/<split>/world/): WORLD resyntheses of each utterance with its F0 shifted and its spectral envelope's frequency
  axis warped (a vocal-tract-length change), as in information-perturbation voice conversion training (Choi et al.
  2021, NANSY): the codes of a voice and of the same words in a shifted voice should agree, so the speaker has to
  come from the decoder's speaker embedding. The copies are vocoded audio too, so the encoder also learns to code
  WORLD output (what re-encoding a conversion gives it). With `readings`, the parallel readings of
  `vqaudio.data.readings` (the same words from other voices, aligned) are drawn among the copies.

Every draw comes from the `numpy.random.Generator` passed in, so a training batch stays a pure function of
(seed, rank, step).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vqaudio.audio import level_gain, resample, to_int16
from vqaudio.config import PerturbConfig
from vqaudio.data.world import WorldSettings, pool_map, synthesize
from vqaudio.errors import ConfigError
from vqaudio.fileio import atomic_path, load_array_pair, save_array_pair

TELEPHONE_BAND = (300.0, 3400.0)  # Hz
LOWPASS_RANGE = (3400.0, 7500.0)  # Hz, at 16 kHz
RESAMPLE_RATES = (8000, 11025, 12000)
_RAMP_HZ = 100.0  # width of the raised-cosine edges of the band filters


def check(cfg: PerturbConfig) -> None:
    """Refuse shares outside [0, 1] and empty ranges (ConfigError, one line)."""
    for name in ("speaker", "channel", "eq", "bandlimit", "resample", "noise", "clip"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(f"perturb.{name} is a share of windows in [0, 1], got {getattr(cfg, name)}")
    if cfg.speaker > 0 and cfg.copies < 1:
        raise ConfigError(f"perturb.copies must be >= 1 when perturb.speaker > 0, got {cfg.copies}")
    if not 0.0 <= cfg.decoded_from < 1.0:
        raise ConfigError(f"perturb.decoded_from is a fraction of the run in [0, 1), got {cfg.decoded_from}")
    if cfg.decoded_from > 0 and cfg.speaker <= 0:
        raise ConfigError("perturb.decoded_from remakes the speaker copies: it needs perturb.speaker > 0")
    if cfg.readings < 0 or (cfg.readings > 0 and cfg.speaker <= 0):
        raise ConfigError(f"perturb.readings must be >= 0, and > 0 only with perturb.speaker > 0, got {cfg.readings}")
    if len(cfg.snr_db) != 2 or cfg.snr_db[0] > cfg.snr_db[1]:
        raise ConfigError(f"perturb.snr_db must be [low, high] dB, got {cfg.snr_db}")
    if cfg.pitch_semitones < 0 or not 0 <= cfg.formant_warp < 1 or cfg.gain_db < 0 or cfg.eq_db < 0:
        raise ConfigError("perturb.pitch_semitones, gain_db and eq_db must be >= 0, formant_warp in [0, 1)")


# --------------------------------------------------------------------------- channel stages (one window [T])


def _spectral_filter(wav: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """`wav` [T] filtered by the real gain per rfft bin `gain` [T // 2 + 1] (zero-phase, circular)."""
    return np.fft.irfft(np.fft.rfft(wav) * gain, n=len(wav)).astype(np.float32)


def _bin_freqs(n: int, sample_rate: int) -> np.ndarray:
    return np.fft.rfftfreq(n, 1.0 / sample_rate)


def band_limit(wav: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    """Keep `low`..`high` Hz of `wav` [T]: raised-cosine edges of 100 Hz outside the band, zero beyond them."""
    f = _bin_freqs(len(wav), sample_rate)
    up = np.clip((f - (low - _RAMP_HZ)) / _RAMP_HZ, 0.0, 1.0) if low > 0 else np.ones_like(f)
    down = np.clip(((high + _RAMP_HZ) - f) / _RAMP_HZ, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * up * down)
    return _spectral_filter(wav, gain)


def random_eq(wav: np.ndarray, rng: np.random.Generator, sample_rate: int, max_db: float) -> np.ndarray:
    """A smooth random EQ: gains drawn in +-`max_db` at 6 log-spaced points from 100 Hz to Nyquist, interpolated
    on a log-frequency axis."""
    f = np.maximum(_bin_freqs(len(wav), sample_rate), 50.0)
    points = np.geomspace(100.0, sample_rate / 2, 6)
    db = np.interp(np.log(f), np.log(points), rng.uniform(-max_db, max_db, len(points)))
    return _spectral_filter(wav, 10.0 ** (db / 20.0))


def resample_round_trip(wav: np.ndarray, sample_rate: int, via: int) -> np.ndarray:
    """`wav` [T] down to `via` Hz and back (the HQ resampler of `vqaudio.audio.resample`), same length."""
    out = resample(resample(wav, sample_rate, via), via, sample_rate)
    fixed = np.zeros(len(wav), np.float32)
    fixed[:min(len(wav), len(out))] = out[:len(wav)]
    return fixed


def add_noise(wav: np.ndarray, rng: np.random.Generator, snr_db: float, exponent: float = 0.0,
              sample_rate: int = 16000) -> np.ndarray:
    """`wav` [T] plus Gaussian noise of power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown) at `snr_db`
    below the window's mean power (a silent window is returned as is)."""
    power = float(np.mean(np.square(wav, dtype=np.float64)))
    if power <= 0:
        return wav
    f = np.maximum(_bin_freqs(len(wav), sample_rate), 20.0)
    noise = _spectral_filter(rng.standard_normal(len(wav)).astype(np.float32), f ** (-exponent / 2))
    noise *= np.sqrt(power / 10.0 ** (snr_db / 10.0) / max(float(np.mean(np.square(noise, dtype=np.float64))),
                                                            1e-20))
    return (wav + noise).astype(np.float32)


def clip_peaks(wav: np.ndarray, fraction: float) -> np.ndarray:
    """`wav` [T] clipped at `fraction` of its peak, then scaled back to its former RMS (as a level-normalised
    clipped recording arrives)."""
    peak = float(np.abs(wav).max())
    if peak <= 0:
        return wav
    clipped = np.clip(wav, -fraction * peak, fraction * peak)
    rms_in, rms_out = np.sqrt(np.mean(np.square(wav))), np.sqrt(np.mean(np.square(clipped)))
    return (clipped * (rms_in / max(rms_out, 1e-12))).astype(np.float32)


def channel(wav: np.ndarray, rng: np.random.Generator, cfg: PerturbConfig, sample_rate: int) -> np.ndarray:
    """One random channel applied to a window `wav` [T] float32: EQ, band limit, resampling round trip, noise,
    clipping (each with its chance in `cfg`), then a gain of +-`cfg.gain_db`."""
    x = wav
    if rng.random() < cfg.eq:
        x = random_eq(x, rng, sample_rate, cfg.eq_db)
    if rng.random() < cfg.bandlimit:
        if rng.random() < 0.5:
            x = band_limit(x, sample_rate, *TELEPHONE_BAND)
        else:
            x = band_limit(x, sample_rate, 0.0, min(rng.uniform(*LOWPASS_RANGE), sample_rate / 2 - _RAMP_HZ))
    if rng.random() < cfg.resample:
        x = resample_round_trip(x, sample_rate, int(rng.choice([r for r in RESAMPLE_RATES if r < sample_rate])))
    if rng.random() < cfg.noise:
        x = add_noise(x, rng, rng.uniform(*cfg.snr_db), rng.uniform(0.0, 2.0), sample_rate)
    if rng.random() < cfg.clip:
        x = clip_peaks(x, rng.uniform(0.1, 0.5))
    return (x * np.float32(10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20.0))).astype(np.float32)


# --------------------------------------------------------------------------- speaker copies (WORLD resynthesis)


def copy_settings(cfg: PerturbConfig, seed: int, utterance: int) -> list[tuple[float, float]]:
    """(F0 scale, envelope warp) of each of the `cfg.copies` copies of utterance number `utterance`."""
    rng = np.random.default_rng([seed, 7919, utterance])
    semitones = rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones, cfg.copies)
    warps = np.exp(rng.uniform(-np.log1p(cfg.formant_warp), np.log1p(cfg.formant_warp), cfg.copies))
    return [(float(2.0 ** (st / 12.0)), float(w)) for st, w in zip(semitones, warps, strict=True)]


def resynthesize_at_level(feats: np.ndarray, world: WorldSettings, length: int, f0_scale: float = 1.0,
                          warp: float = 1.0) -> np.ndarray:
    """float32 [length]: WORLD synthesis of `feats` [N, dims] (`vqaudio.data.world.synthesize`, F0 x `f0_scale`,
    envelope warped by `warp`) scaled to the settings' speech level `world.level_db`."""
    wav = synthesize(feats, world, length, f0_scale=f0_scale, warp=warp)
    wav *= level_gain(wav, world.level_db, world.sample_rate)
    return wav


def _copies_of(job: tuple[np.ndarray, int, list[tuple[float, float]], WorldSettings]) -> np.ndarray:
    """int16 [copies, length]: WORLD resyntheses of one utterance's features, each at the settings' speech level."""
    feats, length, settings, world = job
    out = np.zeros((len(settings), length), np.int16)
    for i, (f0_scale, warp) in enumerate(settings):
        out[i] = to_int16(resynthesize_at_level(feats, world, length, f0_scale, warp))
    return out


def speaker_copies(values: np.ndarray, frames: np.ndarray, lengths: np.ndarray, world: WorldSettings,
                   cfg: PerturbConfig, seed: int, features_key: str, cache: Path | None = None, name: str = "train",
                   show_progress: bool | None = None) -> np.ndarray:
    """int16 [copies, sum(lengths)]: per utterance (features `values` [sum frames, F] end to end, `frames` [U],
    `lengths` [U] samples) `cfg.copies` pitch-shifted, formant-warped WORLD resyntheses, laid out like the
    dataset's samples. Made on both cores with a progress bar; with `cache` (a folder), kept in
    `cache/copies-<name>-<features_key>-<tag>.npy` (tag: a hash of the copies' settings and the seed)."""
    settings = {k: v for k, v in asdict(cfg).items() if k in ("copies", "pitch_semitones", "formant_warp")}
    offsets = np.concatenate([[0], np.cumsum(frames)])
    jobs = [(values[offsets[u]:offsets[u + 1]], int(lengths[u]), copy_settings(cfg, seed, u), world)
            for u in range(len(lengths))]
    return rows_per_utterance(_copies_of, jobs, lengths, cfg.copies, "copies", [settings, seed], features_key,
                              cache, name, f"speaker perturbation: {cfg.copies} WORLD copies of {name}",
                              show_progress)


def rows_per_utterance(fn, jobs: list, lengths: np.ndarray, rows: int, kind: str, settings: object,
                       features_key: str, cache: Path | None, name: str, label: str,
                       show_progress: bool | None) -> np.ndarray:
    """int16 [rows, sum(lengths)]: `fn(job)` (int16 [rows, lengths[u]]) of each utterance's job, on both cores with
    the progress bar `label`, laid out like the dataset's samples. With `cache` (a folder), kept in
    `cache/<kind>-<name>-<features_key>-<tag>.npy` (tag: a hash of `settings`, JSON) and read from there when its
    lengths match; made afresh, it is written utterance by utterance into a memory-mapped file (a VCTK-size set never
    sits in memory twice), then renamed into place, and the same kind of older features (the audio changed) goes."""
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    lengths = np.asarray(lengths, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    shape = (rows, int(starts[-1]))
    if cache is None:
        return _fill(np.zeros(shape, np.int16), fn, jobs, starts, label, show_progress)
    stem = f"{kind}-{name}-{features_key}-{tag}"
    values_path, index_path = cache / f"{stem}.npy", cache / f"{stem}.lengths.npy"
    cached = load_array_pair(values_path, index_path)
    if cached is not None and np.array_equal(cached[1], lengths):
        return cached[0]
    with atomic_path(values_path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=shape)
        _fill(out, fn, jobs, starts, label, show_progress).flush()
        del out
    save_array_pair(values_path, index_path, None, lengths,
                    cache.glob(f"{kind}-{name}-{features_key.split('-')[0]}-*-{tag}*.npy"))
    return load_array_pair(values_path, index_path)[0]


def _fill(out: np.ndarray, fn, jobs: list, starts: np.ndarray, label: str, show_progress: bool | None
          ) -> np.ndarray:
    """Put each utterance's rows (`fn(job)`, on both cores) at its samples' place in `out` [rows, S]."""
    for u, part in enumerate(pool_map(fn, jobs, label, show_progress=show_progress)):
        out[:, starts[u]:starts[u + 1]] = part
    return out
