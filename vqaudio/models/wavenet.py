"""One WaveNet (van den Oord et al. 2016) for the VQ-VAE decoder and the latent prior.

Causal dilated convolutions with gated tanh-sigmoid units, residual and skip connections, local
conditioning (codes at the frame rate, upsampled by repetition) and global conditioning (a speaker
embedding projected to a per-layer bias). The parameter layout is part of the contract (docs/DESIGN.md,
"Models"): the numba generator reads `embed`, `layers[l].dilated`, `layers[l].res_skip`, `out1`, `out2`
and the output of `conditioning()`; keep it exact.

The full forward and the cached incremental `step` run the same per-layer code (`GatedLayer.stream`).

Non-causal mode (`causal=False`, the frame-level "vocoder" decoder): the same gated residual stack with 'same'
dilated convolutions (odd kernel) run at the conditioning's own frame rate times `upsample`, no autoregressive
input; layer 0's input is a 1x1 projection (`inp`) of the local conditioning network's output, the gates get the
same local and global conditioning, and `out2` gives `out_channels` real values per frame (`forward_frames`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import WaveNetConfig
from vqaudio.errors import ConfigError
from vqaudio.nn.conv import CausalConv1d, SameConv1d

_SQRT_HALF = math.sqrt(0.5)


class GatedLayer(nn.Module):
    """One residual layer: `dilated` conv R -> G (causal, or 'same' in the non-causal mode), gate
    tanh(a) * sigmoid(b), `res_skip` 1x1 G/2 -> R + S."""

    def __init__(self, residual: int, gate: int, skip: int, kernel_size: int, dilation: int, causal: bool = True):
        super().__init__()
        self.residual, self.skip = residual, skip
        conv = CausalConv1d if causal else SameConv1d
        self.dilated = conv(residual, gate, kernel_size, dilation=dilation)
        self.res_skip = nn.Conv1d(gate // 2, residual + skip, 1)

    def stream(self, h: Tensor, cond: Tensor, state: Tensor | None, upsample: int = 1
               ) -> tuple[Tensor, Tensor, Tensor | None]:
        """h [B, R, T], cond [B, G, T] or [B, G, 1] (upsample 1) or at the frame rate [B, G, >= T / upsample],
        state [B, R, context] (causal) or None (non-causal: the whole sequence at once) -> (h', skip [B, S, T],
        state')."""
        if state is None:
            x = self.dilated(h)
        else:
            x, state = self.dilated.stream(h, state)
        a, b = _add_frames(x, cond, upsample).chunk(2, dim=1)
        res, skip = self.res_skip(torch.tanh(a) * torch.sigmoid(b)).split([self.residual, self.skip], dim=1)
        return (h + res) * _SQRT_HALF, skip, state


class WaveNet(nn.Module):
    """Autoregressive categorical model over `classes` values with local and global conditioning; in the
    non-causal mode a frame-level regressor of `out_channels` values (`forward_frames`).

    Args:
        cfg: sizes (layers, stacks, kernel, channel widths, cond_channels, speaker_dim).
        local_dim: channels of the frame-rate local conditioning (0 = none; e.g. D for the VQ-VAE decoder).
        n_speakers: rows of the speaker embedding (0, or cfg.speaker_dim = 0: no global conditioning).
        upsample: output steps per conditioning frame (the VQ-VAE hop, 64 in the paper; codes to vocoder frames
            in non-causal mode).
        causal: False for the non-causal frame-level mode (needs local conditioning and an odd kernel).
        out_channels: outputs per step in non-causal mode (default cfg.classes).
    """

    def __init__(self, cfg: WaveNetConfig, local_dim: int = 0, n_speakers: int = 0, upsample: int = 1,
                 causal: bool = True, out_channels: int | None = None):
        super().__init__()
        _check_config(cfg, upsample, causal, local_dim)
        self.cfg, self.upsample, self.causal = cfg, upsample, causal
        self.classes = cfg.classes if causal or out_channels is None else out_channels
        self.start_token = cfg.classes
        cycle = cfg.layers // cfg.stacks
        self.dilations = [2 ** (i % cycle) for i in range(cfg.layers)]
        if causal:
            self.embed = nn.Embedding(cfg.classes + 1, cfg.residual_channels)
        self.layers = nn.ModuleList(
            GatedLayer(cfg.residual_channels, cfg.gate_channels, cfg.skip_channels, cfg.kernel_size, d, causal)
            for d in self.dilations
        )
        self.out1 = nn.Conv1d(cfg.skip_channels, cfg.skip_channels, 1)
        self.out2 = nn.Conv1d(cfg.skip_channels, self.classes, 1)
        cond_width = cfg.layers * cfg.gate_channels
        self.local_dim = local_dim
        if local_dim > 0:
            # A small non-causal network at the frame rate, then ONE 1x1 projection to every layer's gate
            # inputs; upsampling is repetition (cheap: no transposed convolutions at the sample rate).
            hidden = cfg.cond_channels or local_dim
            self.cond_net = nn.Sequential(
                nn.Conv1d(local_dim, hidden, 3, padding=1), nn.ReLU(),
                nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
            ) if cfg.cond_channels > 0 else nn.Identity()
            self.cond_proj = nn.Conv1d(hidden, cond_width, 1)
            if not causal:
                self.inp = nn.Conv1d(hidden, cfg.residual_channels, 1)
        self.n_speakers = n_speakers if cfg.speaker_dim > 0 else 0
        if self.n_speakers > 0:
            self.speaker_embed = nn.Embedding(self.n_speakers, cfg.speaker_dim)
            self.speaker_proj = nn.Linear(cfg.speaker_dim, cond_width)

    @property
    def receptive_field(self) -> int:
        """Steps of its own input each output sees, the current one included: (k - 1) * sum(dilations) + 1
        (causal: all in the past; non-causal: half on either side). The conditioning network adds its reach."""
        return (self.cfg.kernel_size - 1) * sum(self.dilations) + 1

    @property
    def local_reach(self) -> int:
        """Non-causal mode: local frames on either side of its own that an output sees (the stack's half-width in
        output steps, rounded up to local frames, plus the conditioning network's two kernel-3 convolutions)."""
        half = (self.cfg.kernel_size - 1) // 2 * sum(self.dilations)
        return -(-half // self.upsample) + (2 if self.cfg.cond_channels > 0 else 0)

    def conditioning(self, local: Tensor | None = None, speaker: Tensor | None = None, batch: int = 1) -> Tensor:
        """Per-layer gate biases at the frame rate, computed once per utterance.

        local [B, local_dim, N] | None, speaker LongTensor [B] | None -> cond [B, layers * gate_channels, N]
        (N = 1 without local conditioning; B = `batch` when neither input gives it). Sample t uses frame
        t // upsample; layer l uses channels [l * G, (l + 1) * G).
        """
        return self._conditioning(local, speaker, batch)[0]

    def _conditioning(self, local: Tensor | None, speaker: Tensor | None, batch: int) -> tuple[Tensor, Tensor | None]:
        """(gate biases as `conditioning`, the local conditioning network's output [B, hidden, N] or None)."""
        width = self.cfg.layers * self.cfg.gate_channels
        hidden = None
        if self.local_dim > 0:
            if local is None:
                raise ValueError("this WaveNet needs local conditioning [B, local_dim, N]")
            hidden = self.cond_net(local)
            cond = self.cond_proj(hidden)
        else:
            if local is not None:
                raise ValueError("this WaveNet has no local conditioning; pass local=None")
            cond = self.embed.weight.new_zeros(speaker.shape[0] if speaker is not None else batch, width, 1)
        if self.n_speakers > 0:
            if speaker is None:
                raise ValueError("this WaveNet is speaker-conditioned; pass speaker ids [B]")
            cond = cond + self.speaker_proj(self.speaker_embed(speaker))[:, :, None]
        return cond, hidden

    def forward_frames(self, local: Tensor, speaker: Tensor | None = None) -> Tensor:
        """Non-causal mode: local [B, local_dim, N], speaker [B] | None -> outputs [B, out_channels, N * upsample].

        Output t depends on local frames within the receptive field around t // upsample only (and on speaker).
        """
        if self.causal:
            raise ValueError("forward_frames is the non-causal mode; this WaveNet is causal (use forward)")
        cond, hidden = self._conditioning(local, speaker, local.shape[0])
        h = self.inp(hidden)
        if self.upsample > 1:
            h = h.repeat_interleave(self.upsample, dim=2)
        G = self.cfg.gate_channels
        skips = 0
        for i, layer in enumerate(self.layers):
            h, skip, _ = layer.stream(h, cond[:, i * G:(i + 1) * G], None, self.upsample)
            skips = skips + skip
        return self._output(skips)

    def forward(self, x: Tensor, local: Tensor | None = None, speaker: Tensor | None = None) -> Tensor:
        """Teacher-forced logits. x LongTensor [B, T] (x[:, 0] = start_token, x[:, t] = target[:, t-1]),
        local [B, local_dim, >= T // upsample] | None, speaker [B] | None -> logits [B, classes, T].

        Causal: logits[..., t] depends on x[:, :t+1] only (and on all of local, speaker).
        """
        if not self.causal:
            raise ValueError("this WaveNet is non-causal (frame-level); use forward_frames")
        cond = self.conditioning(local, speaker, batch=x.shape[0])
        T = x.shape[1]
        if cond.shape[2] > 1 and cond.shape[2] * self.upsample < T:
            raise ValueError(f"local conditioning covers {cond.shape[2] * self.upsample} samples, input has {T}")
        h = self.embed(x).transpose(1, 2)
        G = self.cfg.gate_channels
        skips = 0
        for i, layer in enumerate(self.layers):
            c = cond[:, i * G:(i + 1) * G]
            h, skip, _ = layer.stream(h, c, layer.dilated.init_state(1), self.upsample if c.shape[2] > 1 else 1)
            skips = skips + skip
        return self._output(skips)

    def _output(self, skips: Tensor) -> Tensor:
        """logits = out2(relu(out1(relu(sum of skips)))), [B, S, T] -> [B, classes, T]."""
        return self.out2(F.relu(self.out1(F.relu(skips))))

    def init_state(self, batch: int) -> list[Tensor]:
        """Generation state: each layer's input buffer [batch, R, (k - 1) * d_l], zeros (silence)."""
        return [layer.dilated.init_state(batch) for layer in self.layers]

    def step(self, x_t: Tensor, cond_t: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One cached step. x_t LongTensor [B] (previous sample, or start_token), cond_t [B, layers * G]
        (the frame of `conditioning()` for this sample), state from `init_state` or the previous step
        -> (logits [B, classes], new state). Equals `forward` to float tolerance.
        """
        h = self.embed(x_t)[:, :, None]
        G = self.cfg.gate_channels
        skips = 0
        new_state = []
        for i, layer in enumerate(self.layers):
            h, skip, s = layer.stream(h, cond_t[:, i * G:(i + 1) * G, None], state[i])
            new_state.append(s)
            skips = skips + skip
        return self._output(skips)[:, :, 0], new_state


def _add_frames(x: Tensor, cond: Tensor, upsample: int) -> Tensor:
    """x [B, G, T] + cond. upsample 1: cond is per sample [B, G, T] or constant [B, G, 1]; upsample > 1:
    cond is per frame [B, G, N] with N * upsample >= T (sample t takes frame t // upsample).

    Frame-rate conditioning is added through a broadcast view [B, G, T / hop, hop] when T is a multiple of
    the hop (the training windows): the gate biases are never repeated to the sample rate in memory.
    """
    if upsample == 1:
        return x + cond
    T = x.shape[2]
    if T % upsample == 0:
        frames = T // upsample
        return (x.view(*x.shape[:2], frames, upsample) + cond[:, :, :frames, None]).view_as(x)
    return x + cond.repeat_interleave(upsample, dim=2)[:, :, :T]


def _check_config(cfg: WaveNetConfig, upsample: int, causal: bool = True, local_dim: int = 0) -> None:
    """Refuse sizes the network cannot be built with, with one clear line."""
    if not causal and (cfg.kernel_size % 2 == 0 or local_dim < 1):
        raise ConfigError(f"a non-causal (vocoder) WaveNet needs an odd kernel_size (got {cfg.kernel_size}) "
                          "and local conditioning")
    if cfg.classes < 2:
        raise ConfigError(f"wavenet classes must be >= 2, got {cfg.classes}")
    if cfg.layers < 1 or cfg.stacks < 1 or cfg.layers % cfg.stacks:
        raise ConfigError(f"wavenet layers ({cfg.layers}) must be a positive multiple of stacks ({cfg.stacks})")
    if cfg.kernel_size < 1:
        raise ConfigError(f"wavenet kernel_size must be >= 1, got {cfg.kernel_size}")
    if cfg.gate_channels < 2 or cfg.gate_channels % 2:
        raise ConfigError(f"wavenet gate_channels must be even (tanh and sigmoid halves), got {cfg.gate_channels}")
    for name in ("residual_channels", "skip_channels"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"wavenet {name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.cond_channels < 0 or cfg.speaker_dim < 0:
        raise ConfigError("wavenet cond_channels and speaker_dim must be >= 0")
    if upsample < 1:
        raise ConfigError(f"wavenet upsample must be >= 1, got {upsample}")
