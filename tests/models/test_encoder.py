"""Encoder: exact code rate for the 64x and 640x settings, refusals, size of the default."""

from __future__ import annotations

import pytest
import torch

from vqaudio.config import EncoderConfig
from vqaudio.errors import ConfigError
from vqaudio.models import Encoder, count_parameters
from vqaudio.models.encoder import ChannelNorm, SlidingNorm, StridedConv
from vqaudio.nn.conv import DilatedResidualBlock


def test_paper_setting_gives_64x_downsampling():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(channels=16, residual_channels=8), dim=6)
    assert enc.hop_length == 64
    z = enc(torch.randn(2, 1, 4096))
    assert z.shape == (2, 6, 64)  # 250 codes/s at 16 kHz


def test_phoneme_setting_gives_640x_downsampling():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(channels=8, residual_channels=4, strides=[2, 2, 2, 2, 2, 4, 5]), dim=3)
    assert enc.hop_length == 640
    assert enc(torch.randn(1, 1, 6400)).shape == (1, 3, 10)  # 25 codes/s at 16 kHz


def test_each_code_is_local_in_time():
    torch.manual_seed(0)
    # eval mode: in training the batch norm's statistics couple all frames of the batch
    enc = Encoder(EncoderConfig(channels=8, residual_channels=4, strides=[2, 2], dilations=[1]), dim=3).eval()
    x = torch.randn(1, 1, 400)
    x2 = x.clone()
    x2[..., 390:] += 1.0
    z, z2 = enc(x), enc(x2)
    assert torch.equal(z[..., :80], z2[..., :80])  # finite receptive field
    assert not torch.allclose(z[..., -1], z2[..., -1])


def test_length_not_a_multiple_of_the_hop_is_refused():
    enc = Encoder(EncoderConfig(channels=4, residual_channels=2, strides=[2, 2]), dim=2)
    with pytest.raises(ValueError, match="multiple"):
        enc(torch.randn(1, 1, 10))


def test_channel_norm_is_layer_norm_over_channels():
    torch.manual_seed(0)
    norm = ChannelNorm(6)
    with torch.no_grad():
        norm.norm.weight.uniform_(0.5, 2.0)
        norm.norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3, 6, 50) * 4.0 + 2.0
    expected = torch.nn.functional.layer_norm(x.transpose(1, 2), (6,), norm.norm.weight, norm.norm.bias,
                                              norm.norm.eps).transpose(1, 2)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


def test_stage_widths_follow_stage_channels():
    """The mini encoder's shape: three stride-4 stages of growing width, residual blocks `residual_channels` wide."""
    torch.manual_seed(0)
    cfg = EncoderConfig(stage_channels=[4, 8, 16], strides=[4, 4, 4], kernel_size=8, residual_channels=3)
    enc = Encoder(cfg, dim=3)
    convs = [m.conv for m in enc.modules() if isinstance(m, StridedConv)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8), (8, 16)]
    blocks = [b for b in enc.modules() if isinstance(b, DilatedResidualBlock)]
    widths = [(b.dilated.in_channels, b.dilated.out_channels) for b in blocks]
    assert widths == [(4, 3)] * 2 + [(8, 3)] * 2 + [(16, 3)] * 2
    assert enc.hop_length == 64 and enc(torch.randn(2, 1, 640)).shape == (2, 3, 10)
    # without stage_channels every stage has `channels`
    same = Encoder(EncoderConfig(channels=5, strides=[2, 2], residual_channels=2), dim=3)
    assert [m.conv.out_channels for m in same.modules() if isinstance(m, StridedConv)] == [5, 5]


@pytest.mark.parametrize("bad", [dict(strides=[]), dict(strides=[2, 0]), dict(residual_kernel_size=4),
                                 dict(output_norm="layer"), dict(stage_channels=[8, 8]),
                                 dict(output_norm="sliding", norm_frames=10), dict(norm_frames=0),
                                 dict(stage_channels=[8, 8, 0, 8, 8, 8])])
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError):
        Encoder(EncoderConfig(**bad), dim=4)


def test_default_encoder_is_about_half_a_million_parameters():
    n = count_parameters(Encoder(EncoderConfig(), dim=64))
    assert 300_000 < n < 800_000, n


def test_latents_vary_across_frames_at_initialisation():
    """Regression: with PyTorch's default init z_e was a near-constant bias vector (std/mean ~0.002), so every
    frame took the same code and training collapsed. Speech-like input must give frame-to-frame variation."""
    import numpy as np

    from vqaudio.config import EncoderConfig

    torch.manual_seed(0)
    t = np.arange(16384) / 16000
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.5 * t)  # a gliding voiced signal at speech level (rms ~0.07)
    wav = 0.1 * np.sin(2 * np.pi * np.cumsum(f0) / 16000) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    enc = Encoder(EncoderConfig(), 64)
    with torch.no_grad():
        z = enc(torch.tensor(wav, dtype=torch.float32)[None, None])
    flat = z[0].T
    ratio = flat.std(0).mean() / flat.mean(0).norm()
    assert ratio > 0.02, f"encoder output nearly constant across frames (std/mean {ratio:.4f})"


def test_batch_norm_keeps_latents_standardised_whatever_the_encoder_does():
    """Training mode: z_e has zero mean and unit variance per channel over the batch's frames, even when the
    encoder before it has shrunk its output to a tight cluster around a large offset (the collapse seen in
    mini training without it); eval mode applies the running statistics: no coupling between utterances."""
    from vqaudio.config import EncoderConfig

    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(channels=16, residual_channels=8), dim=8)
    with torch.no_grad():
        enc.proj.weight.mul_(0.1)  # small frame-to-frame variation ...
        enc.proj.bias.fill_(5.0)  # ... around a large common offset
    wav = 0.1 * torch.randn(4, 1, 64 * 32)
    z = enc(wav).transpose(1, 2).reshape(-1, 8)
    assert torch.allclose(z.mean(0), torch.zeros(8), atol=1e-3)
    assert torch.allclose(z.std(0), torch.ones(8), atol=0.02)
    enc.eval()
    with torch.no_grad():
        batch = enc(wav)
        one_by_one = torch.cat([enc(wav[i:i + 1]) for i in range(4)])
    assert batch.shape == (4, 8, 32) and (batch - one_by_one).abs().max() < 1e-4
    assert isinstance(Encoder(EncoderConfig(output_norm="none"), dim=8).norm, torch.nn.Identity)


def test_sliding_norm_standardises_each_frame_over_its_window():
    """Each output frame is its channel's value standardised by the mean and variance of the frames within
    half a window of it, the window cut at the ends (brute force beside the pooled version)."""
    torch.manual_seed(0)
    x = 3.0 * torch.randn(2, 4, 40) + 100.0  # a large offset: float32 moments would lose the spread
    y = SlidingNorm(7)(x)
    for t in (0, 1, 3, 20, 38, 39):
        w = x[:, :, max(0, t - 3):t + 4].double()
        ref = (x[:, :, t].double() - w.mean(-1)) / torch.sqrt(w.var(-1, unbiased=False) + 1e-5)
        torch.testing.assert_close(y[:, :, t].double(), ref, atol=1e-5, rtol=1e-5)


def test_sliding_norm_strips_what_is_constant_over_an_utterance():
    """An utterance-wide offset and gain per channel (a speaker's or a microphone's, in latent terms) leave
    the output unchanged; a change more than half a window away does not reach a frame, a nearer one does;
    an utterance shorter than the window is normalised as a whole (zero mean, unit variance per channel)."""
    torch.manual_seed(0)
    norm = SlidingNorm(9)
    x = torch.randn(1, 3, 50)
    shifted = x * torch.tensor([2.0, 0.5, 3.0])[:, None] + torch.tensor([5.0, -1.0, 0.3])[:, None]
    torch.testing.assert_close(norm(shifted), norm(x), atol=1e-4, rtol=1e-4)
    far = x.clone()
    far[..., 30:] += 1.0
    assert torch.equal(norm(x)[..., :26], norm(far)[..., :26])
    assert not torch.allclose(norm(x)[..., 26], norm(far)[..., 26])
    short = norm(torch.randn(1, 3, 4) + 7.0)
    torch.testing.assert_close(short.mean(-1), torch.zeros(1, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(short.var(-1, unbiased=False), torch.ones(1, 3), atol=1e-3, rtol=0)
    enc = Encoder(EncoderConfig(channels=8, residual_channels=4, strides=[2, 2], output_norm="sliding",
                                norm_frames=5), dim=3)
    assert isinstance(enc.norm, SlidingNorm) and enc.norm.frames == 5 and not list(enc.norm.parameters())


def test_sliding_mean_removes_the_windows_mean_and_keeps_the_spread_to_the_batch_norm():
    """norm_vars=False subtracts the window's mean only (an utterance-wide offset goes, a gain stays);
    output_norm "sliding-mean" follows it with the batch norm, so the latents are still standardised."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 50)
    mean_only = SlidingNorm(9, norm_vars=False)
    torch.testing.assert_close(mean_only(x + torch.tensor([5.0, -1.0, 0.3])[:, None]), mean_only(x),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mean_only(2.0 * x), 2.0 * mean_only(x))
    enc = Encoder(EncoderConfig(channels=8, residual_channels=4, strides=[2, 2], output_norm="sliding-mean",
                                norm_frames=5), dim=3)
    assert isinstance(enc.norm[0], SlidingNorm) and not enc.norm[0].norm_vars
    z = enc(torch.randn(4, 1, 400)).transpose(1, 2).reshape(-1, 3)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=0.02, rtol=0)
