"""The VQ-VAE and its parts; `build_vqvae` assembles one from a `ModelConfig`."""

from __future__ import annotations

from vqaudio.config import ModelConfig, WaveNetConfig, hop_length
from vqaudio.models.encoder import Encoder
from vqaudio.models.vq import VectorQuantizer, VQOutput
from vqaudio.models.vqvae import VQVAE, VQVAEOutput
from vqaudio.models.wavenet import WaveNet

__all__ = [
    "Encoder", "VectorQuantizer", "VQOutput", "VQVAE", "VQVAEOutput", "WaveNet",
    "build_vqvae", "build_wavenet", "count_parameters",
]


def build_vqvae(cfg: ModelConfig, n_speakers: int) -> VQVAE:
    """Encoder (cfg.encoder, D = cfg.vq.dim), quantiser (cfg.vq) and a WaveNet decoder (cfg.decoder) conditioned
    on the code vectors upsampled by the hop and on `n_speakers` speaker embeddings."""
    encoder = Encoder(cfg.encoder, cfg.vq.dim)
    decoder = WaveNet(cfg.decoder, local_dim=cfg.vq.dim, n_speakers=n_speakers, upsample=hop_length(cfg))
    return VQVAE(encoder, VectorQuantizer(cfg.vq), decoder)


def build_wavenet(cfg: WaveNetConfig, local_dim: int = 0, n_speakers: int = 0, upsample: int = 1) -> WaveNet:
    """A WaveNet, e.g. the latent prior: `build_wavenet(prior_cfg.wavenet, n_speakers=n)` (classes = K)."""
    return WaveNet(cfg, local_dim=local_dim, n_speakers=n_speakers, upsample=upsample)


def count_parameters(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
