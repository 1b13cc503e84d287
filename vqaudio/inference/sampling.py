"""New speech from the latent prior: ancestral sampling of codes, then decoding them with a speaker.

Paper section 4.3: codes sampled from the prior and decoded by the VQ-VAE's WaveNet give speech-like
babble with the prosody and phoneme-like units of the training data, in the chosen speaker's voice.

    result = sample_speech("exp/prior/prior.pt", "exp/vqvae/model.pt", "p225", seconds=4, seed=0)
    save_audio("babble.wav", result.wav, result.sample_rate)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from vqaudio.errors import VQAudioError
from vqaudio.inference.prior import check_pair, load_prior, resolve_prior_path
from vqaudio.models.prior import LatentPrior


def sample_codes(prior: LatentPrior, n_codes: int, speaker: int | None, temperature: float = 1.0,
                 seed: int | None = None, method: str = "auto") -> np.ndarray:
    """Ancestral sampling of `n_codes` codes (int64 [n_codes]) from the prior, by cached generation.

    `speaker`: index in the prior's speakers, or None (the unknown-speaker row). The same seed gives the
    same codes (on the CPU paths of `vqaudio.inference.generate`).
    """
    from vqaudio.inference.generate import generate

    if n_codes < 1:
        raise VQAudioError(f"nothing to sample: {n_codes} codes requested")
    with torch.inference_mode():
        cond = prior.conditioning(speaker, 1)
    codes = generate(prior.wavenet, cond, n_codes, temperature=temperature, seed=seed, method=method)
    return codes[0].cpu().numpy().astype(np.int64)


@dataclass
class SampleResult:
    wav: np.ndarray  # float32 [T] in [-1, 1]
    codes: np.ndarray  # int64 [N]
    sample_rate: int  # Hz


def sample_speech(prior_path: str | os.PathLike | None, model_path: str | os.PathLike | None, speaker: str,
                  seconds: float, temperature: float = 1.0, seed: int | None = 0,
                  method: str = "auto") -> SampleResult:
    """Sample `seconds` of codes from the prior (conditioned on `speaker` when the prior is), decode them
    with the codec library in `speaker`'s voice. `model_path` None: the codec's default model."""
    from vqaudio.inference.codec import decode, load_codec, speaker_index

    if seconds <= 0:
        raise VQAudioError(f"--seconds must be > 0, got {seconds}")
    prior_file = resolve_prior_path(prior_path)
    loaded_prior = load_prior(prior_file)
    loaded = load_codec(model_path)
    check_pair(loaded_prior, loaded.identity, prior_file)
    index = speaker_index(loaded, speaker)
    n_codes = math.ceil(seconds * loaded.sample_rate / loaded.hop_length)
    codes = sample_codes(loaded_prior.prior, n_codes, index, temperature, seed, method)
    wav = decode(loaded, codes, speaker, seed=seed, method=method)
    return SampleResult(wav[: int(round(seconds * loaded.sample_rate))], codes, loaded.sample_rate)
