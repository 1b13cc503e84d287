"""Convolution building blocks: a causal convolution that carries its own input buffer, and residual blocks.

`CausalConv1d` has ONE code path for the full and the incremental (cached) forward (the wavenet_vocoder idea,
with the state passed in and out explicitly instead of hidden in the module): `stream(x, state)` prepends the
last `context` input frames held in `state` to `x`, convolves without padding, and returns the new state.
The full forward is `stream` from a zero state; generation calls `stream` one sample at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Conv1d):
    """Causal dilated 1-D convolution: output t depends on inputs t - context .. t only.

    Weight [C_out, C_in, k] and bias [C_out], exactly as `nn.Conv1d` (the numba generator reads them).
    The state is the input buffer: the last `context = (k - 1) * dilation` input frames, [B, C_in, context].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)

    @property
    def context(self) -> int:
        """Past input frames each output needs beyond the current one: (k - 1) * dilation."""
        return (self.kernel_size[0] - 1) * self.dilation[0]

    def init_state(self, batch: int) -> Tensor:
        """Zero input buffer [batch, C_in, context] (silence before the first sample)."""
        return self.weight.new_zeros(batch, self.in_channels, self.context)

    def stream(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve new frames `x` [B, C_in, T] given the buffer `state` [B, C_in, context].

        Returns (y [B, C_out, T], new state [B, C_in, context]: the last `context` frames of state + x).
        """
        full = torch.cat([state.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=2)
        y = F.conv1d(full, self.weight, self.bias, dilation=self.dilation)
        return y, full[:, :, full.shape[2] - self.context:]

    def forward(self, x: Tensor) -> Tensor:
        """Full causal forward, [B, C_in, T] -> [B, C_out, T], from silence."""
        return self.stream(x, self.init_state(1))[0]


class SameConv1d(nn.Conv1d):
    """Non-causal dilated 1-D convolution that keeps the length: output t sees inputs t - context .. t + context,
    context = (k - 1) // 2 * dilation (odd k). Weight and bias as `nn.Conv1d`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias,
                         padding=same_padding(kernel_size, dilation))

    @property
    def context(self) -> int:
        """Input frames each output sees on either side of its own: (k - 1) // 2 * dilation."""
        return (self.kernel_size[0] - 1) // 2 * self.dilation[0]


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of an odd-kernel, stride-1 convolution."""
    if kernel_size % 2 == 0:
        raise ValueError(f"'same' padding needs an odd kernel, got {kernel_size}")
    return (kernel_size - 1) // 2 * dilation


class DilatedResidualBlock(nn.Module):
    """Non-causal dilated residual block: x + conv1x1(relu(conv_k,d(relu(x)))), [B, C, T] -> [B, C, T].

    The dilated convolution narrows to `hidden` channels (a bottleneck keeps the encoder small); the block
    widens the encoder's receptive field by (k - 1) * dilation frames at its rate.
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3, dilation: int = 1):
        super().__init__()
        self.dilated = nn.Conv1d(channels, hidden, kernel_size, dilation=dilation,
                                 padding=same_padding(kernel_size, dilation))
        self.pointwise = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pointwise(F.relu(self.dilated(F.relu(x))))
