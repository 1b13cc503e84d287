"""What `vqaudio probe` and `vqaudio evaluate` run: load splits, encode them, and assemble the figures.

Utterances are cut to a multiple of the hop before encoding (as `vqaudio.prior.encode_utterance`), so
code n covers samples [n * hop, (n + 1) * hop) of the cut waveform, and every reconstruction has the
length of the cut source. Subsets (`max_utts`) are evenly spaced over the byte-sorted utterance list,
so they are deterministic and cover every speaker of a split in proportion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.data.kaldi import DataDir
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.progress import progress


def pick(items: list[str], limit: int | None) -> list[str]:
    """At most `limit` of `items`, evenly spaced (all of them when limit is None or 0)."""
    if not limit or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


@dataclass
class SplitData:
    """One data split, encoded: audio cut to a multiple of the hop, its codes and quantised vectors."""

    name: str
    data: DataDir
    utterances: list[str]
    wavs: dict[str, np.ndarray]  # [T] float32, T = N * hop
    codes: dict[str, np.ndarray]  # [N] int64
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # [N, D] float32

    @property
    def labels(self) -> dict[str, list[str]]:
        return {u: self.data.phone_ali[u] for u in self.utterances if u in self.data.phone_ali}

    def labelled(self) -> P.LabelledCodes:
        return P.LabelledCodes(self.name, self.codes, self.vectors, self.labels)


def split_dir(data_dir: str | os.PathLike, split: str) -> Path:
    """`DATA_DIR/split`, refused with one line when it is not a data directory."""
    path = Path(data_dir) / split
    if not (path / "wav.scp").exists():
        raise DataError(f"{path}: no such data split (expected DATA_DIR/{split}/wav.scp)")
    return path


def encode_wav(loaded: Any, wav: np.ndarray) -> np.ndarray:
    """Codes int64 [N] of a waveform [T] already cut to N * hop samples."""
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        codes = loaded.model.encode(torch.from_numpy(np.ascontiguousarray(wav, np.float32))[None].to(device))
    return codes[0].cpu().numpy().astype(np.int64)


def code_vectors(loaded: Any, codes: np.ndarray) -> np.ndarray:
    """The codebook vectors [N, D] of codes [N]."""
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        vec = loaded.model.codes_to_latent(torch.from_numpy(codes)[None].to(device))
    return vec[0].T.float().cpu().numpy()


def load_split(loaded: Any, data_dir: str | os.PathLike, split: str, max_utts: int | None = None,
               need_labels: bool = False) -> SplitData:
    """Read, cut and encode (a subset of) one split; `need_labels` refuses a split without phone_ali."""
    from vqaudio.audio import load_audio

    path = split_dir(data_dir, split)
    data = DataDir.load(path)
    utts = data.utterances
    if need_labels:
        if not data.phone_ali:
            raise DataError(f"{path}: no phone_ali (frame-level phone labels); the phoneme probe needs them")
        utts = [u for u in utts if u in data.phone_ali]
    utts = pick(utts, max_utts)
    hop = loaded.hop_length
    out = SplitData(split, data, [], {}, {})
    with progress() as bar:
        task = bar.add_task(f"encode {split}", total=len(utts), info="")
        for utt in utts:
            wav = load_audio(data.wav_scp[utt], loaded.sample_rate)
            wav = wav[: len(wav) // hop * hop]
            bar.advance(task)
            if len(wav) == 0:
                continue  # shorter than one hop: nothing to encode
            out.utterances.append(utt)
            out.wavs[utt] = wav
            out.codes[utt] = encode_wav(loaded, wav)
            out.vectors[utt] = code_vectors(loaded, out.codes[utt])
    return out


def model_summary(loaded: Any, path: str | os.PathLike) -> dict[str, Any]:
    """The facts about a model that every report starts with."""
    k = int(loaded.config.vq.codebook_size)
    return {"path": str(path), "identity": loaded.identity, "codebook_size": k, "sample_rate": loaded.sample_rate,
            "hop_length": loaded.hop_length, "code_rate": loaded.sample_rate / loaded.hop_length,
            "speakers": len(loaded.speakers)}


# --------------------------------------------------------------------------- the phoneme probe


def run_probe(data_dir: str | os.PathLike, model_path: str | os.PathLike, splits: list[str] | None = None,
              max_utts: int | None = None, context: int = 2, max_frames: int = 20000) -> P.ProbeReport:
    """The phoneme probe of a model file, fitted on `DATA_DIR/train`, scored on `DATA_DIR/{splits}`.

    Default splits: test (held-out utterances of the training speakers) and test_unseen (held-out
    speakers), whichever exist. Every split used must have phone_ali.
    """
    from vqaudio.models.io import load_model

    if splits is None:
        splits = [s for s in ("test", "test_unseen") if (Path(data_dir) / s / "wav.scp").exists()]
        if not splits:
            raise DataError(f"{data_dir}: neither a test nor a test_unseen split found")
    split_dir(data_dir, "train")
    for s in splits:
        split_dir(data_dir, s)
    loaded = load_model(model_path)
    train = load_split(loaded, data_dir, "train", max_utts, need_labels=True)
    evals = [load_split(loaded, data_dir, s, max_utts, need_labels=True).labelled() for s in splits]
    rate = loaded.sample_rate / loaded.hop_length
    report = P.probe_report(train.labelled(), evals, rate, int(loaded.config.vq.codebook_size), context, max_frames)
    report.model = model_summary(loaded, model_path)
    return report
