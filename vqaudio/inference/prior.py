"""Latent prior library: code extraction (cached), prior NLL and scores, prior files (load, save, pairing checks).

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
from vqaudio.errors import ConfigError, ModelFileError, VQAudioError
from vqaudio.fileio import atomic_path
from vqaudio.models.io import LoadedModel
from vqaudio.models.prior import LatentPrior, build_prior

PRIOR_KIND = "prior"  # files are tagged "vqaudio-prior" (vqaudio.models.io)

PRETRAINED_PRIOR = Path(__file__).parents[1] / "pretrained" / "prior.pt"


def resolve_prior_path(path: str | os.PathLike | None) -> Path:
    """`path`, or the shipped `vqaudio/pretrained/prior.pt`; one clear line when there is neither."""
    if path is not None:
        return Path(path)
    if PRETRAINED_PRIOR.exists():
        return PRETRAINED_PRIOR
    raise VQAudioError("no --prior given and no pretrained prior is shipped (vqaudio/pretrained/prior.pt); "
                       "train one with `vqaudio train-prior` and pass --prior EXP_DIR/prior.pt")


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


def encode_utterance(loaded: LoadedModel, path: str) -> np.ndarray:
    """Codes int64 [ceil(T / hop)] of one audio file under a `LoadedModel`, exactly as `vqaudio encode` gives
    them (`vqaudio.inference.codec.encode`), so the prior models the codes the codec will compress."""
    from vqaudio.audio import load_audio
    from vqaudio.inference.codec import encode

    return encode(loaded, load_audio(path, loaded.sample_rate))


def extract_codes(loaded: LoadedModel, data_dir: str | os.PathLike, cache: Path, label: str = "codes") -> CodeSet:
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
