"""WORLD vocoder features (Morise, Yokomori, Ozawa 2016): analysis, synthesis, and a per-split feature cache.

The frame-level decoder predicts, per frame of `frame_samples` samples, the vector

    [ coded spectral envelope (spectral_dims) | coded aperiodicity (1 band at 16 kHz) | log-F0 | voicing ]

Spectral envelope: CheapTrick, coded by WORLD's CodeSpectralEnvelope (log power on a mel axis, DCT) into
`spectral_dims` coefficients. Aperiodicity: D4C, coded into bands (CodeAperiodicity). F0: Harvest or
DIO + StoneMask; log-F0 is linearly interpolated through unvoiced frames (a continuous target) and the
voicing flag (1 voiced, 0 not) says where it holds. Frame n of a waveform is WORLD's frame at sample
n * frame_samples; a waveform of T samples has ceil(T / frame_samples) frames.

WORLD comes from `pyworld-prebuilt` (import name `pyworld`): manylinux wheels of pyworld, so it installs on a
fresh machine with no compiler, and its `__init__` does not import `pkg_resources` (pyworld 0.3.5 did, and
fails under setuptools >= 81).

    settings = WorldSettings.from_config(cfg.model)
    feats = analyze(wav, settings)        # float32 [N, settings.dims]
    wav2 = synthesize(feats, settings)    # float32 [N * frame_samples]
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vqaudio.errors import ConfigError, DataError
from vqaudio.fileio import files_digest, load_array_pair, save_array_pair
from vqaudio.progress import progress

FEATURES_VERSION = 1  # part of the cache key: bump when `analyze` changes what it computes
F0_METHODS = ("harvest", "dio")
# F0 of decoded speech (vqaudio.inference.vocode): the decoder's as it is, the decoder's moved to the speaker's
# statistics, or (conversion) the source's mapped to them
F0_MODES = ("predicted", "normalized", "mapped")
# Where the postfilter's scale comes from (vqaudio.inference.vocode.postfilter): the decoder's own envelope variance
# for the speaker, recorded in the model file after training, or the decoded utterance's
GV_SCALES = ("speaker", "utterance")


def check_decoding(f0: str | None, gv_strength: float | None, gv_scale: str | None = None) -> None:
    """Refuse a bad --f0 / --gv-strength / --gv-scale with one line, before a minute of encoding rather than after."""
    if f0 is not None and f0 not in F0_MODES:
        raise DataError(f"--f0 must be one of {', '.join(F0_MODES)}, got {f0!r}")
    if gv_strength is not None and not 0.0 <= gv_strength <= 1.0:
        raise DataError(f"--gv-strength must be in [0, 1], got {gv_strength}")
    if gv_scale is not None and gv_scale not in GV_SCALES:
        raise DataError(f"--gv-scale must be one of {', '.join(GV_SCALES)}, got {gv_scale!r}")


@dataclass(frozen=True)
class WorldSettings:
    """Everything analysis depends on (the cache key is made of it)."""

    sample_rate: int = 16000
    frame_samples: int = 64
    f0_method: str = "harvest"
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    spectral_dims: int = 40
    level_db: float | None = None  # inputs scaled to this speech level first (vqaudio.audio.normalize_level)

    @classmethod
    def from_config(cls, model_cfg) -> WorldSettings:
        """From a `ModelConfig` (its `vocoder` section, sample rate and input level)."""
        v = model_cfg.vocoder
        settings = cls(model_cfg.sample_rate, v.frame_samples, v.f0_method, v.f0_floor, v.f0_ceil, v.spectral_dims,
                       model_cfg.input_level_db)
        settings.check()
        return settings

    def check(self) -> None:
        if self.f0_method not in F0_METHODS:
            raise ConfigError(f"vocoder f0_method must be one of {', '.join(F0_METHODS)}, got {self.f0_method!r}")
        if self.frame_samples < 1 or self.spectral_dims < 2:
            raise ConfigError("vocoder frame_samples must be >= 1 and spectral_dims >= 2")
        if not 0 < self.f0_floor < self.f0_ceil < self.sample_rate / 2:
            raise ConfigError(f"vocoder f0 range must satisfy 0 < f0_floor < f0_ceil < sample_rate / 2, "
                              f"got {self.f0_floor}..{self.f0_ceil}")

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 * self.frame_samples / self.sample_rate

    @property
    def aperiodicity_dims(self) -> int:
        import pyworld

        return int(pyworld.get_num_aperiodicities(self.sample_rate))

    @property
    def dims(self) -> int:
        """Feature vector size: spectral + aperiodicity + log-F0 + voicing."""
        return self.spectral_dims + self.aperiodicity_dims + 2

    @property
    def lf0_index(self) -> int:
        return self.spectral_dims + self.aperiodicity_dims

    @property
    def vuv_index(self) -> int:
        return self.lf0_index + 1

    def key(self) -> str:
        """Short hash of the settings, the analysis version and WORLD's (pyworld's) version."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            world = version("pyworld-prebuilt")
        except PackageNotFoundError:
            world = "unknown"
        text = json.dumps({**asdict(self), "version": FEATURES_VERSION, "pyworld": world}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def n_frames(samples: int, frame_samples: int) -> int:
    """Frames of a waveform of `samples` samples: ceil(samples / frame_samples), at least 1."""
    return max(1, -(-samples // frame_samples))


def estimate_f0(wav: np.ndarray, s: WorldSettings, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(F0 in Hz, 0 where unvoiced [M], frame times in s [M]) of float64 `wav` [T], WORLD's M >= N frames."""
    import pyworld

    method = method or s.f0_method
    if method == "harvest":
        return pyworld.harvest(wav, s.sample_rate, f0_floor=s.f0_floor, f0_ceil=s.f0_ceil,
                               frame_period=s.frame_period_ms)
    f0, t = pyworld.dio(wav, s.sample_rate, f0_floor=s.f0_floor, f0_ceil=s.f0_ceil, frame_period=s.frame_period_ms)
    return pyworld.stonemask(wav, f0, t, s.sample_rate), t


def analyze(wav: np.ndarray, s: WorldSettings) -> np.ndarray:
    """Waveform float [T] at s.sample_rate -> features float32 [ceil(T / frame_samples), s.dims]."""
    import pyworld

    from vqaudio.audio import normalize_level

    x = np.ascontiguousarray(normalize_level(np.asarray(wav, np.float32), s.level_db, s.sample_rate), np.float64)
    n = n_frames(len(x), s.frame_samples)
    if len(x) < 2 * s.frame_samples:  # WORLD needs a few frames; pad tiny inputs with silence
        x = np.pad(x, (0, 2 * s.frame_samples - len(x)))
    f0, t = estimate_f0(x, s)
    sp = pyworld.cheaptrick(x, f0, t, s.sample_rate, f0_floor=s.f0_floor)
    ap = pyworld.d4c(x, f0, t, s.sample_rate)
    coded_sp = pyworld.code_spectral_envelope(sp, s.sample_rate, s.spectral_dims)
    coded_ap = pyworld.code_aperiodicity(ap, s.sample_rate)
    feats = np.concatenate([coded_sp, coded_ap, interpolated_log_f0(f0)[:, None], (f0 > 0)[:, None]], axis=1)
    if len(feats) < n:  # WORLD gives floor(T / frame) + 1 frames; repeat the last if it ever gives fewer
        feats = np.concatenate([feats, np.repeat(feats[-1:], n - len(feats), axis=0)])
    return np.ascontiguousarray(feats[:n], np.float32)


def interpolated_log_f0(f0: np.ndarray) -> np.ndarray:
    """log F0 [M] with unvoiced frames (f0 == 0) filled by linear interpolation (ends held); all-unvoiced:
    log(100 Hz), a neutral value the voicing flag masks anyway."""
    voiced = f0 > 0
    if not voiced.any():
        return np.full(len(f0), np.log(100.0))
    idx = np.arange(len(f0))
    return np.interp(idx, idx[voiced], np.log(f0[voiced]))


def synthesize(feats: np.ndarray, s: WorldSettings, length: int | None = None, f0_scale: float = 1.0,
               warp: float = 1.0) -> np.ndarray:
    """Features float [N, s.dims] -> waveform float32 [length or N * frame_samples] (WORLD synthesis).

    Frames with voicing < 0.5 are unvoiced; coded aperiodicity is clipped to WORLD's range (<= 0 dB) and
    log-F0 to [f0_floor, f0_ceil], so any decoder output synthesises. `f0_scale` multiplies F0 (a pitch shift);
    `warp` stretches the spectral envelope's frequency axis (> 1 moves the formants up: a shorter vocal tract).
    """
    import pyworld

    feats = np.asarray(feats, np.float64)
    fft = pyworld.get_cheaptrick_fft_size(s.sample_rate, s.f0_floor)
    sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(feats[:, :s.spectral_dims]), s.sample_rate, fft)
    if warp != 1.0:
        sp = warp_envelope(sp, warp)
    coded_ap = np.minimum(feats[:, s.spectral_dims:s.lf0_index], 0.0)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(coded_ap), s.sample_rate, fft)
    f0 = np.exp(np.clip(feats[:, s.lf0_index] + np.log(f0_scale), np.log(s.f0_floor), np.log(s.f0_ceil)))
    f0 = np.where(feats[:, s.vuv_index] >= 0.5, f0, 0.0)
    wav = pyworld.synthesize(np.ascontiguousarray(f0), sp, ap, s.sample_rate, s.frame_period_ms)
    length = length if length is not None else len(feats) * s.frame_samples
    out = np.zeros(length, np.float32)
    out[:min(length, len(wav))] = wav[:length]
    return out


def warp_envelope(sp: np.ndarray, warp: float) -> np.ndarray:
    """Spectral envelope [N, bins] with its frequency axis stretched by `warp`: out(f) = sp(f / warp), linear
    interpolation between bins, the top bin held past the band edge (a vocal-tract-length change)."""
    bins = sp.shape[1]
    pos = np.minimum(np.arange(bins) / warp, bins - 1)
    lo = np.minimum(pos.astype(np.int64), bins - 2)
    w = pos - lo
    return np.ascontiguousarray(sp[:, lo] * (1.0 - w) + sp[:, lo + 1] * w)


def synthesis_job(job: tuple[np.ndarray, WorldSettings, int]) -> np.ndarray:
    """`synthesize(feats, settings, length)` of a job (feats, settings, length): a picklable job for `pool_map`."""
    feats, settings, length = job
    return synthesize(feats, settings, length)


def pool_map(fn, jobs: list, label: str, workers: int | None = None, show_progress: bool | None = None,
             what=lambda i: f"near #{i + 1}") -> list:
    """[fn(job) for job in jobs] in `workers` processes (default: the cores this process may use), in order, with
    a progress bar `label`. A dead worker is one DataError line naming `what(i)` of the job it was near."""
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    out: list = []
    with progress(transient=True, disable=None if show_progress is None else not show_progress) as bar:
        task = bar.add_task(label, total=len(jobs), info="")
        if workers > 1 and len(jobs) > 1:
            # forkserver: no fork of a process that may hold threads (torch, a thread pool) and their locks
            context = multiprocessing.get_context("forkserver")
            try:
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    for result in pool.map(fn, jobs, chunksize=4):
                        out.append(result)
                        bar.advance(task)
            except BrokenProcessPool:
                raise DataError(f"{label}: a worker process died (out of memory, or WORLD crashed on "
                                f"{what(min(len(out), len(jobs) - 1))})") from None
        else:
            for job in jobs:
                out.append(fn(job))
                bar.advance(task)
    return out


# --------------------------------------------------------------------------- the cache of a split


def _analyze_file(job: tuple[str, WorldSettings]) -> np.ndarray:
    from vqaudio.audio import load_audio

    path, s = job
    return analyze(load_audio(path, s.sample_rate), s)


def cache_key(paths: list[str], s: WorldSettings) -> str:
    """`<settings key>-<files key>`: hashes of the analysis settings and of the files (paths, sizes, times)."""
    return f"{s.key()}-{files_digest(paths)}"


def split_features(paths: list[str], s: WorldSettings, cache_dir: Path | None, name: str = "features",
                   workers: int | None = None, show_progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of audio files `paths`, end to end: (float32 [sum N_i, dims], frames per file int64 [U]).

    With `cache_dir`, read from / written to `cache_dir/world-<name>-<key>.npy` (the key: the settings and the
    files, so a changed file or setting is analysed afresh). A cache of the same settings for other files is
    removed (the audio changed); caches of other settings stay, so experiments that share a data dir with different
    analysis settings do not undo each other. The analysis runs in `workers` processes (default: the cores this
    process may use) with a progress bar.
    """
    s.check()
    key = cache_key(paths, s)
    feats_path = frames_path = None
    if cache_dir is not None:
        feats_path = cache_dir / f"world-{name}-{key}.npy"
        frames_path = cache_dir / f"world-{name}-{key}.frames.npy"
        cached = load_array_pair(feats_path, frames_path)
        if cached is not None:
            return cached
    out = pool_map(_analyze_file, [(p, s) for p in paths], f"WORLD analysis of {name}", workers, show_progress,
                   what=lambda i: f"a file near #{i + 1}: {paths[i]}")
    frames = np.array([len(f) for f in out], np.int64)
    feats = np.concatenate(out) if out else np.zeros((0, s.dims), np.float32)
    if cache_dir is not None:  # the stale cache of these settings (older audio) goes
        save_array_pair(feats_path, frames_path, feats, frames, cache_dir.glob(f"world-{name}-{s.key()}-*.npy"))
    return feats, frames


def analyze_data_dir(data_dir: str | os.PathLike, s: WorldSettings, splits: tuple[str, ...] = ("train", "dev"),
                     show_progress: bool | None = None) -> dict[str, tuple[int, float]]:
    """`vqaudio data features`: WORLD features of DATA_DIR's `splits` (those that exist) into each split's
    `world/` cache, the one training reads. Returns {split: (utterances, seconds of audio)}."""
    from vqaudio.data.kaldi import DataDir

    root = Path(data_dir)
    found = [sp for sp in splits if (root / sp / "wav.scp").exists()]
    if not found:
        raise DataError(f"{root}: none of the splits {', '.join(splits)} found (expected DATA_DIR/<split>/wav.scp)")
    done = {}
    for sp in found:
        data = DataDir.load(root / sp)
        paths = [data.wav_scp[u] for u in data.utterances]
        _, frames = split_features(paths, s, root / sp / "world", sp, show_progress=show_progress)
        done[sp] = (len(paths), float(frames.sum()) * s.frame_samples / s.sample_rate)
    return done
