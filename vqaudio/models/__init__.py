"""Models: the VQ-VAE and its parts (encoder, vector quantiser, the one WaveNet run sample-level causal or
frame-level non-causal, the vocoder decoder, the speaker adversary), the latent prior network, and model files
(`io`: saved without pickles). `build_vqvae` assembles a VQ-VAE from a `ModelConfig`.

May import nn, data (the WORLD settings the vocoder decoder predicts) and the foundations; never inference,
training, evaluate or cli.
"""

from __future__ import annotations

from vqaudio.config import ModelConfig, WaveNetConfig, hop_length
from vqaudio.data.world import F0_MODES, GV_SCALES, WorldSettings
from vqaudio.errors import ConfigError
from vqaudio.models.adversary import PhoneHead, SpeakerAdversary
from vqaudio.models.encoder import Encoder
from vqaudio.models.vocoder import VocoderDecoder
from vqaudio.models.vq import VectorQuantizer, VQOutput
from vqaudio.models.vqvae import VQVAE, VQVAEOutput
from vqaudio.models.wavenet import WaveNet

__all__ = [
    "DECODER_KINDS", "Encoder", "VectorQuantizer", "VocoderDecoder", "VQOutput", "VQVAE", "VQVAEOutput", "WaveNet",
    "build_vqvae", "build_wavenet", "count_parameters",
]


DECODER_KINDS = ("wavenet", "vocoder")


def build_vqvae(cfg: ModelConfig, n_speakers: int, training: bool = True) -> VQVAE:
    """Encoder (cfg.encoder, D = cfg.vq.dim), quantiser (cfg.vq) and a decoder of kind cfg.decoder.kind
    conditioned on the code vectors and on `n_speakers` speaker embeddings: the sample-level WaveNet (codes
    upsampled by the hop) or the frame-level vocoder decoder (codes upsampled to cfg.vocoder's frames).
    `training=False` leaves out what only training uses (the speaker adversary, the phone head): model files do
    not hold it."""
    encoder = Encoder(cfg.encoder, cfg.vq.dim)
    hop, kind = hop_length(cfg), cfg.decoder.kind
    if kind == "wavenet":
        decoder = WaveNet(cfg.decoder, local_dim=cfg.vq.dim, n_speakers=n_speakers, upsample=hop)
    elif kind == "vocoder":
        settings = WorldSettings.from_config(cfg)
        if cfg.vocoder.f0_mode not in F0_MODES:
            raise ConfigError(f"model.vocoder.f0_mode must be one of {', '.join(F0_MODES)}, "
                              f"got {cfg.vocoder.f0_mode!r}")
        if not 0.0 <= cfg.vocoder.gv_strength <= 1.0:
            raise ConfigError(f"model.vocoder.gv_strength must be in [0, 1], got {cfg.vocoder.gv_strength}")
        if cfg.vocoder.gv_scale not in GV_SCALES:
            raise ConfigError(f"model.vocoder.gv_scale must be one of {', '.join(GV_SCALES)}, "
                              f"got {cfg.vocoder.gv_scale!r}")
        if hop % settings.frame_samples:
            raise ConfigError(f"vocoder frame_samples ({settings.frame_samples}) must divide the encoder hop ({hop})")
        wavenet = WaveNet(cfg.decoder, local_dim=cfg.vq.dim, n_speakers=n_speakers,
                          upsample=hop // settings.frame_samples, causal=False, out_channels=settings.dims)
        if cfg.vocoder.spectral_weight <= 0:
            raise ConfigError(f"model.vocoder.spectral_weight must be > 0, got {cfg.vocoder.spectral_weight}")
        if cfg.vocoder.gv_weight < 0:
            raise ConfigError(f"model.vocoder.gv_weight must be >= 0, got {cfg.vocoder.gv_weight}")
        decoder = VocoderDecoder(wavenet, settings, n_speakers, cfg.vocoder.spectral_weight, cfg.vocoder.gv_weight)
    else:
        raise ConfigError(f"model.decoder.kind must be one of {', '.join(DECODER_KINDS)}, got {kind!r}")
    for name in ("speaker_adversary", "utterance_adversary", "phone_loss"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"model.{name} must be >= 0, got {getattr(cfg, name)}")
    adversary = None
    if training and (cfg.speaker_adversary > 0 or cfg.utterance_adversary > 0):
        adversary = SpeakerAdversary(cfg.vq.dim, n_speakers, cfg.speaker_adversary,
                                     utterance_weight=cfg.utterance_adversary)
    phone_head = PhoneHead(cfg.vq.dim, cfg.phone_loss) if training and cfg.phone_loss > 0 else None
    return VQVAE(encoder, VectorQuantizer(cfg.vq), decoder, adversary, phone_head)


def build_wavenet(cfg: WaveNetConfig, local_dim: int = 0, n_speakers: int = 0, upsample: int = 1) -> WaveNet:
    """A WaveNet, e.g. the latent prior: `build_wavenet(prior_cfg.wavenet, n_speakers=n)` (classes = K)."""
    return WaveNet(cfg, local_dim=local_dim, n_speakers=n_speakers, upsample=upsample)


def count_parameters(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
