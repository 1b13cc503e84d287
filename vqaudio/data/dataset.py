"""Random fixed-length training windows from a Kaldi data dir, deterministic in (seed, rank, step).

All audio of a split is read once (through `vqaudio.audio.load_audio`, several files at a time) and
kept as 16-bit integers in one array: 2 bytes per sample, so VCTK's ~44 h at 16 kHz take ~5 GB rather
than 10 GB as float32, and no audio file is touched while training. 8-bit mu-law targets lose nothing to
the 16-bit store. Training caches that array in EXP_DIR/cache and maps it read-only on later runs, so a
resumed run starts at once and the ranks of a distributed run share one copy of it in the page cache.

A window starts in an utterance drawn with probability proportional to its length (every sample of
the corpus is equally likely to be seen) at a uniformly drawn offset. Utterances shorter than a window
are kept and padded with silence (zeros) at the end, so a corpus of short clips still trains.

The batch of step s on rank r is drawn from a generator seeded by (seed, rank, s): it does not depend
on what was drawn before, so a resumed run sees exactly the data the uninterrupted run would have.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vqaudio.audio import INT16_SCALE, level_gain, load_audio, to_int16
from vqaudio.config import PerturbConfig
from vqaudio.data.kaldi import DataDir
from vqaudio.data.perturb import channel, speaker_copies
from vqaudio.data.readings import parallel_readings
from vqaudio.data.world import WorldSettings, cache_key, split_features
from vqaudio.errors import DataError
from vqaudio.fileio import files_digest, load_array_pair, save_array_pair
from vqaudio.progress import progress

_VALID_STREAM = 1 << 20  # rank slot of the fixed validation windows (never a real rank)


@dataclass
class Batch:
    """Training windows: wav float32 [B, T] in [-1, 1], speaker LongTensor [B] (index into the model's list),
    for the vocoder decoder the windows' WORLD features float32 [B, T / frame_samples, F], and with training-time
    perturbation (`vqaudio.data.perturb`) the encoder's perturbed inputs float32 [B, T] (None: the encoder sees
    `wav`). `wav` and `features` stay the clean targets. With phone labels (`PhoneFrames`), phones LongTensor
    [B, T / hop]: the phone id at each code frame's centre (-1 where the utterance has none)."""

    wav: Tensor
    speaker: Tensor
    features: Tensor | None = None
    inputs: Tensor | None = None
    phones: Tensor | None = None

    def to(self, device: str | torch.device) -> Batch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(move(self.wav), move(self.speaker), move(self.features), move(self.inputs), move(self.phones))


@dataclass
class FrameFeatures:
    """Per-frame features of every utterance of a dataset, end to end: values float32 [sum M_u, F],
    frames int [U] (M_u = ceil(samples_u / frame_samples)), one frame per `frame_samples` samples."""

    values: np.ndarray
    frames: np.ndarray
    frame_samples: int


@dataclass
class PhoneFrames:
    """Frame-level phone ids of every utterance of a dataset, end to end: values int8 [sum L_u], frames int [U]
    (L_u labels per utterance, one per `label_samples` samples; 0 for an utterance without labels), and the code
    hop `hop` (samples) at which windows are labelled."""

    values: np.ndarray
    frames: np.ndarray
    label_samples: int
    hop: int

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.frames)])

    @classmethod
    def from_labels(cls, labels: list[list[str] | None], sample_rate: int, hop: int) -> PhoneFrames:
        """From each utterance's 10 ms labels (`DataDir.phone_ali`; None: the utterance has none)."""
        from vqaudio.phones import FRAME_SHIFT, phone_ids

        ids = [phone_ids(lab).astype(np.int8) if lab else np.zeros(0, np.int8) for lab in labels]
        values = np.concatenate(ids) if ids else np.zeros(0, np.int8)
        return cls(values, np.array([len(i) for i in ids], np.int64), int(round(FRAME_SHIFT * sample_rate)), hop)

    def window(self, u: int, start: int, count: int) -> np.ndarray:
        """Phone ids [count] of the `count` codes of a window from sample `start` of utterance u: the label at
        each code's centre; -1 past the utterance's labels."""
        centres = start + (np.arange(count) + 0.5) * self.hop
        idx = np.floor(centres / self.label_samples).astype(np.int64)
        out = np.full(count, -1, np.int64)
        ok = idx < self.frames[u]
        out[ok] = self.values[self.offsets[u] + idx[ok]]
        return out


@dataclass
class DataSplits:
    """Where training reads from: `train` split, `dev` split (or None) and `speakers.tsv` (or None)."""

    train: Path
    dev: Path | None
    speakers_tsv: Path | None


def resolve_data_dir(path: str | os.PathLike) -> DataSplits:
    """DATA_DIR is the folder `vqaudio data prepare` wrote (train/, dev/, speakers.tsv) or one split itself.

    With a single split, training and validation windows both come from it (the validation windows
    are still fixed, but not held out).
    """
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p}: no such data directory")
    if (p / "wav.scp").exists():
        tsv = p.parent / "speakers.tsv"
        return DataSplits(p, None, tsv if tsv.exists() else None)
    if not (p / "train" / "wav.scp").exists():
        raise DataError(f"{p}: neither a data dir (wav.scp) nor a prepared folder (train/wav.scp); "
                        "run `vqaudio data prepare` first")
    dev = p / "dev" if (p / "dev" / "wav.scp").exists() else None
    tsv = p / "speakers.tsv"
    return DataSplits(p / "train", dev, tsv if tsv.exists() else None)


def read_speaker_info(path: Path | None, speakers: list[str]) -> dict[str, str]:
    """`speakers.tsv` (speaker TAB gender TAB free text) -> {speaker: "gender  text"} for `speakers`."""
    if path is None or not path.exists():
        return {}
    info = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = [x.strip() for x in line.split("\t")]
        if parts and parts[0] in speakers:
            info[parts[0]] = "  ".join(x for x in parts[1:] if x)
    return info


class SegmentDataset:
    """The audio of one split in one int16 array, cut into random windows of `segment_samples` samples.

    samples: int16 [S], the utterances end to end (an array or a read-only memmap); lengths: int [U], samples
    per utterance; speaker_index: int [U], each one's speaker (index into the model's speaker list).
    """

    def __init__(self, samples: np.ndarray, lengths: np.ndarray, speaker_index: np.ndarray | list[int],
                 segment_samples: int, seed: int = 0, features: FrameFeatures | None = None,
                 gains: np.ndarray | None = None, perturbation: Perturbation | None = None,
                 phones: PhoneFrames | None = None):
        if len(lengths) == 0:
            raise DataError("no utterances to train on")
        if segment_samples < 1:
            raise DataError(f"segment_samples must be >= 1, got {segment_samples}")
        self.samples, self.lengths = samples, np.asarray(lengths, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.speaker_index = np.asarray(speaker_index, dtype=np.int64)
        self.segment_samples, self.seed = segment_samples, seed
        weight = np.maximum(self.lengths, 1).astype(np.float64)
        self.weights = weight / weight.sum()
        self.gains = None if gains is None else np.asarray(gains, np.float32)  # per utterance (level normalisation)
        self.features = features
        if features is not None:
            fs = features.frame_samples
            if segment_samples % fs or len(features.frames) != len(self.lengths):
                raise DataError(f"features: segment_samples must be a multiple of frame_samples ({fs}), one entry "
                                "of frames per utterance")
            self.frame_offsets = np.concatenate([[0], np.cumsum(features.frames)])
        self.phones = phones
        if phones is not None and (len(phones.frames) != len(self.lengths) or segment_samples % phones.hop):
            raise DataError("phones: one entry of frames per utterance, segment_samples a multiple of the hop")
        self.perturbation = perturbation
        if perturbation is not None and any(rows is not None and rows.shape[1] != len(self.samples)
                                            for rows in (perturbation.copies, perturbation.readings)):
            raise DataError("perturbation copies and readings must be laid out like the samples ([rows, S])")

    @classmethod
    def from_waveforms(cls, audio: list[np.ndarray], speaker_index: list[int], segment_samples: int,
                       seed: int = 0) -> SegmentDataset:
        """From one [T] array per utterance, float in [-1, 1] or int16."""
        lengths = np.array([len(a) for a in audio], dtype=np.int64)
        samples = np.concatenate([to_int16(a) for a in audio]) if audio else np.zeros(0, np.int16)
        return cls(samples, lengths, speaker_index, segment_samples, seed)

    @classmethod
    def from_data_dir(cls, path: str | os.PathLike, speakers: list[str], segment_samples: int, sample_rate: int,
                      seed: int = 0, show_progress: bool | None = None, cache: Path | None = None,
                      level_db: float | None = None, world: WorldSettings | None = None,
                      perturb: PerturbConfig | None = None, phone_hop: int = 0) -> SegmentDataset:
        """Read every utterance of the data dir at `path` whose speaker is in `speakers`.

        With `cache` (a folder), the int16 audio is also written there (`<split>-<key>.npy`, the key a hash of
        the files' paths, sizes and times) and later runs map it read-only instead of decoding every file:
        resuming is quicker and the ranks of a distributed run share one copy in the page cache.
        `level_db`: each utterance is scaled to this speech level (`vqaudio.audio.level_gain`) as it is drawn.
        `world`: the windows come with WORLD features (`vqaudio.data.world.split_features`, cached in the data
        dir's `world/` folder, analysed on both cores the first time).
        `perturb`: training windows come with perturbed encoder inputs (`Batch.inputs`); its speaker copies and
        parallel readings need `world` and are kept beside the features (`vqaudio.data.perturb.speaker_copies`,
        `vqaudio.data.readings.parallel_readings`: the readings read the data dir's `text`).
        `phone_hop` > 0: windows come with the phone id of each `phone_hop` samples (`Batch.phones`) from the data
        dir's `phone_ali`; refused when no utterance has labels.
        """
        data = DataDir.load(path)
        index = {s: i for i, s in enumerate(speakers)}
        utts = [u for u in data.utterances if data.utt2spk[u] in index]
        if not utts:
            raise DataError(f"{path}: no utterance of the model's speakers ({', '.join(speakers[:5])}...)")
        paths = [data.wav_scp[u] for u in utts]
        samples, lengths = _load_cached(paths, sample_rate, show_progress, Path(path).name, cache)
        gains = None
        if level_db is not None:
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            gains = np.array([level_gain(samples[a:b] / INT16_SCALE, level_db, sample_rate)
                              for a, b in zip(offsets[:-1], offsets[1:], strict=True)], np.float32)
        features = None
        if world is not None:
            values, frames = split_features(paths, world, Path(path) / "world", Path(path).name,
                                            show_progress=show_progress)
            features = FrameFeatures(values, frames, world.frame_samples)
        perturbation = None
        if perturb is not None and (perturb.speaker > 0 or perturb.channel > 0):
            copies = readings = None
            if perturb.speaker > 0:
                if features is None:
                    raise DataError("perturb.speaker needs the vocoder decoder kind (WORLD features)")
                where = (cache_key(paths, world), Path(path) / "world", Path(path).name, show_progress)
                copies = speaker_copies(features.values, features.frames, lengths, world, perturb, seed, *where)
                if perturb.readings > 0:
                    readings = parallel_readings(features.values, features.frames, lengths,
                                                 [data.text.get(u, "") for u in utts],
                                                 [data.utt2spk[u] for u in utts], speakers, world, perturb, seed,
                                                 *where)
            perturbation = Perturbation(perturb, sample_rate, copies, readings)
        phones = None
        if phone_hop > 0:
            if not any(u in data.phone_ali for u in utts):
                raise DataError(f"{path}: no phone labels (phone_ali) for the phone head (model.phone_loss); "
                                "align the data first (vqaudio data align) or train without the head "
                                "(--set model.phone_loss=0)")
            phones = PhoneFrames.from_labels([data.phone_ali.get(u) for u in utts], sample_rate, phone_hop)
        return cls(samples, lengths, [index[data.utt2spk[u]] for u in utts], segment_samples, seed, features, gains,
                   perturbation, phones)

    def set_share(self, chosen: np.ndarray, share: float) -> None:
        """Draw windows from the utterances where `chosen` (bool [U]) is true in a fraction `share` of draws, and
        from the others in the rest; by length within each group (auxiliary voices at a fixed share of training)."""
        chosen = np.asarray(chosen, bool)
        if not 0.0 < share < 1.0 or len(chosen) != len(self.lengths) or chosen.all() or not chosen.any():
            raise DataError(f"a window share of {share} needs 0 < share < 1 and utterances both in and out of the "
                            f"group ({int(chosen.sum())} of {len(self.lengths)} in it)")
        weight = np.maximum(self.lengths, 1).astype(np.float64)
        self.weights = np.where(chosen, share * weight / weight[chosen].sum(),
                                (1.0 - share) * weight / weight[~chosen].sum())

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def total_samples(self) -> int:
        """Audio held, in samples (divide by the sample rate for seconds)."""
        return int(self.lengths.sum())

    def batch(self, step: int, batch_size: int, rank: int = 0) -> Batch:
        """The `batch_size` windows of training step `step` on rank `rank` (a pure function of its arguments),
        with perturbed encoder inputs when the dataset has a perturbation."""
        rng = np.random.default_rng([self.seed, rank, step])
        batch, spans = self._draw(rng, batch_size)
        if self.perturbation is not None:
            batch.inputs = self.perturbation.inputs(batch.wav.numpy(), rng, spans)
        return batch

    def fixed_batches(self, n_batches: int, batch_size: int) -> list[Batch]:
        """Validation windows: the same `n_batches` batches every time (seeded by the dataset seed only)."""
        rng = np.random.default_rng([self.seed, _VALID_STREAM])
        return [self._draw(rng, batch_size)[0] for _ in range(n_batches)]

    def _draw(self, rng: np.random.Generator, batch_size: int) -> tuple[Batch, list[tuple[int, int]]]:
        """Clean windows, and per window (its first sample in `samples`, samples taken from the utterance)."""
        T = self.segment_samples
        utts = rng.choice(len(self.lengths), size=batch_size, p=self.weights)
        wav = np.zeros((batch_size, T), dtype=np.float32)
        feats, starts = None, []
        if self.features is not None:
            fs = self.features.frame_samples
            feats = np.zeros((batch_size, T // fs, self.features.values.shape[1]), np.float32)
        for i, u in enumerate(utts):
            n = int(self.lengths[u])
            if feats is None:
                start = int(rng.integers(0, n - T + 1)) if n > T else 0
            else:  # windows start on a frame boundary, so that frame f of the window is frame start / fs + f
                start = fs * int(rng.integers(0, (n - T) // fs + 1)) if n > T else 0
                feats[i] = self._frames(u, start // fs, T // fs)
            starts.append(start)
            take = min(T, n)
            base = int(self.offsets[u]) + start
            wav[i, :take] = self.samples[base:base + take] / INT16_SCALE
            if self.gains is not None:
                wav[i, :take] *= self.gains[u]
        spans = [(int(self.offsets[u]) + start, min(T, int(self.lengths[u]))) for u, start in zip(utts, starts,
                                                                                                strict=True)]
        phones = None
        if self.phones is not None:
            n = T // self.phones.hop
            phones = torch.from_numpy(np.stack([self.phones.window(u, s, n) for u, s in zip(utts, starts,
                                                                                            strict=True)]))
        return Batch(torch.from_numpy(wav), torch.from_numpy(self.speaker_index[utts]),
                     None if feats is None else torch.from_numpy(feats), phones=phones), spans

    def _frames(self, u: int, first: int, count: int) -> np.ndarray:
        """Frames [first, first + count) of utterance u [count, F]; past its end the last frame is repeated."""
        a, b = int(self.frame_offsets[u]), int(self.frame_offsets[u + 1])
        idx = np.minimum(np.arange(a + first, a + first + count), b - 1)
        return np.asarray(self.features.values[idx], np.float32)


class Perturbation:
    """The encoder's perturbed inputs of a batch: per window, with chance `cfg.speaker` the same span of one of the
    utterance's WORLD copies (int16 [copies, S], laid out like the samples) or parallel readings (int16
    [readings, S], likewise), each row equally likely, then with chance `cfg.channel` a random channel
    (`vqaudio.data.perturb.channel`)."""

    def __init__(self, cfg: PerturbConfig, sample_rate: int, copies: np.ndarray | None = None,
                 readings: np.ndarray | None = None):
        self.cfg, self.sample_rate, self.copies, self.readings = cfg, sample_rate, copies, readings

    def inputs(self, wav: np.ndarray, rng: np.random.Generator, spans: list[tuple[int, int]]) -> Tensor:
        """wav float32 [B, T] (the clean windows), spans [(first sample in the store, samples taken)] per window ->
        the encoder's inputs float32 [B, T] (a new array; `wav` is not touched)."""
        out = wav.copy()
        rows = [r for r in (self.copies, self.readings) if r is not None]
        n_rows = sum(len(r) for r in rows)
        for i, (base, take) in enumerate(spans):
            if n_rows and rng.random() < self.cfg.speaker:
                k = int(rng.integers(n_rows))
                copy = rows[0][k] if k < len(rows[0]) else rows[1][k - len(rows[0])]
                out[i] = 0.0
                out[i, :take] = copy[base:base + take] / INT16_SCALE
            if rng.random() < self.cfg.channel:
                out[i] = channel(out[i], rng, self.cfg, self.sample_rate)
        return torch.from_numpy(out)


def _load_cached(paths: list[str], sample_rate: int, show_progress: bool | None, name: str,
                 cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(int16 samples [S] end to end, lengths [U]) of `paths`, through the cache folder when given."""
    if cache is not None:
        key = files_digest(paths, f"{sample_rate}\n")
        samples_path, lengths_path = cache / f"{name}-{key}.npy", cache / f"{name}-{key}.lengths.npy"
        cached = load_array_pair(samples_path, lengths_path)
        if cached is not None:
            return cached
    audio = _load_all(paths, sample_rate, show_progress, name)
    lengths = np.array([len(a) for a in audio], dtype=np.int64)
    samples = np.concatenate(audio)
    del audio
    if cache is not None:  # caches of other versions of the data go
        save_array_pair(samples_path, lengths_path, samples, lengths, cache.glob(f"{name}-*.npy"))
    return samples, lengths


def _load_all(paths: list[str], sample_rate: int, show_progress: bool | None, name: str) -> list[np.ndarray]:
    """Read files with a few threads (decoding and resampling release the GIL), in order."""
    workers = min(8, os.cpu_count() or 1)
    out: list[np.ndarray] = []
    with progress(transient=True, disable=None if show_progress is None else not show_progress) as bar, \
            ThreadPoolExecutor(workers) as pool:
        task = bar.add_task(f"loading {name}", total=len(paths), info="")
        for wav in pool.map(lambda p: to_int16(load_audio(p, sample_rate)), paths):
            out.append(wav)
            bar.advance(task)
    return out
