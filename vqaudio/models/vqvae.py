"""The VQ-VAE (van den Oord et al. 2017): encoder -> vector quantiser -> speaker-conditioned WaveNet decoder.

Assembled from ready parts passed to the constructor (the EnCodec pattern); `build_vqvae` in
`vqaudio.models` makes them from a `ModelConfig`. The decoder models 8-bit mu-law samples with a softmax
and is trained by teacher forcing; the loss is the paper's eq. 3, nll + codebook + beta * commitment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.audio import mu_law_encode
from vqaudio.models.encoder import Encoder
from vqaudio.models.vq import VectorQuantizer
from vqaudio.models.wavenet import WaveNet


@dataclass
class VQVAEOutput:
    """Result of one teacher-forced pass over a batch."""

    loss: Tensor  # scalar: nll + vq_loss
    nll: Tensor  # scalar: mean negative log-likelihood of the mu-law targets, nats/sample
    vq_loss: Tensor  # scalar: codebook + beta * commitment (EMA mode: beta * commitment)
    commitment: Tensor  # scalar: mean ||z_e - sg[e]||^2 per element
    perplexity: Tensor  # scalar: code perplexity of this batch
    codes: Tensor  # LongTensor [B, N]


class VQVAE(nn.Module):
    """Encoder, quantiser and WaveNet decoder; hop_length samples per code."""

    def __init__(self, encoder: Encoder, quantizer: VectorQuantizer, decoder: WaveNet):
        super().__init__()
        if decoder.upsample != encoder.hop_length:
            raise ValueError(f"decoder upsample {decoder.upsample} != encoder hop {encoder.hop_length}")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.hop_length = encoder.hop_length

    def forward(self, wav: Tensor, speaker: Tensor | None) -> VQVAEOutput:
        """wav [B, T] float in [-1, 1] (T a multiple of hop_length), speaker LongTensor [B] -> VQVAEOutput."""
        z_e = self.encoder(wav[:, None, :])
        q = self.quantizer(z_e)
        targets = mu_law_encode(wav, self.decoder.classes).to(wav.device)
        logits = self.decoder(self.shift(targets), q.z_q, speaker)
        nll = F.cross_entropy(logits.float(), targets)
        return VQVAEOutput(nll + q.loss, nll, q.loss, q.commitment, q.perplexity, q.codes)

    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """wav [B, T] -> codes LongTensor [B, T // hop_length] (no jitter, no codebook updates)."""
        return self.quantizer.quantize(self.encoder(wav[:, None, :]))

    def codes_to_latent(self, codes: Tensor) -> Tensor:
        """codes LongTensor [B, N] -> code vectors [B, D, N] (the decoder's local conditioning)."""
        return self.quantizer.lookup(codes)

    def decoder_logits(self, codes: Tensor, speaker: Tensor | None, targets: Tensor) -> Tensor:
        """Teacher-forced decoder logits: codes [B, N], speaker [B], targets LongTensor [B, T] (mu-law,
        T <= N * hop_length) -> logits [B, classes, T]; logits[..., t] predicts targets[:, t]."""
        return self.decoder(self.shift(targets), self.codes_to_latent(codes), speaker)

    def shift(self, targets: Tensor) -> Tensor:
        """Decoder inputs from targets [B, T]: [start_token, targets[:, 0], ..., targets[:, T-2]]."""
        start = torch.full_like(targets[:, :1], self.decoder.start_token)
        return torch.cat([start, targets[:, :-1]], dim=1)
