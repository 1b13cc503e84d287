"""The VQ-VAE encoder on the raw waveform (van den Oord et al. 2017, section 4.3).

The paper: "6 strided convolutions with stride 2 and window-size 4", i.e. 64x downsampling (250 codes/s
at 16 kHz). Each strided convolution here is followed by non-causal dilated residual blocks that widen the
receptive field, and a final 1x1 convolution gives D-dim vectors. Strides are configurable: the paper's
phoneme experiment (25 codes/s, 640x) is `strides=[2, 2, 2, 2, 2, 4, 5]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import EncoderConfig
from vqaudio.errors import ConfigError
from vqaudio.nn.conv import DilatedResidualBlock


class StridedConv(nn.Module):
    """Strided conv [B, C_in, T] -> [B, C_out, T // stride] exactly (T a multiple of stride).

    The window is max(kernel_size, stride) so every input sample is seen; padding (window - stride) is split
    between the two ends, so output frame n is centred on input samples [n * stride, (n + 1) * stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        window = max(kernel_size, stride)
        extra = window - stride
        self.pad = (extra // 2, extra - extra // 2)
        self.conv = nn.Conv1d(in_channels, out_channels, window, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.pad))


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each frame, [B, C, T] -> [B, C, T].

    Per frame, so it keeps the encoder local in time (chunked encoding equals one pass) and independent of
    the batch; it keeps every stage at unit scale whatever the input level.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        # Normalised along dim 1 directly instead of LayerNorm on x.transpose(1, 2): the two transposed copies
        # made encoding ~1.35x slower (a throwaway timing of the mini encoder on 11 s). Same parameters.
        centred = x - x.mean(1, keepdim=True)
        scale = torch.rsqrt(centred.square().mean(1, keepdim=True) + self.norm.eps)
        return torch.addcmul(self.norm.bias[:, None], centred * scale, self.norm.weight[:, None])


class SlidingNorm(nn.Module):
    """Each channel standardised over a centred window of `frames` frames, [B, C, T] -> [B, C, T]; no parameters.

    Kaldi's sliding CMVN (`apply-cmvn-sliding --center=true --norm-vars=true`) on the latents: the window is
    cut at the signal's ends, so a short utterance is normalised as a whole (instance normalisation, which
    strips what is constant over an utterance, its speaker and channel, from content codes: Chou et al. 2019,
    "One-shot voice conversion by separating speaker and content representations with instance normalization").
    Local in time, so chunked encoding with half a window of extra context equals one pass. `norm_vars=False`
    subtracts the window's mean only (Kaldi's default; output_norm "sliding-mean" follows it with the batch norm).
    """

    def __init__(self, frames: int, norm_vars: bool = True, eps: float = 1e-5):
        super().__init__()
        self.frames, self.norm_vars, self.eps = frames, norm_vars, eps

    def forward(self, x: Tensor) -> Tensor:
        # float64: E[x^2] - E[x]^2 over a window loses float32's digits when the offset dwarfs the spread.
        x64 = x.double()
        pool = dict(kernel_size=self.frames, stride=1, padding=self.frames // 2, count_include_pad=False)
        mean = F.avg_pool1d(x64, **pool)
        if not self.norm_vars:
            return (x64 - mean).to(x.dtype)
        var = (F.avg_pool1d(x64.square(), **pool) - mean.square()).clamp_min(0.0)
        return ((x64 - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)


class Encoder(nn.Module):
    """Raw waveform -> continuous latents z_e.

    forward(wav [B, 1, T]) -> z_e [B, dim, T // hop_length]; T must be a multiple of hop_length.
    """

    def __init__(self, cfg: EncoderConfig, dim: int):
        super().__init__()
        _check_config(cfg, dim)
        self.hop_length = math.prod(cfg.strides)
        stages: list[nn.Module] = []
        in_ch = 1
        for stride, channels in zip(cfg.strides, stage_widths(cfg), strict=True):
            hidden = cfg.residual_channels or channels
            stages.append(StridedConv(in_ch, channels, cfg.kernel_size, stride))
            stages.append(ChannelNorm(channels))
            stages.append(nn.ReLU())
            stages.extend(DilatedResidualBlock(channels, hidden, cfg.residual_kernel_size, d)
                          for d in cfg.dilations)
            in_ch = channels
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Conv1d(in_ch, dim, 1)
        # Batch-normalised latents (Lancucki et al. 2020, "Robust training of vector quantized bottleneck
        # models"): z_e standardised per channel over the batch's frames, no affine. Without it the frames of
        # a batch drifted together faster than the EMA codebook followed and shrank to a tight cluster
        # (spread / offset ~0.03 on dev speech after 300 mini steps): 10 codes for 1024 frames. Standardised,
        # the latents cannot lose their frame-to-frame variation; in eval mode it is a fixed affine map.
        # "sliding" standardises each utterance's latents over a window of norm_frames instead (SlidingNorm): what stays
        # constant over an utterance (speaker, microphone, line) leaves the codes.
        self.norm: nn.Module = nn.Identity()
        if cfg.output_norm == "batch":
            self.norm = nn.BatchNorm1d(dim, affine=False)
        elif cfg.output_norm == "sliding":
            self.norm = SlidingNorm(cfg.norm_frames)
        elif cfg.output_norm == "sliding-mean":  # the window's mean removed, the spread kept to the batch norm
            self.norm = nn.Sequential(SlidingNorm(cfg.norm_frames, norm_vars=False), nn.BatchNorm1d(dim, affine=False))
        self._init_weights()

    def _init_weights(self) -> None:
        """He init with zero biases; residual branches start as the identity.

        PyTorch's default conv init shrinks the variance about 3x per layer while the biases stay, so after
        six stages z_e was a near-constant bias vector (frame-to-frame std / mean norm ~0.002 on speech):
        every frame then picks the same code and the decoder learns to ignore the codes (collapse seen in
        training on the embedded corpus). With this init and the per-frame channel norm the ratio is ~0.07.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
            if isinstance(module, DilatedResidualBlock):
                nn.init.zeros_(module.pointwise.weight)
        nn.init.kaiming_normal_(self.proj.weight, nonlinearity="linear")

    def forward(self, wav: Tensor) -> Tensor:
        """wav [B, 1, T] float in [-1, 1] -> z_e [B, D, T // hop_length]."""
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"encoder expects [B, 1, T], got {list(wav.shape)}")
        if wav.shape[2] % self.hop_length:
            raise ValueError(f"input length {wav.shape[2]} is not a multiple of the hop ({self.hop_length})")
        return self.norm(self.proj(F.relu(self.stages(wav))))


def stage_widths(cfg: EncoderConfig) -> list[int]:
    """Channels of each strided stage: `stage_channels`, or `channels` for every stage when it is empty."""
    return list(cfg.stage_channels) or [cfg.channels] * len(cfg.strides)


def _check_config(cfg: EncoderConfig, dim: int) -> None:
    if not cfg.strides or any(s < 1 for s in cfg.strides):
        raise ConfigError(f"encoder strides must be a non-empty list of integers >= 1, got {cfg.strides}")
    if cfg.channels < 1 or cfg.kernel_size < 1 or dim < 1 or cfg.residual_channels < 0:
        raise ConfigError("encoder channels, kernel_size and vq dim must be >= 1 (residual_channels >= 0)")
    if cfg.stage_channels and (len(cfg.stage_channels) != len(cfg.strides) or min(cfg.stage_channels) < 1):
        raise ConfigError(f"encoder stage_channels must give one width >= 1 per stride ({len(cfg.strides)} strides), "
                          f"got {cfg.stage_channels}; with other strides set stage_channels too ([] = `channels`)")
    if cfg.residual_kernel_size % 2 == 0:
        raise ConfigError(f"encoder residual_kernel_size must be odd (non-causal 'same'), got "
                          f"{cfg.residual_kernel_size}")
    if cfg.output_norm not in ("batch", "sliding", "sliding-mean", "none"):
        raise ConfigError(f"encoder output_norm must be 'batch', 'sliding', 'sliding-mean' or 'none', "
                          f"got {cfg.output_norm!r}")
    if cfg.norm_frames < 1 or cfg.norm_frames % 2 == 0:
        raise ConfigError(f"encoder norm_frames must be odd and >= 1 (a centred window), got {cfg.norm_frames}")
    if any(d < 1 for d in cfg.dilations):
        raise ConfigError(f"encoder dilations must be >= 1, got {cfg.dilations}")
