"""Cached generation: cached logits equal the full forward; the same seed gives the same samples on every path."""

from __future__ import annotations

import pytest
import torch
from helpers.tiny_models import UPSAMPLE, tiny_wavenet

from vqaudio.inference.generate import (
    cached_logits,
    generate,
    resolve_method,
    window_logits,
)
from vqaudio.models.wavenet import WaveNet


def conditioning(net: WaveNet, batch: int, frames: int) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    local = torch.randn(batch, net.local_dim, frames) if net.local_dim else None
    speaker = torch.arange(batch) % net.n_speakers
    with torch.no_grad():
        return local, speaker, net.conditioning(local, speaker, batch=batch)


def teacher_inputs(net: WaveNet, batch: int, T: int) -> torch.Tensor:
    x = torch.randint(0, net.classes, (batch, T), generator=torch.Generator().manual_seed(1))
    x[:, 0] = net.start_token
    return x


@pytest.mark.parametrize("method", ["eager", "numba"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_cached_logits_equal_full_forward(method: str, kernel_size: int) -> None:
    net = tiny_wavenet(kernel_size)
    T = 24 * UPSAMPLE  # longer than the receptive field (1 + (k-1) * 6)
    local, speaker, cond = conditioning(net, 3, T // UPSAMPLE)
    x = teacher_inputs(net, 3, T)
    with torch.no_grad():
        full = net(x, local, speaker)
    cached = cached_logits(net, x, cond, method)
    assert cached.shape == full.shape == (3, 256, T)
    assert full.std() > 0.1  # the comparison is not between near-constant tensors
    torch.testing.assert_close(cached, full, atol=2e-5, rtol=1e-4)


def test_cached_logits_prior_without_local_conditioning() -> None:
    """A prior-like WaveNet (no local conditioning: one cond frame for every step), 32 classes."""
    net = tiny_wavenet(local_dim=0, classes=32)
    _, speaker, cond = conditioning(net, 2, 1)
    assert cond.shape[2] == 1
    x = teacher_inputs(net, 2, 40)
    with torch.no_grad():
        full = net(x, None, speaker)
    torch.testing.assert_close(cached_logits(net, x, cond, "numba"), full, atol=2e-5, rtol=1e-4)


def test_window_logits_match_forward_over_the_receptive_field() -> None:
    """The naive path's per-sample window gives the full forward's last logit."""
    net = tiny_wavenet()
    local, speaker, cond = conditioning(net, 2, 10)
    x = teacher_inputs(net, 2, 40)
    with torch.no_grad():
        full = net(x, local, speaker)
        rf, t = net.receptive_field, 33
        window = window_logits(net, x[:, t - rf + 1:t + 1], cond, t - rf + 1, UPSAMPLE)
    torch.testing.assert_close(window[:, :, -1], full[:, :, t], atol=2e-5, rtol=1e-4)


def test_same_seed_same_samples_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """eager, numba (one and two threads) and naive draw identical sequences from the same seed."""
    monkeypatch.setattr("vqaudio.inference.generate._CHUNK", 128)  # cross chunk boundaries
    net = tiny_wavenet()
    n = 300
    _, _, cond = conditioning(net, 3, n // UPSAMPLE + 1)
    numba1 = generate(net, cond, n, seed=7, method="numba", threads=1)
    numba2 = generate(net, cond, n, seed=7, method="numba", threads=2)
    eager = generate(net, cond, n, seed=7, method="eager")
    naive = generate(net, cond[:, :, :50], 200, seed=7, method="naive")
    assert numba1.shape == (3, n) and numba1.dtype == torch.long
    assert torch.equal(numba1, eager)
    assert torch.equal(numba1, numba2)
    assert torch.equal(naive, numba1[:, :200])
    assert not torch.equal(generate(net, cond, 200, seed=8, method="numba"), numba1[:, :200])
    assert len(set(numba1[0].tolist())) > 20  # a real draw, not a constant


def test_samples_follow_the_logits_they_were_drawn_from() -> None:
    """Temperature 0 is greedy: each sample is the argmax of the logits given the samples before it."""
    net = tiny_wavenet()
    _, _, cond = conditioning(net, 2, 20)
    samples = generate(net, cond, 80, temperature=0.0, seed=0, method="numba")
    x = torch.cat([torch.full((2, 1), net.start_token), samples[:, :-1]], dim=1)
    assert torch.equal(cached_logits(net, x, cond, "numba").argmax(dim=1), samples)


def test_bad_arguments_are_refused() -> None:
    net = tiny_wavenet()
    _, _, cond = conditioning(net, 1, 4)
    with pytest.raises(ValueError, match="unknown generation method"):
        generate(net, cond, 8, method="fast")
    with pytest.raises(ValueError, match="covers 16 samples"):
        generate(net, cond, 17)
    assert resolve_method("auto", torch.device("cpu")) == "numba"
    assert resolve_method("auto", torch.device("cuda")) == "eager"


@pytest.mark.gpu
def test_gpu_eager_path_runs_and_is_reproducible() -> None:
    net = tiny_wavenet().cuda()
    _, _, cond = conditioning(net.cpu(), 4, 30)
    net.cuda()
    a = generate(net, cond.cuda(), 100, seed=3)
    b = generate(net, cond.cuda(), 100, seed=3)
    assert a.device.type == "cuda" and torch.equal(a, b)
