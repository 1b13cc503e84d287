"""The frame-level vocoder decoder: the non-causal WaveNet mode, the feature loss and statistics, model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqaudio.config import WaveNetConfig, load_config
from vqaudio.errors import ConfigError
from vqaudio.models import VocoderDecoder, WaveNet, build_vqvae
from vqaudio.models.io import load_model, save_model

WAVENET_KIND = ["model.decoder.kind=wavenet", "model.decoder.kernel_size=2"]


def frame_net(upsample: int = 2, layers: int = 4) -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(layers=layers, stacks=2, kernel_size=3, residual_channels=8, gate_channels=12,
                        skip_channels=10, cond_channels=6, speaker_dim=4)
    return WaveNet(cfg, local_dim=5, n_speakers=3, upsample=upsample, causal=False, out_channels=7).eval()


def test_frame_stack_shapes() -> None:
    net = frame_net(upsample=2)
    out = net.forward_frames(torch.randn(2, 5, 30), torch.tensor([0, 2]))
    assert out.shape == (2, 7, 60)  # 30 code frames, 2 vocoder frames each, 7 outputs
    assert not hasattr(net, "embed")  # no autoregressive input in the non-causal mode
    assert net.layers[1].dilated.padding == (2,)  # 'same' for kernel 3, dilation 2


def test_frame_stack_is_local_and_non_causal() -> None:
    """Output frame t depends on code frames within the receptive field around it, on both sides, and no further."""
    net = frame_net(upsample=1)
    local, spk = torch.randn(1, 5, 80), torch.tensor([1])
    base = net.forward_frames(local, spk)
    reach = (net.receptive_field - 1) // 2 + 2  # the stack's half-width plus the conditioning network's 2 frames
    changed = local.clone()
    changed[:, :, 40] += 3.0
    diff = (net.forward_frames(changed, spk) - base).abs().amax(dim=1)[0]
    moved = torch.nonzero(diff > 1e-6).flatten()
    assert moved.min() < 40 < moved.max()  # frames before and after the change see it: non-causal
    assert moved.min() >= 40 - reach and moved.max() <= 40 + reach


def test_frame_stack_refuses_even_kernel_and_causal_calls() -> None:
    cfg = WaveNetConfig(layers=2, stacks=1, kernel_size=2)
    with pytest.raises(ConfigError, match="odd kernel_size"):
        WaveNet(cfg, local_dim=5, causal=False)
    with pytest.raises(ValueError, match="non-causal"):
        frame_net()(torch.zeros(1, 4, dtype=torch.long), torch.randn(1, 5, 2))


def fake_features(model, frames: int, batch: int = 2) -> torch.Tensor:
    dims = model.decoder.settings.dims
    feats = torch.randn(batch, frames, dims)
    feats[..., -1] = (feats[..., -1] > 0).float()
    return feats


def test_vocoder_vqvae_loss_and_decode_shapes() -> None:
    cfg = load_config("quick")
    model = build_vqvae(cfg.model, 3)
    assert model.kind == "vocoder" and isinstance(model.decoder, VocoderDecoder)
    wav = 0.2 * torch.randn(2, 1024)
    out = model(wav, torch.tensor([0, 2]), fake_features(model, 1024 // 64))
    assert torch.isfinite(out.loss)
    assert set(out.parts) == {"spectral_l1", "aperiodicity_l1", "lf0_l1", "vuv_bce"}
    assert torch.allclose(out.recon, sum(out.parts.values()))
    with pytest.raises(ValueError, match="WORLD features"):
        model(wav, torch.tensor([0, 2]))
    model.eval()
    feats = model.decode_features(model.encode(wav), torch.tensor([0, 1]))
    assert feats.shape == (2, 16, model.decoder.settings.dims)
    assert ((feats[..., -1] >= 0) & (feats[..., -1] <= 1)).all()  # voicing is a probability


def test_spectral_weight_scales_only_the_envelope_term() -> None:
    cfg = load_config("quick", ["model.vocoder.spectral_weight=3"])
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, 3)
    wav = 0.2 * torch.randn(2, 1024)
    feats = fake_features(model, 1024 // 64)
    pred = model.decoder(model.codes_to_latent(model.encode(wav)), torch.tensor([0, 2]))
    loss, parts = model.decoder.loss(pred, feats)
    assert torch.allclose(loss, sum(parts.values()) + 2.0 * parts["spectral_l1"])
    out = model(wav, torch.tensor([0, 2]), feats)
    assert torch.allclose(out.recon, sum(out.parts.values()))  # reported unweighted
    model.decoder.spectral_weight = 1.0
    assert torch.allclose(model.decoder.loss(pred, feats)[0], sum(parts.values()))
    with pytest.raises(ConfigError, match="spectral_weight must be > 0"):
        build_vqvae(load_config("quick", ["model.vocoder.spectral_weight=0"]).model, 3)


def test_lower_code_rate_is_upsampled_to_frames() -> None:
    cfg = load_config("quick", ["model.encoder.strides=[2,2,2,2,2,2,5]"])  # 320 samples per code: 5 frames
    model = build_vqvae(cfg.model, 2).eval()
    assert model.decoder.frames_per_code == 5
    feats = model.decode_features(torch.randint(0, 32, (1, 7)), torch.tensor([1]))
    assert feats.shape[1] == 35
    with pytest.raises(ConfigError, match="must divide"):
        build_vqvae(load_config("quick", ["model.vocoder.frame_samples=100"]).model, 2)


def test_statistics_normalise_targets() -> None:
    model = build_vqvae(load_config("quick").model, 2)
    dec = model.decoder
    s = dec.settings
    rng = np.random.default_rng(0)
    feats = rng.normal(3.0, 2.0, (500, s.dims)).astype(np.float32)
    feats[:, s.vuv_index] = rng.random(500) > 0.3
    feats[:300, s.lf0_index] = np.log(200.0) + 0.1 * rng.standard_normal(300)  # speaker 0 high
    feats[300:, s.lf0_index] = np.log(100.0) + 0.1 * rng.standard_normal(200)  # speaker 1 low
    dec.set_statistics(feats, np.array([300, 200]), np.array([0, 1]), chunk=37)  # in chunks == at once
    chunked = [getattr(dec, b).clone() for b in ("feature_mean", "feature_std", "speaker_lf0")]
    dec.set_statistics(feats, np.array([300, 200]), np.array([0, 1]))
    for a, b in zip(chunked, [dec.feature_mean, dec.feature_std, dec.speaker_lf0], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert np.allclose(dec.feature_mean[:s.spectral_dims], feats[:, :s.spectral_dims].mean(0), atol=1e-4)
    norm = dec.normalize(torch.from_numpy(feats)[None])[0].numpy()
    assert np.allclose(norm[:s.spectral_dims].mean(axis=1), 0, atol=1e-4)
    assert np.allclose(norm[:s.spectral_dims].std(axis=1), 1, atol=1e-3)
    assert set(np.unique(norm[s.vuv_index])) <= {0.0, 1.0}  # voicing is not normalised
    assert abs(dec.speaker_lf0[0, 0] - np.log(200.0)) < 0.05 and abs(dec.speaker_lf0[1, 0] - np.log(100.0)) < 0.05
    pred = dec.normalize(torch.from_numpy(feats)[None])
    pred[:, s.vuv_index] = 20 * (pred[:, s.vuv_index] - 0.5)  # a confident voicing logit
    back = dec.denormalize(pred)[0].numpy()
    assert np.allclose(back[:, :s.vuv_index], feats[:, :s.vuv_index], atol=1e-4)


def test_speaker_global_variance_is_the_mean_of_utterance_variances() -> None:
    dec = build_vqvae(load_config("quick").model, 2).decoder
    s = dec.settings
    rng = np.random.default_rng(2)
    frames = np.array([100, 150, 120])
    feats = rng.normal(0.0, 1.0, (frames.sum(), s.dims)).astype(np.float32)
    feats[:, s.vuv_index] = 1.0
    feats[250:, :s.lf0_index] *= 3.0  # speaker 1's one utterance varies 3x as much
    feats[:50, s.vuv_index] = 0.0  # unvoiced frames do not count
    feats[:50, :s.lf0_index] = 100.0
    dec.set_statistics(feats, frames, np.array([0, 0, 1]))
    v0 = (feats[50:100, :s.lf0_index].var(0) + feats[100:250, :s.lf0_index].var(0)) / 2
    assert np.allclose(dec.speaker_envelope[0, 0].numpy(), v0, rtol=1e-4)
    assert np.allclose(dec.speaker_envelope[1, 0].numpy(), feats[250:, :s.lf0_index].var(0), rtol=1e-4)
    assert torch.all(dec.speaker_envelope[:, 1] == 0)  # the training speakers' bias


def test_model_file_without_envelope_statistics_loads_with_postfilter_off(tmp_path) -> None:
    cfg = load_config("quick", ["model.vocoder.gv_strength=1.0"])
    model = build_vqvae(cfg.model, 2).eval()
    save_model(tmp_path / "m.pt", model, cfg, ["a", "b"])
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    del data["state_dict"]["decoder.speaker_envelope"]  # as written before the buffer existed
    torch.save(data, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert torch.isnan(loaded.model.decoder.speaker_envelope[:, 0]).all()
    assert torch.all(loaded.model.decoder.speaker_envelope[:, 1] == 0)


def test_a_checkpoint_from_before_the_envelope_statistics_keeps_the_fitted_ones() -> None:
    """Resuming: statistics fitted on the data are not replaced by NaN from a state that predates them."""
    model = build_vqvae(load_config("quick").model, 2)
    s = model.decoder.settings
    feats = np.random.default_rng(3).normal(0.0, 1.0, (100, s.dims)).astype(np.float32)
    feats[:, s.vuv_index] = 1.0
    model.decoder.set_statistics(feats, np.array([60, 40]), np.array([0, 1]))
    fitted = model.decoder.speaker_envelope.clone()
    old_state = {k: v for k, v in model.state_dict().items() if not k.endswith("speaker_envelope")}
    model.load_state_dict(old_state)
    assert torch.isfinite(fitted).all() and torch.equal(model.decoder.speaker_envelope, fitted)


def test_model_file_round_trip_keeps_kind_and_statistics(tmp_path) -> None:
    cfg = load_config("quick")
    model = build_vqvae(cfg.model, 2)
    s = model.decoder.settings
    feats = np.random.default_rng(1).normal(1.0, 3.0, (100, s.dims)).astype(np.float32)
    feats[:, s.vuv_index] = 1.0
    model.decoder.set_statistics(feats, np.array([60, 40]), np.array([0, 1]))
    model(0.2 * torch.randn(2, 1024), torch.tensor([0, 1]), fake_features(model, 16))  # k-means init, usage
    model.eval()
    save_model(tmp_path / "m.pt", model, cfg, ["a", "b"])
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.model.kind == "vocoder" and loaded.config.decoder.kind == "vocoder"
    for name in ("feature_mean", "feature_std", "speaker_lf0", "speaker_envelope"):
        torch.testing.assert_close(getattr(loaded.model.decoder, name), getattr(model.decoder, name), rtol=0, atol=0,
                                   equal_nan=True)
    codes = torch.randint(0, 32, (1, 20))
    assert torch.equal(loaded.model.decode_features(codes, torch.tensor([1])),
                       model.decode_features(codes, torch.tensor([1])))
    save_model(tmp_path / "half.pt", model, cfg, ["a", "b"], half=True)  # fp16 weights, fp32 statistics
    half = load_model(tmp_path / "half.pt")
    for name in ("feature_mean", "feature_std", "speaker_lf0", "speaker_envelope"):
        torch.testing.assert_close(getattr(half.model.decoder, name), getattr(model.decoder, name), rtol=0, atol=0,
                                   equal_nan=True)
    with pytest.raises(ConfigError, match="f0_mode"):
        build_vqvae(load_config("quick", ["model.vocoder.f0_mode=guess"]).model, 2)
    with pytest.raises(ConfigError, match="gv_strength"):
        build_vqvae(load_config("quick", ["model.vocoder.gv_strength=1.5"]).model, 2)


def test_wavenet_kind_is_unchanged_by_the_option() -> None:
    model = build_vqvae(load_config("quick", WAVENET_KIND).model, 2)
    assert model.kind == "wavenet" and model.decoder.causal
    out = model(0.2 * torch.randn(2, 1024), torch.tensor([0, 1]))
    assert torch.allclose(out.loss, out.nll + out.vq_loss)


def test_speaker_adversary_reverses_the_encoder_gradient() -> None:
    from vqaudio.models.adversary import reverse_gradient

    x = torch.ones(3, requires_grad=True)
    (2.0 * reverse_gradient(x, 0.5)).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -1.0))
    cfg = load_config("quick", ["model.speaker_adversary=0.3"])
    model = build_vqvae(cfg.model, 3)
    out = model(0.2 * torch.randn(2, 1024), torch.tensor([0, 2]), fake_features(model, 16))
    assert 0.0 <= out.parts["adversary_accuracy"] <= 1.0
    assert torch.allclose(out.loss, out.recon + out.vq_loss + out.parts["adversary_ce"])
    out.loss.backward()
    assert model.adversary.net[0].weight.grad.abs().sum() > 0
    assert not hasattr(build_vqvae(load_config("quick").model, 3), "adversary")
    with pytest.raises(ConfigError, match="speaker_adversary"):
        build_vqvae(load_config("quick", ["model.speaker_adversary=-1"]).model, 3)


def test_utterance_adversary_names_the_speaker_from_pooled_statistics_through_the_reversal() -> None:
    """model.utterance_adversary adds a window-level classifier (statistics pooling): its cross-entropy joins the
    loss, it trains, and the encoder receives its reversed gradient: a step down the encoder's gradient raises
    the window classifier's cross-entropy."""
    from vqaudio.models.adversary import SpeakerAdversary

    cfg = load_config("quick", ["model.utterance_adversary=0.5"])
    model = build_vqvae(cfg.model, 3)
    out = model(0.2 * torch.randn(2, 1024), torch.tensor([0, 2]), fake_features(model, 16))
    assert 0.0 <= out.parts["utterance_adversary_accuracy"] <= 1.0
    assert out.parts["adversary_ce"] > out.parts["utterance_adversary_ce"] > 0
    out.loss.backward()
    assert model.adversary.utterance_out[0].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="utterance_adversary"):
        build_vqvae(load_config("quick", ["model.utterance_adversary=-0.1"]).model, 3)

    torch.manual_seed(0)
    adv = SpeakerAdversary(4, 3, weight=0.0, utterance_weight=2.0)
    z = torch.randn(1, 4, 40, requires_grad=True)
    ce, figures = adv(z, torch.tensor([1]))
    ce.backward()
    frame_only = SpeakerAdversary(4, 3, weight=0.0)
    frame_only.net.load_state_dict(adv.net.state_dict())
    z2 = z.detach().clone().requires_grad_(True)
    frame_only(z2, torch.tensor([1]))[0].backward()
    assert torch.count_nonzero(z2.grad) == 0 and torch.count_nonzero(z.grad) > 0  # only the window's reversal
    with torch.no_grad():  # what the encoder's optimiser does with the reversed gradient
        after = adv(z.detach() - 1e-2 * z.grad / z.grad.norm(), torch.tensor([1]))[1]["utterance_adversary_ce"]
    assert after > figures["utterance_adversary_ce"]


def test_gv_loss_penalises_envelopes_smoother_than_the_target() -> None:
    """gv_loss: zero for the target itself, positive for a smoothed copy, and its gradient widens the copy's spread;
    only voiced frames count; windows with too few voiced frames are left out. In the decoder's loss it joins
    with `gv_weight` and stays out of the unweighted feature loss."""
    from vqaudio.models.vocoder import MIN_VOICED, feature_loss, gv_loss

    torch.manual_seed(0)
    target = torch.randn(2, 3, 60)
    voiced = torch.ones(2, 60)
    voiced[:, 40:] = 0
    assert gv_loss(target, target, voiced) == 0
    smooth = (0.5 * target).requires_grad_(True)
    loss = gv_loss(smooth, target, voiced)
    assert loss > 0.5  # log(4) on every coefficient, less the eps
    loss.backward()
    assert (smooth.grad[..., :40] * smooth.detach()[..., :40]).sum() < 0  # descent widens the spread
    assert torch.count_nonzero(smooth.grad[..., 40:]) == 0  # unvoiced frames do not count
    few = voiced.clone()
    few[1, MIN_VOICED - 1:] = 0
    noisy = target.clone()
    noisy[1] *= 3.0  # the window with too few voiced frames differs a lot, but is left out
    assert gv_loss(noisy, target, few) == 0
    assert gv_loss(noisy, target, torch.zeros(2, 60)) == 0

    model = build_vqvae(load_config("quick", ["model.vocoder.gv_weight=2.0"]).model, 3)
    out = model(0.2 * torch.randn(2, 16000), torch.tensor([0, 2]), fake_features(model, 250))
    assert "gv_log_l1" in out.parts and torch.allclose(out.recon, feature_loss(out.parts))
    plain = load_config("quick").model
    assert "gv_log_l1" not in build_vqvae(plain, 3)(0.2 * torch.randn(2, 16000), torch.tensor([0, 2]),
                                                      fake_features(model, 250)).parts
    with pytest.raises(ConfigError, match="gv_weight"):
        build_vqvae(load_config("quick", ["model.vocoder.gv_weight=-1"]).model, 3)


def test_local_reach_bounds_the_dependence() -> None:
    for upsample in (1, 2, 5):
        net = frame_net(upsample=upsample)
        local, spk = torch.randn(1, 5, 60), torch.tensor([0])
        base = net.forward_frames(local, spk)
        changed = local.clone()
        changed[:, :, 30] += 3.0
        diff = (net.forward_frames(changed, spk) - base).abs().amax(dim=1)[0]
        frames = torch.nonzero(diff > 1e-6).flatten() // upsample  # output steps -> local frames
        assert (frames - 30).abs().max() <= net.local_reach


def test_model_files_leave_the_adversary_out(tmp_path) -> None:
    cfg = load_config("quick", ["model.speaker_adversary=0.3"])
    model = build_vqvae(cfg.model, 2)
    model(0.2 * torch.randn(2, 1024), torch.tensor([0, 1]), fake_features(model, 16))
    model.eval()
    save_model(tmp_path / "m.pt", model, cfg, ["a", "b"])
    loaded = load_model(tmp_path / "m.pt")
    assert not hasattr(loaded.model, "adversary")
    codes = model.encode(0.2 * torch.randn(1, 1024))
    assert torch.equal(loaded.model.decode_features(codes, torch.tensor([0])),
                       model.decode_features(codes, torch.tensor([0])))


def test_phone_head_adds_its_weighted_cross_entropy_and_stays_out_of_model_files(tmp_path) -> None:
    """model.phone_loss: a linear phone classifier on z_e whose cross-entropy (times the weight) joins the loss,
    trained with the encoder; frames labelled -1 do not count; model files leave it out and load without it."""
    cfg = load_config("quick", ["model.phone_loss=0.5"])
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, 3)
    hop, fs = model.hop_length, model.decoder.settings.frame_samples
    wav, speakers = 0.2 * torch.randn(2, 8 * hop), torch.tensor([0, 2])
    phones = torch.randint(0, 41, (2, 8))
    phones[1, 4:] = -1
    out = model(wav, speakers, fake_features(model, 8 * hop // fs), phones=phones)
    assert 0.0 <= out.parts["phone_accuracy"] <= 1.0 and out.parts["phone_ce"] > 0
    assert torch.allclose(out.loss, out.recon + out.vq_loss + 0.5 * out.parts["phone_ce"])
    ce, _ = model.phone_head(model.encoder(wav[:, None, :]), phones)
    ce.backward()  # the head's gradient reaches the encoder (it asks z_e for linearly readable phones)
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in model.encoder.parameters())
    unlabelled, _ = model.phone_head(model.encoder(wav[:, None, :]), torch.full((2, 8), -1))
    assert float(unlabelled.detach()) == 0.0
    assert not hasattr(build_vqvae(load_config("quick").model, 3), "phone_head")
    assert not hasattr(build_vqvae(cfg.model, 3, training=False), "phone_head")
    with pytest.raises(ConfigError, match="phone_loss"):
        build_vqvae(load_config("quick", ["model.phone_loss=-1"]).model, 3)
    save_model(tmp_path / "m.pt", model, cfg.model, ["a", "b", "c"])
    loaded = load_model(tmp_path / "m.pt")
    assert not hasattr(loaded.model, "phone_head") and loaded.config.phone_loss == 0.5
