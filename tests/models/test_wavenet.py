"""WaveNet: shapes, causality, cached incremental step == full forward, parameter layout."""

from __future__ import annotations

import pytest
import torch

from vqaudio.config import WaveNetConfig
from vqaudio.errors import ConfigError
from vqaudio.models import WaveNet


def tiny_cfg(kernel_size: int = 2, **kw) -> WaveNetConfig:
    base = dict(classes=16, layers=6, stacks=2, kernel_size=kernel_size, residual_channels=8, gate_channels=12,
                skip_channels=10, cond_channels=6, speaker_dim=4)
    base.update(kw)
    return WaveNetConfig(**base)


def test_forward_shape_and_dilations():
    torch.manual_seed(0)
    net = WaveNet(tiny_cfg(), local_dim=5, n_speakers=3, upsample=4)
    x = torch.randint(0, 17, (2, 40))
    logits = net(x, torch.randn(2, 5, 10), torch.tensor([0, 2]))
    assert logits.shape == (2, 16, 40)
    assert net.dilations == [1, 2, 4, 1, 2, 4]
    assert net.receptive_field == 1 + 14
    assert net.conditioning(torch.randn(2, 5, 10), torch.tensor([0, 2])).shape == (2, 6 * 12, 10)


def test_parameter_layout_matches_contract():
    net = WaveNet(tiny_cfg(kernel_size=3), local_dim=5, n_speakers=3, upsample=4)
    assert net.embed.weight.shape == (17, 8)  # classes + 1 rows: the start token
    assert net.start_token == 16
    assert net.layers[1].dilated.weight.shape == (12, 8, 3)
    assert net.layers[1].dilated.dilation == (2,)
    assert net.layers[1].dilated.bias.shape == (12,)
    assert net.layers[0].res_skip.weight.shape == (8 + 10, 6, 1)
    assert net.out1.weight.shape == (10, 10, 1)
    assert net.out2.weight.shape == (16, 10, 1)


def test_decoder_is_causal():
    torch.manual_seed(0)
    net = WaveNet(tiny_cfg(kernel_size=3), local_dim=5, n_speakers=3, upsample=4)
    x = torch.randint(0, 16, (1, 48))
    local, spk = torch.randn(1, 5, 12), torch.tensor([1])
    before = net(x, local, spk)
    t = 20
    x2 = x.clone()
    x2[:, t + 1:] = (x2[:, t + 1:] + 5) % 16
    after = net(x2, local, spk)
    assert torch.equal(before[..., :t + 1], after[..., :t + 1])
    assert not torch.allclose(before[..., t + 1:], after[..., t + 1:])


def _incremental(net: WaveNet, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    state = net.init_state(x.shape[0])
    out = []
    for t in range(x.shape[1]):
        frame = cond[:, :, min(t // net.upsample, cond.shape[2] - 1)]
        logits, state = net.step(x[:, t], frame, state)
        out.append(logits)
    return torch.stack(out, dim=2)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_incremental_step_equals_full_forward(kernel_size):
    torch.manual_seed(1)
    net = WaveNet(tiny_cfg(kernel_size=kernel_size, layers=8, stacks=2), local_dim=5, n_speakers=3,
                  upsample=8).eval()
    T = 320
    x = torch.randint(0, 17, (2, T))
    local, spk = torch.randn(2, 5, T // 8), torch.tensor([2, 0])
    with torch.no_grad():
        full = net(x, local, spk)
        inc = _incremental(net, x, net.conditioning(local, spk))
    assert (full - inc).abs().max() < 1e-4


@pytest.mark.parametrize("T", [320, 317, 8])
def test_forward_matches_step_when_window_is_not_a_multiple_of_the_hop(T):
    # T = 320: frame-rate conditioning added through the broadcast view; 317 and 8: through repetition,
    # 8 with as many samples as frames (the frame rate must not be mistaken for the sample rate)
    torch.manual_seed(3)
    net = WaveNet(tiny_cfg(), local_dim=5, n_speakers=3, upsample=8).eval()
    x = torch.randint(0, 17, (2, T))
    local, spk = torch.randn(2, 5, max(T // 8 + 1, 8)), torch.tensor([1, 2])
    with torch.no_grad():
        full = net(x, local, spk)
        inc = _incremental(net, x, net.conditioning(local, spk))
    assert (full - inc).abs().max() < 1e-4


def test_unconditioned_wavenet_steps_like_forward():
    torch.manual_seed(2)
    net = WaveNet(tiny_cfg(cond_channels=0, speaker_dim=0)).eval()
    x = torch.randint(0, 17, (3, 60))
    with torch.no_grad():
        full = net(x, None, None)
        cond = net.conditioning(None, None, batch=3)
        assert cond.shape == (3, 6 * 12, 1)
        inc = _incremental(net, x, cond)
    assert (full - inc).abs().max() < 1e-4


def test_speaker_conditioning_changes_output():
    torch.manual_seed(3)
    net = WaveNet(tiny_cfg(cond_channels=0), n_speakers=4)
    x = torch.randint(0, 17, (1, 30))
    assert not torch.allclose(net(x, None, torch.tensor([0])), net(x, None, torch.tensor([3])))


def test_missing_conditioning_is_refused():
    net = WaveNet(tiny_cfg(), local_dim=5, n_speakers=3, upsample=4)
    with pytest.raises(ValueError):
        net(torch.zeros(1, 8, dtype=torch.long), None, torch.tensor([0]))
    with pytest.raises(ValueError, match="covers"):
        net(torch.zeros(1, 40, dtype=torch.long), torch.randn(1, 5, 2), torch.tensor([0]))


@pytest.mark.parametrize("bad", [dict(layers=7, stacks=2), dict(gate_channels=7), dict(classes=1)])
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError):
        WaveNet(tiny_cfg(**bad))
