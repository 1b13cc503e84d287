"""Tiny model configs shared by the codec tests (seconds to build, run and save)."""

from __future__ import annotations

from vqaudio.config import ModelConfig


def tiny_config() -> ModelConfig:
    """A VQ-VAE of a few thousand parameters: K=32, D=8, a 4-layer WaveNet."""
    cfg = ModelConfig()
    cfg.encoder.channels, cfg.encoder.residual_channels = 16, 8
    cfg.vq.codebook_size, cfg.vq.dim = 32, 8
    d = cfg.decoder
    d.layers, d.stacks, d.residual_channels, d.gate_channels, d.skip_channels = 4, 2, 16, 32, 32
    d.cond_channels, d.speaker_dim = 16, 8
    return cfg
