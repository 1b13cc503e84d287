"""Latent prior library: code extraction (cached), training windows, evaluation, prior files, sampling.

The prior is trained after the VQ-VAE on the codes its encoder gives for the training split
(paper section 4.3). Codes are extracted once per model: `EXP_DIR/codes/<split>.npz` records
the VQ-VAE's identity and the utterance list and is recomputed only when either changes.

Shapes: N codes, K codebook size. Rates: codes/s = sample_rate / hop_length.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.config import PriorConfig, from_dict, to_dict
from vqaudio.errors import ConfigError, DataError, ModelFileError, VQAudioError
from vqaudio.fileio import atomic_path
from vqaudio.models.prior import IGNORE, LatentPrior, build_prior

PRIOR_KIND = "prior"  # files are tagged "vqaudio-prior" (vqaudio.models.io)


# --------------------------------------------------------------------------- code sets


@dataclass
class CodeSet:
    """The codes of every utterance of one data dir, under one VQ-VAE."""

    utterances: list[str]
    codes: list[np.ndarray]  # int64 [N_u] each
    speakers: np.ndarray  # int64 [U]: index in the VQ-VAE's speaker list, -1 when not in it
    identity: str  # the VQ-VAE's identity

    @property
    def total_codes(self) -> int:
        return int(sum(len(c) for c in self.codes))


def save_codeset(path: Path, codeset: CodeSet) -> None:
    """Write a CodeSet as an .npz (plain arrays only: it loads with allow_pickle=False), atomically."""
    lengths = np.array([len(c) for c in codeset.codes], dtype=np.int64)
    flat = np.concatenate(codeset.codes) if codeset.codes else np.zeros(0, np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, codes=flat.astype(np.int32), lengths=lengths, speakers=codeset.speakers.astype(np.int64),
                     utterances=np.array(codeset.utterances, dtype=str), identity=np.array(codeset.identity))


def load_codeset(path: Path) -> CodeSet | None:
    """Read a cached CodeSet; None when it is missing or unreadable (it is then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            lengths = z["lengths"]
            codes = np.split(z["codes"].astype(np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else []
            return CodeSet([str(u) for u in z["utterances"]], list(codes), z["speakers"], str(z["identity"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None


def encode_utterance(loaded: Any, path: str) -> np.ndarray:
    """Codes int64 [ceil(T / hop)] of one audio file under a `LoadedModel`, exactly as `vqaudio encode` gives
    them (`vqaudio.inference.codec.encode`), so the prior models the codes the codec will compress."""
    from vqaudio.audio import load_audio
    from vqaudio.inference.codec import encode

    return encode(loaded, load_audio(path, loaded.sample_rate))


def extract_codes(loaded: Any, data_dir: str | os.PathLike, cache: Path, label: str = "codes") -> CodeSet:
    """The codes of every utterance of `data_dir` under `loaded` (a LoadedModel), cached in `cache`.

    The cache is reused when it records the same model identity and utterance list.
    """
    from vqaudio.data.kaldi import DataDir
    from vqaudio.progress import progress

    data = DataDir.load(data_dir)
    utterances = data.utterances
    cached = load_codeset(cache) if cache.exists() else None
    if cached is not None and cached.identity == loaded.identity and cached.utterances == utterances:
        return cached
    index = {s: i for i, s in enumerate(loaded.speakers)}
    codes = []
    with progress() as bar:
        task = bar.add_task(label, total=len(utterances), info=str(data_dir))
        for utt in utterances:
            codes.append(encode_utterance(loaded, data.wav_scp[utt]))
            bar.advance(task)
    speakers = np.array([index.get(data.utt2spk[u], -1) for u in utterances], dtype=np.int64)
    codeset = CodeSet(utterances, codes, speakers, loaded.identity)
    save_codeset(cache, codeset)
    return codeset


# --------------------------------------------------------------------------- training windows


class CodeWindows:
    """Random training windows of `segment` codes, utterances drawn in proportion to their length.

    A window shorter than `segment` (short utterance) is padded: targets IGNORE, inputs 0.
    A fraction `speaker_dropout` of the windows gets speaker -1 (the prior's unknown speaker).
    """

    def __init__(self, codeset: CodeSet, segment: int, batch_size: int, speaker_dropout: float):
        if codeset.total_codes == 0:
            raise DataError("no codes to train the prior on (empty training split)")
        if segment < 1:
            raise ConfigError(f"prior.segment_codes must be >= 1, got {segment}")
        self.codeset, self.segment, self.batch_size = codeset, segment, batch_size
        self.speaker_dropout = speaker_dropout
        lengths = np.array([len(c) for c in codeset.codes], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def batch(self, seed: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch that depends on `seed` only (e.g. [cfg seed, rank, step]: a resumed run sees the same data).

        Returns (codes LongTensor [B, S], targets [B, S] (IGNORE past the end), speaker [B] (-1 = unknown)).
        """
        rng = np.random.default_rng(seed)
        B, S = self.batch_size, self.segment
        targets = np.full((B, S), IGNORE, dtype=np.int64)
        utts = rng.choice(len(self.weights), size=B, p=self.weights)
        for b, u in enumerate(utts):
            seq = self.codeset.codes[u]
            start = int(rng.integers(0, max(len(seq) - S, 0) + 1))
            window = seq[start:start + S]
            targets[b, :len(window)] = window
        speaker = self.codeset.speakers[utts].copy()
        speaker[rng.random(B) < self.speaker_dropout] = -1
        codes = np.where(targets == IGNORE, 0, targets)
        return torch.from_numpy(codes), torch.from_numpy(targets), torch.from_numpy(speaker)


# --------------------------------------------------------------------------- evaluation


@dataclass
class PriorScores:
    """How well codes are predicted, in bits per code and bits per second of audio."""

    nll_bits: float  # prior's NLL on the evaluated codes, bits/code
    unigram_bits: float  # cross-entropy of a unigram model fit on the training codes, bits/code
    log2_k: float  # bits/code of raw (uncompressed) codes
    codes_per_second: float
    n_codes: int

    @property
    def bits_per_second(self) -> float:
        return self.nll_bits * self.codes_per_second

    def as_dict(self) -> dict[str, float]:
        return {"nll_bits_per_code": self.nll_bits, "nll_bits_per_second": self.bits_per_second,
                "unigram_bits_per_code": self.unigram_bits, "unigram_bits_per_second":
                self.unigram_bits * self.codes_per_second, "log2_k": self.log2_k, "n_codes": self.n_codes}


def unigram_bits(train: CodeSet, evaluated: CodeSet, codebook_size: int) -> float:
    """Cross-entropy (bits/code) on `evaluated` of code frequencies counted on `train`, add-one smoothed."""
    counts = np.ones(codebook_size, dtype=np.float64)
    for c in train.codes:
        counts += np.bincount(c, minlength=codebook_size)[:codebook_size]
    logp = np.log2(counts / counts.sum())
    total = evaluated.total_codes
    if total == 0:
        return float("nan")
    return float(-sum(logp[c].sum() for c in evaluated.codes) / total)


@torch.no_grad()
def prior_nll_bits(prior: LatentPrior, codeset: CodeSet, max_codes: int = 0) -> float:
    """The prior's mean NLL (bits/code) over whole utterances (first `max_codes` codes each if > 0)."""
    was_training = prior.training
    prior.eval()
    device = prior.wavenet.embed.weight.device
    nats, count = 0.0, 0
    for seq, spk in zip(codeset.codes, codeset.speakers, strict=True):
        seq = seq[:max_codes] if max_codes > 0 else seq
        if len(seq) == 0:
            continue
        codes = torch.from_numpy(seq)[None].to(device)
        logits = prior(codes, torch.tensor([int(spk)], device=device))
        nats += float(torch.nn.functional.cross_entropy(logits.float(), codes, reduction="sum"))
        count += len(seq)
    prior.train(was_training)
    return nats / max(count, 1) / math.log(2)


def score_prior(prior: LatentPrior, train: CodeSet, dev: CodeSet, codes_per_second: float) -> PriorScores:
    """Prior NLL on `dev` beside the unigram entropy (fit on `train`) and log2 K."""
    k = prior.codebook_size
    return PriorScores(prior_nll_bits(prior, dev), unigram_bits(train, dev, k), math.log2(k),
                       codes_per_second, dev.total_codes)


# --------------------------------------------------------------------------- prior files


@dataclass
class LoadedPrior:
    """A prior read back from its file (eval mode, fp32)."""

    prior: LatentPrior
    config: PriorConfig
    codebook_size: int
    speakers: list[str]  # the VQ-VAE's speakers, in its order
    model_identity: str  # identity of the VQ-VAE whose codes it models
    identity: str  # identity of the prior's own weights
    extra: dict[str, Any] = field(default_factory=dict)


def save_prior(path: str | os.PathLike, prior: LatentPrior, speakers: list[str], model_identity: str,
               extra: dict[str, Any] | None = None) -> str:
    """Write the prior as a `vqaudio-prior` file (atomic); returns its identity."""
    from vqaudio.models.io import save_model_file, weights_identity

    state = {k: v.detach().cpu().clone() for k, v in prior.state_dict().items()}
    save_model_file(path, PRIOR_KIND, {
        "config": to_dict(prior.cfg), "codebook_size": prior.codebook_size, "speakers": list(speakers),
        "model_identity": model_identity, "state_dict": state, "extra": dict(extra or {}),
    })
    return weights_identity(state)


def load_prior(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedPrior:
    """Rebuild a prior written by `save_prior`; ModelFileError (one line) when it cannot."""
    from vqaudio.models.io import load_model_file, weights_identity

    data = load_model_file(path, PRIOR_KIND)
    try:
        cfg = from_dict(PriorConfig, data["config"], "prior.")
        speakers = [str(s) for s in data["speakers"]]
        prior = build_prior(cfg, int(data["codebook_size"]), len(speakers))
        prior.load_state_dict(data["state_dict"])
        model_identity = str(data["model_identity"])
    except (KeyError, TypeError, ConfigError, RuntimeError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(f"{path}: prior file does not fit this vqaudio version ({reason[:200]})") from None
    prior.float().to(device).eval()
    return LoadedPrior(prior, cfg, int(data["codebook_size"]), speakers, model_identity,
                       weights_identity(data["state_dict"]), dict(data.get("extra") or {}))


def check_pair(prior: LoadedPrior, model_identity: str, prior_path: str | os.PathLike) -> None:
    """Refuse a prior trained on another VQ-VAE's codes."""
    if prior.model_identity != model_identity:
        raise VQAudioError(f"{prior_path}: prior was trained for VQ-VAE {prior.model_identity}, "
                           f"not this model ({model_identity})")


# --------------------------------------------------------------------------- compressed codes files (.vqc)


@dataclass
class CompressResult:
    n_codes: int
    n_bytes: int  # the whole .vqc file (header included)
    seconds: float  # audio duration the codes cover

    @property
    def bits_per_code(self) -> float:
        return 8 * self.n_bytes / max(self.n_codes, 1)

    @property
    def bits_per_second(self) -> float:
        return 8 * self.n_bytes / max(self.seconds, 1e-9)


def compress_file(input_path: str | os.PathLike, output_path: str | os.PathLike, model: str | os.PathLike | None = None,
                  prior: str | os.PathLike | None = None, speaker: str | None = None) -> CompressResult:
    """`vqaudio encode IN OUT.vqc --compress`: audio -> codes (`inference.codec.encode`) -> arithmetic-coded `.vqc`.

    `model` / `prior` None: the codec's default model / the shipped prior. `speaker`: a speaker id of the
    model to condition the prior on and to record in the file (None: the prior's unknown speaker).
    """
    from vqaudio.audio import load_audio
    from vqaudio.inference.bitstream import save_compressed
    from vqaudio.inference.codec import encode, load_codec, speaker_index
    from vqaudio.inference.sampling import resolve_prior_path

    loaded = load_codec(model)
    loaded_prior = load_prior(resolve_prior_path(prior))
    index = speaker_index(loaded, speaker) if speaker is not None else None
    codes = encode(loaded, load_audio(input_path, loaded.sample_rate))
    n_bytes = save_compressed(output_path, loaded_prior, codes, index, loaded.identity)
    return CompressResult(len(codes), n_bytes, len(codes) * loaded.hop_length / loaded.sample_rate)


def decompress_file(vqc_path: str | os.PathLike, model: str | os.PathLike | None = None,
                    prior: str | os.PathLike | None = None) -> tuple[Any, np.ndarray, str | None]:
    """`vqaudio decode X.vqc`: -> (LoadedModel, codes int64 [N], speaker id recorded in the file or None).

    Refuses (VQCError, one line) a corrupt file or one made with another VQ-VAE or prior.
    """
    from vqaudio.inference.bitstream import load_compressed, read_vqc
    from vqaudio.inference.codec import load_codec
    from vqaudio.inference.sampling import resolve_prior_path

    read_vqc(vqc_path)  # a corrupt or truncated file is refused before any model is loaded
    loaded = load_codec(model)
    codes, index = load_compressed(vqc_path, load_prior(resolve_prior_path(prior)), loaded.identity)
    speaker = loaded.speakers[index] if index is not None and 0 <= index < len(loaded.speakers) else None
    return loaded, codes, speaker
