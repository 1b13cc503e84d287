"""The data `vqaudio evaluate` and its relatives work on: splits of a data dir read, cut to whole codes and encoded
through the codec library; decoding batches of codes in given voices; choosing conversion targets.

Utterances are cut to a multiple of the hop before encoding (as `vqaudio.inference.prior.encode_utterance`), so
code n covers samples [n * hop, (n + 1) * hop) of the cut waveform, and every reconstruction has the length of the
cut source. Subsets (`max_utts`) are evenly spaced over the byte-sorted utterance list, so they are deterministic and
cover every speaker of a split in proportion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.data.kaldi import DataDir, pick
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.models.io import LoadedModel
from vqaudio.progress import progress


@dataclass
class SplitData:
    """One data split, encoded: its codes, the codebook they index, and (optionally) the audio, cut to N * hop."""

    name: str
    data: DataDir
    utterances: list[str]
    wavs: dict[str, np.ndarray]  # [T] float32, T = N * hop (empty unless kept)
    codes: dict[str, np.ndarray]  # [N] int64
    codebook: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [K, D]

    def vectors(self, utt: str) -> np.ndarray:
        """Quantised vectors [N, D] of one utterance."""
        return self.codebook[self.codes[utt]]

    @property
    def labels(self) -> dict[str, list[str]]:
        return {u: self.data.phone_ali[u] for u in self.utterances if u in self.data.phone_ali}

    def labelled(self) -> P.LabelledCodes:
        return P.LabelledCodes(self.name, self.codes, self.labels, self.codebook)


def split_dir(data_dir: str | os.PathLike, split: str) -> Path:
    """`DATA_DIR/split`, refused with one line when it is not a data directory."""
    path = Path(data_dir) / split
    if not (path / "wav.scp").exists():
        raise DataError(f"{path}: no such data split (expected DATA_DIR/{split}/wav.scp)")
    return path


def encode_wav(loaded: LoadedModel, wav: np.ndarray) -> np.ndarray:
    """Codes int64 [N] of a waveform [T] already cut to N * hop samples (the codec library's encoder)."""
    from vqaudio.inference.codec import encode

    return encode(loaded, np.ascontiguousarray(wav, np.float32))


def codebook_vectors(loaded: LoadedModel) -> np.ndarray:
    """The vector of every code [K, D], as the decoder sees it (`codes_to_latent` of 0..K-1)."""
    k = int(loaded.config.vq.codebook_size)
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        vec = loaded.model.codes_to_latent(torch.arange(k, device=device)[None])
    return vec[0].T.float().cpu().numpy()


def load_split(loaded: LoadedModel, data_dir: str | os.PathLike, split: str, max_utts: int | None = None,
               need_labels: bool = False, per_speaker: int | None = None, keep_audio: bool = True) -> SplitData:
    """Read, cut and encode (a subset of) one split: at most `max_utts` in all, `per_speaker` per speaker.

    `need_labels` keeps only utterances with phone labels and refuses a split without phone_ali;
    `keep_audio=False` keeps only the codes (a whole VCTK train split would not fit in memory as audio).
    """
    from vqaudio.audio import load_audio

    path = split_dir(data_dir, split)
    data = DataDir.load(path)
    utts = data.utterances
    if need_labels:
        if not data.phone_ali:
            raise DataError(f"{path}: no phone_ali (frame-level phone labels); the phoneme probe needs them")
        utts = [u for u in utts if u in data.phone_ali]
    if per_speaker:
        keep = set(utts)
        utts = sorted(u for us in data.spk2utt().values() for u in pick([u for u in us if u in keep], per_speaker))
    utts = pick(utts, max_utts)
    hop = loaded.hop_length
    out = SplitData(split, data, [], {}, {}, codebook_vectors(loaded))
    with progress() as bar:
        task = bar.add_task(f"encode {split}", total=len(utts), info="")
        for utt in utts:
            wav = load_audio(data.wav_scp[utt], loaded.sample_rate)
            wav = wav[: len(wav) // hop * hop]
            bar.advance(task)
            if len(wav) == 0:
                continue  # shorter than one hop: nothing to encode
            out.utterances.append(utt)
            out.codes[utt] = encode_wav(loaded, wav)
            if keep_audio:
                out.wavs[utt] = wav
    return out


def load(model_path: str | os.PathLike | None) -> tuple[LoadedModel, Path]:
    """The model at `model_path` (default: the codec library's resolution), and the path it came from."""
    from vqaudio.inference.codec import default_model_path, load_codec

    path = Path(model_path) if model_path is not None else default_model_path()
    return load_codec(path), path


def set_decoding(loaded: LoadedModel, gv_strength: float | None, gv_scale: str | None = None) -> None:
    """The vocoder kind's postfilter strength and scale set to `gv_strength`, `gv_scale` (None: the model's own;
    other kinds: no-op)."""
    if loaded.model.kind != "vocoder":
        return
    if gv_strength is not None:
        loaded.config.vocoder.gv_strength = gv_strength
    if gv_scale is not None:
        loaded.config.vocoder.gv_scale = gv_scale


def decoding_summary(loaded: LoadedModel, f0: str | None = None) -> dict[str, Any]:
    """How the vocoder kind decodes, for the results: F0 mode (`f0`, else the model's), postfilter strength and the
    scale it takes effect with ("speaker" only where the model file records the voices' reference); {} for other
    kinds."""
    from vqaudio.inference.vocode import postfilter_reference

    if loaded.model.kind != "vocoder":
        return {}
    scale = "speaker" if np.isfinite(postfilter_reference(loaded)).all(axis=1).any() else "utterance"
    return {"f0_mode": f0 or loaded.config.vocoder.f0_mode, "gv_strength": loaded.config.vocoder.gv_strength,
            "gv_scale": scale}


def model_summary(loaded: LoadedModel, path: str | os.PathLike) -> dict[str, Any]:
    """The facts about a model that every report starts with."""
    k = int(loaded.config.vq.codebook_size)
    return {"path": str(path), "identity": loaded.identity, "codebook_size": k, "sample_rate": loaded.sample_rate,
            "hop_length": loaded.hop_length, "code_rate": loaded.sample_rate / loaded.hop_length,
            "speakers": len(loaded.speakers), "phone_loss": float(loaded.config.phone_loss)}


def decode_codes(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[str], temperature: float = 1.0,
                 seed: int = 0, label: str = "decode", sources: list[np.ndarray] | None = None,
                 f0_mode: str | None = None) -> list[np.ndarray]:
    """Waveforms [N_i * hop] decoded from codes [N_i], each in its speaker's voice (ids of `loaded.speakers`),
    in one batch through the codec library (`vqaudio.inference.codec.synthesize`), with a progress bar. `sources`: the
    waveforms the codes came from (the vocoder kind's F0 mapping uses them, as `vqaudio convert` does); `f0_mode`:
    the vocoder kind's F0 in conversion ("predicted" / "mapped"; None: the model's)."""
    from vqaudio.inference.codec import speaker_index, synthesize

    index = [speaker_index(loaded, s) for s in speakers]
    with progress() as bar:
        task = bar.add_task(label, total=1, info="")
        outs = synthesize(loaded, codes, index, temperature, seed, sources=sources, f0_mode=f0_mode,
                          on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    return outs


def choose_targets(loaded: LoadedModel, train_speakers: list[str], targets: list[str] | None, n_targets: int
                   ) -> list[str]:
    """Conversion targets: `targets` checked, or `n_targets` training speakers evenly spaced."""
    known = [s for s in loaded.speakers if s in set(train_speakers)]
    if targets:
        bad = [t for t in targets if t not in known]
        if bad:
            raise DataError(f"--targets: {', '.join(bad)} not a training speaker of this model and data "
                            f"(known: {', '.join(known[:10])}{'...' if len(known) > 10 else ''})")
        return list(targets)
    return pick(known, n_targets)
