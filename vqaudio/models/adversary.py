"""A speaker-adversarial classifier on the quantised latents, trained through gradient reversal.

Ganin & Lempitsky (2015), "Unsupervised domain adaptation by backpropagation", as used against speaker leakage
in VQ-VAE voice conversion: a small frame-level classifier learns to name the speaker from z_q, while the reversed
gradient (-weight x its gradient) pushes the encoder to make the codes useless for that. The classifier only
trains; encoding, decoding and conversion never call it.

The frame-level classifier sees 9 frames; what it cannot reach is what a whole window says about its speaker
(histograms of the codes name the speaker of an utterance even when single frames do not). With
`utterance_weight` a second classifier names the speaker from the mean and standard deviation over the window of
per-frame features (an x-vector's statistics pooling, Snyder et al. 2018), also through gradient reversal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: float) -> Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: Tensor, weight: float) -> Tensor:
    """Identity forward; the gradient is multiplied by -weight on the way back."""
    return _Reverse.apply(x, weight)


def _frame_features(dim: int, hidden: int) -> list[nn.Module]:
    """The classifiers' per-frame layers: two kernel-5 convolutions with ReLUs, [B, dim, N] -> [B, hidden, N]."""
    return [nn.Conv1d(dim, hidden, 5, padding=2), nn.ReLU(), nn.Conv1d(hidden, hidden, 5, padding=2), nn.ReLU()]


class SpeakerAdversary(nn.Module):
    """Frame-level speaker classifier on latents [B, D, N]: two kernel-5 convolutions and a 1x1 output; with
    `utterance_weight` > 0 also a window-level one (two kernel-5 convolutions, mean and std over time, an MLP)."""

    def __init__(self, dim: int, n_speakers: int, weight: float, hidden: int = 128, utterance_weight: float = 0.0):
        super().__init__()
        self.weight, self.utterance_weight = weight, utterance_weight
        n_out = max(n_speakers, 1)
        self.net = nn.Sequential(*_frame_features(dim, hidden), nn.Conv1d(hidden, n_out, 1))
        if utterance_weight > 0:
            self.utterance_frames = nn.Sequential(*_frame_features(dim, hidden))
            self.utterance_out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, z_q: Tensor, speaker: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """z_q [B, D, N], speaker [B] -> (the cross-entropies summed, to add to the loss as is; figures:
        `adversary_accuracy` over frames and, with the window-level classifier, `utterance_adversary_accuracy`).

        The classifiers minimise their cross-entropies; through the reversal the encoder maximises weight x each.
        """
        logits = self.net(reverse_gradient(z_q, self.weight)).float()
        target = speaker[:, None].expand(-1, logits.shape[2])
        ce = F.cross_entropy(logits, target)
        figures = {"adversary_accuracy": (logits.argmax(dim=1) == target).float().mean().detach()}
        if self.utterance_weight > 0:
            h = self.utterance_frames(reverse_gradient(z_q, self.utterance_weight)).float()
            pooled = torch.cat([h.mean(2), h.std(2, unbiased=False)], dim=1)
            window_logits = self.utterance_out(pooled)
            window_ce = F.cross_entropy(window_logits, speaker)
            ce = ce + window_ce
            figures["utterance_adversary_ce"] = window_ce.detach()
            figures["utterance_adversary_accuracy"] = (window_logits.argmax(1) == speaker).float().mean().detach()
        return ce, figures


class PhoneHead(nn.Module):
    """A linear phone classifier on the encoder's output z_e [B, D, N] (a 1x1 convolution to the 41 phones of
    `vqaudio.phones`), trained with the VQ-VAE on frame labels; its cross-entropy, times `weight`, is added to the
    loss, so the encoder is asked for latents from which phones are linearly read. Labels -1 are ignored."""

    def __init__(self, dim: int, weight: float):
        super().__init__()
        from vqaudio.phones import PHONES

        self.weight = weight
        self.net = nn.Conv1d(dim, len(PHONES), 1)

    def forward(self, z_e: Tensor, phones: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """z_e [B, D, N], phones LongTensor [B, N] (-1: no label) -> (weight x cross-entropy; figures:
        `phone_ce`, `phone_accuracy` over the labelled frames)."""
        logits = self.net(z_e).float()
        known = phones >= 0
        if not bool(known.any()):
            zero = logits.sum() * 0.0
            return zero, {"phone_ce": zero.detach(), "phone_accuracy": zero.detach()}
        ce = F.cross_entropy(logits, phones, ignore_index=-1)
        accuracy = (logits.argmax(dim=1) == phones)[known].float().mean()
        return self.weight * ce, {"phone_ce": ce.detach(), "phone_accuracy": accuracy.detach()}
