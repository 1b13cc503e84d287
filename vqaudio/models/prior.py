"""The latent prior: the project's WaveNet over code sequences (paper section 4.3).

After the VQ-VAE is trained, an autoregressive model p(c_t | c_<t, speaker) over its codes
gives ancestral sampling of new speech and the measure of how compressible the codes are
(`vqaudio.inference.bitstream` codes them under it). The network is `vqaudio.models.wavenet.WaveNet`
with `classes = K`, no local conditioning and, optionally, a speaker embedding.

Speaker conditioning has one extra embedding row, `unknown_speaker` (index n_speakers), trained
by replacing the speaker with it in a fraction `speaker_dropout` of the training windows, so
the same prior also models (and codes) utterances whose speaker is not given.

Shapes: B batch, N codes, K codebook size, L*G = layers * gate_channels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import PriorConfig
from vqaudio.errors import VQAudioError
from vqaudio.models.wavenet import WaveNet

IGNORE = -100  # target value excluded from the loss (padding past an utterance's end)


class LatentPrior(nn.Module):
    """WaveNet prior over codes in [0, K).

    Args:
        cfg: the `prior` section of the config (its `wavenet.classes` is replaced by K).
        codebook_size: K, the VQ-VAE's codebook size.
        n_speakers: the VQ-VAE's speakers (speaker index i = the VQ-VAE's speaker i); ignored
            when `cfg.speaker_conditioned` is false.
    """

    def __init__(self, cfg: PriorConfig, codebook_size: int, n_speakers: int):
        super().__init__()
        self.cfg, self.codebook_size = cfg, codebook_size
        wcfg = dataclasses.replace(cfg.wavenet, classes=codebook_size, cond_channels=0)
        if not cfg.speaker_conditioned:
            wcfg = dataclasses.replace(wcfg, speaker_dim=0)
        self.n_speakers = n_speakers if cfg.speaker_conditioned and wcfg.speaker_dim > 0 else 0
        # One more speaker row: the "unknown speaker" (see the module docstring).
        self.wavenet = WaveNet(wcfg, local_dim=0, n_speakers=self.n_speakers + 1 if self.n_speakers else 0)

    @property
    def speaker_conditioned(self) -> bool:
        return self.n_speakers > 0

    @property
    def unknown_speaker(self) -> int:
        """Embedding row used when no speaker is given."""
        return self.n_speakers

    @property
    def receptive_field(self) -> int:
        """Codes each prediction sees (the current input included)."""
        return self.wavenet.receptive_field

    def speaker_ids(self, speaker: Tensor | int | None, batch: int) -> Tensor | None:
        """What the WaveNet gets as `speaker`: LongTensor [batch], or None for an unconditioned prior.

        `speaker` None (or -1 entries) maps to `unknown_speaker`.
        """
        if not self.speaker_conditioned:
            return None
        device = self.wavenet.embed.weight.device
        if speaker is None:
            return torch.full((batch,), self.unknown_speaker, dtype=torch.long, device=device)
        ids = torch.as_tensor(speaker, dtype=torch.long, device=device).reshape(-1).expand(batch).clone()
        if ((ids < -1) | (ids > self.n_speakers)).any():
            raise VQAudioError(f"speaker index {ids.tolist()} outside the prior's {self.n_speakers} speakers")
        ids[ids < 0] = self.unknown_speaker
        return ids

    def conditioning(self, speaker: Tensor | int | None, batch: int = 1) -> Tensor:
        """Per-layer gate biases for sampling or stepping: [batch, layers * gate_channels, 1]."""
        return self.wavenet.conditioning(None, self.speaker_ids(speaker, batch), batch=batch)

    def forward(self, codes: Tensor, speaker: Tensor | None = None) -> Tensor:
        """Teacher-forced logits. codes LongTensor [B, N] (padding: any valid code), speaker [B] | None
        -> logits [B, K, N]; logits[..., t] predicts codes[:, t] from codes[:, :t] (causal)."""
        start = torch.full_like(codes[:, :1], self.wavenet.start_token)
        x = torch.cat([start, codes[:, :-1]], dim=1)
        return self.wavenet(x, None, self.speaker_ids(speaker, codes.shape[0]))

    def loss(self, codes: Tensor, targets: Tensor, speaker: Tensor | None = None) -> Tensor:
        """Mean NLL in nats/code over targets != IGNORE. codes, targets [B, N] (codes = targets with the
        padding replaced by 0)."""
        return F.cross_entropy(self(codes, speaker), targets, ignore_index=IGNORE)


class PriorStepper:
    """Step the prior one code at a time, batch 1, through `WaveNet.step` with cached state.

    Call `next_logits()` then `feed(code)` alternately. Encoder and decoder of `vqaudio.inference.bitstream`
    both use this path, so they see bit-identical logits on one machine.
    """

    def __init__(self, prior: LatentPrior, speaker: int | None):
        self.wavenet = prior.wavenet
        with torch.inference_mode():
            self.cond = prior.conditioning(speaker, 1)[:, :, 0]  # [1, L*G]
            self.state = self.wavenet.init_state(1)
        self.device = self.cond.device
        self.previous: int | None = self.wavenet.start_token

    @torch.inference_mode()
    def next_logits(self) -> np.ndarray:
        """float32 [K]: logits for the next code given every code fed so far."""
        if self.previous is None:
            raise RuntimeError("feed() the previous code before asking for the next logits")
        x = torch.tensor([self.previous], dtype=torch.long, device=self.device)
        logits, self.state = self.wavenet.step(x, self.cond, self.state)
        self.previous = None
        return logits[0].float().cpu().numpy()

    def feed(self, code: int) -> None:
        """Give the code that followed the last prediction."""
        self.previous = int(code)


def build_prior(cfg: PriorConfig, codebook_size: int, n_speakers: int) -> LatentPrior:
    """The prior for a VQ-VAE with `codebook_size` codes and `n_speakers` speakers."""
    return LatentPrior(cfg, codebook_size, n_speakers)
