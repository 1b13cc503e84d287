"""VQVAE: shapes and code rate, loss parts, encode, teacher-forced logits, gradient path, overfitting, sizes."""

from __future__ import annotations

import math

import pytest
import torch

from vqaudio.audio import mu_law_encode
from vqaudio.config import EncoderConfig, ModelConfig, VQConfig, WaveNetConfig
from vqaudio.models import VQVAE, Encoder, VectorQuantizer, WaveNet, build_vqvae, count_parameters


def tiny_cfg(strides: list[int] | None = None, **vq) -> ModelConfig:
    return ModelConfig(
        encoder=EncoderConfig(channels=16, residual_channels=8, strides=strides or [2, 2, 4]),
        vq=VQConfig(codebook_size=32, dim=8, **vq),
        decoder=WaveNetConfig(classes=256, layers=6, stacks=1, residual_channels=16, gate_channels=32,
                              skip_channels=32, cond_channels=16, speaker_dim=4),
    )


def tones(T: int = 512) -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(T) / 16000
    wav = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.sin(2 * math.pi * 1234 * t),
                       0.3 * torch.sin(2 * math.pi * 300 * t)])
    return wav + 0.05 * torch.randn_like(wav)


def test_forward_shapes_and_loss_parts():
    torch.manual_seed(0)
    model = build_vqvae(tiny_cfg(), n_speakers=2)
    assert model.hop_length == 16
    out = model(tones(), torch.tensor([0, 1]))
    assert out.codes.shape == (2, 32) and out.codes.dtype == torch.long
    assert torch.allclose(out.loss, out.nll + out.vq_loss)
    assert abs(out.nll.item() - math.log(256)) < 0.5  # untrained: near uniform over 256 mu-law levels
    assert 1.0 <= out.perplexity.item() <= 32


def test_paper_code_rates():
    cfg = tiny_cfg(strides=[2, 2, 2, 2, 2, 2])
    model = build_vqvae(cfg, n_speakers=1)
    assert model.encode(torch.zeros(1, 4096)).shape == (1, 64)
    cfg = tiny_cfg(strides=[2, 2, 2, 2, 2, 4, 5])
    model = build_vqvae(cfg, n_speakers=1)
    assert model.hop_length == model.decoder.upsample == 640
    out = model(torch.rand(1, 1280) - 0.5, torch.tensor([0]))
    assert out.codes.shape == (1, 2)


def test_encode_is_eval_and_matches_training_codes_without_side_effects():
    torch.manual_seed(0)
    model = build_vqvae(tiny_cfg(ema=True, kmeans_init=False, dead_code_steps=0, jitter=0.5), n_speakers=2)
    wav = tones()
    state = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    codes = model.encode(wav)
    for k, v in model.quantizer.state_dict().items():
        assert torch.equal(v, state[k]), k  # no EMA / usage update
    assert torch.equal(codes, model.encode(wav))  # no jitter
    assert torch.equal(codes, model(wav, torch.tensor([0, 1])).codes)


def test_decoder_logits_teacher_forcing_matches_forward():
    torch.manual_seed(0)
    model = build_vqvae(tiny_cfg(ema=False, kmeans_init=False, dead_code_steps=0), n_speakers=2)
    wav, spk = tones(), torch.tensor([1, 0])
    out = model(wav, spk)
    targets = mu_law_encode(wav)
    logits = model.decoder_logits(out.codes, spk, targets)
    assert logits.shape == (2, 256, 512)
    nll = torch.nn.functional.cross_entropy(logits, targets)
    assert abs(nll.item() - out.nll.item()) < 1e-4
    x = model.shift(targets)
    assert torch.equal(x[:, 0], torch.full((2,), 256)) and torch.equal(x[:, 1:], targets[:, :-1])
    assert model.codes_to_latent(out.codes).shape == (2, 8, 32)


def test_nll_gradient_reaches_the_encoder_straight_through():
    torch.manual_seed(0)
    model = build_vqvae(tiny_cfg(), n_speakers=2)
    model(tones(), torch.tensor([0, 1])).nll.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = build_vqvae(tiny_cfg(), n_speakers=2)
    wav, spk = tones(), torch.tensor([0, 1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(100):
        out = model(wav, spk)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        history.append(out.nll.item())
    assert history[-1] < 0.4 * history[0], history[::10]


def test_parts_must_agree_on_the_hop():
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match="hop"):
        VQVAE(Encoder(cfg.encoder, 8), VectorQuantizer(cfg.vq), WaveNet(cfg.decoder, local_dim=8, upsample=8))


def test_default_model_sizes():
    model = build_vqvae(ModelConfig(), n_speakers=100)
    assert 300_000 < count_parameters(model.encoder) < 800_000
    assert 700_000 < count_parameters(model.decoder) < 1_300_000
    assert len(model.decoder.layers) == 16 and model.decoder.receptive_field == 2 * 255 + 1
