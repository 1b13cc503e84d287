"""The VQ-VAE (van den Oord et al. 2017): encoder -> vector quantiser -> speaker-conditioned WaveNet decoder.

Assembled from ready parts passed to the constructor (the EnCodec pattern); `build_vqvae` in
`vqaudio.models` makes them from a `ModelConfig`. Two decoder kinds:

- "wavenet" (`WaveNet`, the paper's): models 8-bit mu-law samples with a softmax, trained by teacher forcing;
  the loss is the paper's eq. 3, nll + codebook + beta * commitment.
- "vocoder" (`VocoderDecoder`): predicts WORLD features per vocoder frame from the codes and the speaker; the
  reconstruction term of eq. 3 is the feature loss of `VocoderDecoder.loss` instead of the NLL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.audio import mu_law_encode
from vqaudio.models.adversary import PhoneHead, SpeakerAdversary
from vqaudio.models.encoder import Encoder
from vqaudio.models.vocoder import VocoderDecoder, feature_loss
from vqaudio.models.vq import VectorQuantizer
from vqaudio.models.wavenet import WaveNet


@dataclass
class VQVAEOutput:
    """Result of one teacher-forced pass over a batch."""

    loss: Tensor  # scalar: recon + vq_loss (+ the speaker adversary's and the phone head's terms, when there are)
    recon: Tensor  # scalar: wavenet kind: mean NLL of the mu-law targets, nats/sample; vocoder: the feature loss
    vq_loss: Tensor  # scalar: codebook + beta * commitment (EMA mode: beta * commitment)
    commitment: Tensor  # scalar: mean ||z_e - sg[e]||^2 per element
    perplexity: Tensor  # scalar: code perplexity of this batch
    codes: Tensor  # LongTensor [B, N]
    parts: dict[str, Tensor] = field(default_factory=dict)  # vocoder kind: the terms of recon; auxiliary figures

    @property
    def nll(self) -> Tensor:
        """The wavenet kind's reconstruction term (nats/sample)."""
        return self.recon


class VQVAE(nn.Module):
    """Encoder, quantiser and decoder (sample-level `WaveNet` or frame-level `VocoderDecoder`); hop_length
    samples per code."""

    def __init__(self, encoder: Encoder, quantizer: VectorQuantizer, decoder: WaveNet | VocoderDecoder,
                 adversary: SpeakerAdversary | None = None, phone_head: PhoneHead | None = None):
        super().__init__()
        if adversary is not None:
            self.adversary = adversary
        if phone_head is not None:
            self.phone_head = phone_head
        self.kind = "vocoder" if isinstance(decoder, VocoderDecoder) else "wavenet"
        step = decoder.settings.frame_samples * decoder.frames_per_code if self.kind == "vocoder" else decoder.upsample
        if step != encoder.hop_length:
            raise ValueError(f"decoder covers {step} samples per code, the encoder hop is {encoder.hop_length}")
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.hop_length = encoder.hop_length

    def forward(self, wav: Tensor, speaker: Tensor | None, features: Tensor | None = None,
                inputs: Tensor | None = None, phones: Tensor | None = None) -> VQVAEOutput:
        """wav [B, T] float in [-1, 1] (T a multiple of hop_length), speaker LongTensor [B], and for the vocoder
        kind the WORLD features of the window [B, T / frame_samples, F] -> VQVAEOutput. `inputs` [B, T]: what the
        encoder sees instead of `wav` (a perturbed copy; the decoder's targets stay `wav` / `features`). `phones`
        LongTensor [B, T / hop_length]: each code frame's phone id (-1: none), for the phone head when there is one."""
        z_e = self.encoder((wav if inputs is None else inputs)[:, None, :])
        q = self.quantizer(z_e)
        extra, aux = {}, 0.0  # the auxiliary terms: the speaker adversary's, the phone head's
        if hasattr(self, "adversary") and speaker is not None:
            adv, figures = self.adversary(q.z_q, speaker)
            aux = aux + adv
            extra.update(figures, adversary_ce=adv.detach())
        if hasattr(self, "phone_head") and phones is not None:
            phone, figures = self.phone_head(z_e, phones)
            aux = aux + phone
            extra.update(figures)
        if self.kind == "vocoder":
            if features is None:
                raise ValueError("the vocoder decoder trains on WORLD features [B, frames, F]; none given")
            weighted, parts = self.decoder.loss(self.decoder(q.z_q, speaker), features)
            recon = feature_loss(parts)  # reported unweighted, comparable across `spectral_weight`s
            return VQVAEOutput(weighted + q.loss + aux, recon, q.loss, q.commitment, q.perplexity, q.codes,
                               {**parts, **extra})
        targets = mu_law_encode(wav, self.decoder.classes).to(wav.device)
        logits = self.decoder(self.shift(targets), q.z_q, speaker)
        nll = F.cross_entropy(logits.float(), targets)
        return VQVAEOutput(nll + q.loss + aux, nll, q.loss, q.commitment, q.perplexity, q.codes, extra)

    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """wav [B, T] -> codes LongTensor [B, T // hop_length] (no jitter, no codebook updates)."""
        return self.quantizer.quantize(self.encoder(wav[:, None, :]))

    def codes_to_latent(self, codes: Tensor) -> Tensor:
        """codes LongTensor [B, N] -> code vectors [B, D, N] (the decoder's local conditioning)."""
        return self.quantizer.lookup(codes)

    @torch.no_grad()
    def decode_features(self, codes: Tensor, speaker: Tensor | None) -> Tensor:
        """Vocoder kind: codes [B, N], speaker [B] -> WORLD features [B, N * frames_per_code, F] (voicing as a
        probability)."""
        return self.decoder.denormalize(self.decoder(self.codes_to_latent(codes), speaker))

    def decoder_logits(self, codes: Tensor, speaker: Tensor | None, targets: Tensor) -> Tensor:
        """Teacher-forced decoder logits: codes [B, N], speaker [B], targets LongTensor [B, T] (mu-law,
        T <= N * hop_length) -> logits [B, classes, T]; logits[..., t] predicts targets[:, t]."""
        return self.decoder(self.shift(targets), self.codes_to_latent(codes), speaker)

    def shift(self, targets: Tensor) -> Tensor:
        """Decoder inputs from targets [B, T]: [start_token, targets[:, 0], ..., targets[:, T-2]]."""
        start = torch.full_like(targets[:, :1], self.decoder.start_token)
        return torch.cat([start, targets[:, :-1]], dim=1)
