"""A speaker-adversarial classifier on the quantised latents, trained through gradient reversal.

Ganin & Lempitsky (2015), "Unsupervised domain adaptation by backpropagation", as used against speaker leakage
in VQ-VAE voice conversion: a small frame-level classifier learns to name the speaker from z_q, while the reversed
gradient (-weight x its gradient) pushes the encoder to make the codes useless for that. The classifier only
trains; encoding, decoding and conversion never call it.
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


class SpeakerAdversary(nn.Module):
    """Frame-level speaker classifier on latents [B, D, N]: two kernel-5 convolutions and a 1x1 output."""

    def __init__(self, dim: int, n_speakers: int, weight: float, hidden: int = 128):
        super().__init__()
        self.weight = weight
        self.net = nn.Sequential(
            nn.Conv1d(dim, hidden, 5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, max(n_speakers, 1), 1),
        )

    def forward(self, z_q: Tensor, speaker: Tensor) -> tuple[Tensor, Tensor]:
        """z_q [B, D, N], speaker [B] -> (cross-entropy over frames, to add to the loss as is; frame accuracy).

        The classifier minimises the cross-entropy; through the reversal the encoder maximises weight x it.
        """
        logits = self.net(reverse_gradient(z_q, self.weight)).float()
        target = speaker[:, None].expand(-1, logits.shape[2])
        ce = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        return ce, accuracy.detach()
