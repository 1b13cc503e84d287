"""Tiny data dirs of synthetic audio and tiny configs for the training tests (no corpus build, no network).

Tests import it as `from helpers.train_fixtures import ...` (pytest puts `tests/` on the path: pyproject.toml)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from vqaudio.config import Config, load_config
from vqaudio.data.kaldi import DataDir

SAMPLE_RATE = 16000


def synthetic_wav(seed: int, seconds: float, f0: float) -> np.ndarray:
    """A voiced-like test signal: harmonics of `f0` Hz with a slow amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 3) * t) ** 2
    return (0.3 * wav * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_data_root(root: Path, speakers: tuple[str, ...] = ("p225", "p226"), utts: int = 3,
                   seconds: float = 0.4, dev: bool = True) -> Path:
    """Write `root/{train,dev}` Kaldi data dirs and `root/speakers.tsv` of synthetic flac files; returns `root`."""
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for k, split in enumerate(("train", "dev") if dev else ("train",)):
        wav_scp, utt2spk = {}, {}
        for s, spk in enumerate(speakers):
            for u in range(utts):
                utt = f"{spk}_{split}{u:03d}"
                path = audio / f"{utt}.flac"  # seeded by position: the same audio in every process
                sf.write(path, synthetic_wav(1000 * s + 2 * u + k, seconds * (1 + 0.5 * (u % 2)),
                                             110.0 * (s + 1)), SAMPLE_RATE)
                wav_scp[utt], utt2spk[utt] = str(path), spk
        DataDir(path=root / split, wav_scp=wav_scp, utt2spk=utt2spk).save()
    (root / "speakers.tsv").write_text("".join(f"{s}\tF\ttest speaker {s}\n" for s in speakers), encoding="utf-8")
    return root


def quick_config(*overrides: str) -> Config:
    """The `quick` preset made smaller still for unit tests, logging every step, one thread."""
    return load_config("quick", ["train.threads=1", "train.log_every=1", "train.segment_samples=512",
                                 "train.batch_size=2", "train.max_minutes=0", *overrides])
