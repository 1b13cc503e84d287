"""Tiny models shared by the tests (seconds to build, run and save)."""

from __future__ import annotations

import torch

from vqaudio.config import ModelConfig, PriorConfig, WaveNetConfig
from vqaudio.models.prior import LatentPrior
from vqaudio.models.wavenet import WaveNet


def tiny_config() -> ModelConfig:
    """A VQ-VAE of a few thousand parameters: K=32, D=8, a 4-layer WaveNet."""
    cfg = ModelConfig()
    cfg.encoder.channels, cfg.encoder.residual_channels = 16, 8
    cfg.vq.codebook_size, cfg.vq.dim = 32, 8
    d = cfg.decoder
    d.layers, d.stacks, d.residual_channels, d.gate_channels, d.skip_channels = 4, 2, 16, 32, 32
    d.cond_channels, d.speaker_dim = 16, 8
    return cfg


UPSAMPLE = 4


def tiny_wavenet(kernel_size: int = 2, local_dim: int = 6, n_speakers: int = 3, classes: int = 256) -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(classes=classes, layers=4, stacks=2, kernel_size=kernel_size, residual_channels=16,
                        gate_channels=32, skip_channels=24, cond_channels=8 if local_dim else 0, speaker_dim=5)
    net = WaveNet(cfg, local_dim=local_dim, n_speakers=n_speakers, upsample=UPSAMPLE).eval()
    with torch.no_grad():  # livelier than the default init, so that logits differ clearly between inputs
        for p in net.parameters():
            p.mul_(2.0)
    return net


def tiny_prior(n_speakers: int = 3, conditioned: bool = True, seed: int = 0, codebook_size: int = 32) -> LatentPrior:
    """A latent prior of a few thousand parameters over `codebook_size` codes (tiny_config's K by default)."""
    torch.manual_seed(seed)
    wn = WaveNetConfig(classes=999, layers=4, stacks=2, residual_channels=8, gate_channels=12, skip_channels=10,
                       cond_channels=0, speaker_dim=4)
    return LatentPrior(PriorConfig(wavenet=wn, speaker_conditioned=conditioned), codebook_size, n_speakers).eval()
