"""VectorQuantizer: assignment, straight-through, losses, each option, usage window, state round trip."""

from __future__ import annotations

import itertools

import pytest
import torch

from vqaudio.config import EncoderConfig, ModelConfig, VQConfig, WaveNetConfig
from vqaudio.errors import ConfigError
from vqaudio.models import VQVAE, VectorQuantizer, build_vqvae
from vqaudio.models.vq import kmeans, time_jitter


def tiny_vqvae(vq: VQConfig) -> VQVAE:
    """Hop 16, a 4-layer WaveNet: milliseconds per step."""
    cfg = ModelConfig(encoder=EncoderConfig(channels=8, residual_channels=4, strides=[2, 2, 4]), vq=vq,
                      decoder=WaveNetConfig(classes=256, layers=4, stacks=1, residual_channels=8, gate_channels=8,
                                            skip_channels=8, cond_channels=8, speaker_dim=4))
    return build_vqvae(cfg, n_speakers=2)


def plain(**kw) -> VQConfig:
    """All options off."""
    base = dict(codebook_size=8, dim=4, ema=False, kmeans_init=False, dead_code_steps=0, jitter=0.0)
    base.update(kw)
    return VQConfig(**base)


def test_codes_are_nearest_and_gradient_is_copied_straight_through():
    torch.manual_seed(0)
    vq = VectorQuantizer(plain())
    z = torch.randn(2, 4, 10, requires_grad=True)
    out = vq(z)
    flat = z.detach().transpose(1, 2).reshape(-1, 4)
    brute = ((flat[:, None] - vq.codebook.detach()[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(out.codes.reshape(-1), brute)
    assert torch.allclose(out.z_q, vq.lookup(out.codes), atol=1e-6)
    upstream = torch.randn_like(out.z_q)
    (out.z_q * upstream).sum().backward()
    assert torch.allclose(z.grad, upstream)


def test_losses_follow_eq3():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 10)
    vq = VectorQuantizer(plain(beta=0.25))
    out = vq(z)
    mse = ((z - vq.lookup(out.codes).detach()) ** 2).mean()
    assert torch.allclose(out.commitment, mse)
    assert torch.allclose(out.loss, 1.25 * mse)  # codebook term + 0.25 * commitment, equal in value
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    ema = VectorQuantizer(plain(ema=True, beta=0.25))
    out = ema(z)
    assert torch.allclose(out.loss, 0.25 * out.commitment)  # EMA mode drops the codebook term
    assert "codebook" in dict(ema.named_buffers())


def test_ema_moves_codes_towards_their_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(plain(ema=True, ema_decay=0.9))
    z = torch.randn(4, 4, 32) + 3.0
    first = vq(z).commitment.item()
    for _ in range(30):
        last = vq(z).commitment.item()
    assert last < 0.5 * first


def test_kmeans_init_places_codes_on_the_data():
    torch.manual_seed(0)
    means = torch.randn(8, 4) * 5
    points = means.repeat_interleave(25, 0) + 0.05 * torch.randn(200, 4)
    for seeding in ("kmeans++", "random"):
        vq = VectorQuantizer(plain(kmeans_init=True, kmeans_seeding=seeding, kmeans_iters=10))
        assert not vq.initialised
        before = torch.cdist(points, vq.codebook.detach()).min(1).values.mean()
        vq(points.T.reshape(1, 4, 200))
        assert vq.initialised
        after = torch.cdist(points, vq.codebook.detach()).min(1).values.mean()
        assert after < 0.5 * before
        assign = torch.cdist(points, vq.codebook.detach()).argmin(1)
        for k in assign.unique():  # a Lloyd fixed point: each used code is the mean of its points
            assert torch.allclose(vq.codebook[k], points[assign == k].mean(0), atol=1e-4)
        if seeding == "kmeans++":  # well-separated clusters: one code on each
            assert torch.cdist(vq.codebook.detach(), means).min(1).values.max() < 0.1
            assert torch.cdist(means, vq.codebook.detach()).min(1).values.max() < 0.1
    centres, sizes = kmeans(points, 8, 10, "kmeans++")
    assert torch.cdist(means, centres).min(1).values.max() < 0.1
    assert sizes.sum() == 200


def test_dead_code_restart_revives_a_collapsed_codebook():
    torch.manual_seed(0)
    results = {}
    for steps in (0, 5):
        vq = VectorQuantizer(plain(codebook_size=32, ema=True, dead_code_steps=steps, usage_window=5))
        vq.codebook.fill_(10.0)  # collapsed: all codes equal and far from the data
        vq.ema_sum.fill_(10.0)
        for _ in range(40):
            vq(torch.randn(4, 4, 64))
        results[steps] = vq.usage()[1]
    assert results[0] == 1 / 32
    assert results[5] > 0.8


def test_usage_reports_the_last_window_of_steps():
    vq = VectorQuantizer(plain(usage_window=3))
    cb = vq.codebook.detach()
    set_a, set_b = cb[:6].T[None], cb[6:].T[None]  # [1, D, n] exactly on codes 0-5, then 6-7
    assert vq.usage() == (0.0, 0.0)
    for _ in range(5):
        vq(set_a)
    assert vq.usage()[1] == pytest.approx(6 / 8)
    assert vq.usage()[0] == pytest.approx(6.0, rel=1e-5)
    for _ in range(3):
        vq(set_b)
    assert vq.usage() == pytest.approx((2.0, 2 / 8))
    vq.eval()
    vq(set_a)  # evaluation leaves the statistics alone
    assert vq.usage() == pytest.approx((2.0, 2 / 8))


def test_time_jitter_replaces_frames_by_neighbours():
    torch.manual_seed(0)
    z = torch.arange(2000.0).view(1, 1, 2000)
    assert torch.equal(time_jitter(z, 0.0), z)
    moved = time_jitter(z, 0.5) - z
    assert set(moved.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert 0.44 < (moved != 0).float().mean() < 0.56
    assert 0.4 < (moved == -1).float().sum() / (moved != 0).float().sum() < 0.6
    vq = VectorQuantizer(plain(jitter=1.0))
    zz = torch.randn(1, 4, 50)
    vq.eval()
    assert torch.allclose(vq(zz).z_q, vq.lookup(vq.quantize(zz)), atol=1e-6)  # no jitter in eval


def test_state_dict_round_trip_keeps_codebook_and_usage():
    torch.manual_seed(0)
    cfg = plain(ema=True, kmeans_init=True, dead_code_steps=3, usage_window=4)
    vq = VectorQuantizer(cfg)
    for _ in range(6):
        vq(torch.randn(2, 4, 16))
    other = VectorQuantizer(cfg)
    other.load_state_dict(vq.state_dict())
    for name in ("codebook", "ema_count", "ema_sum", "usage_counts", "last_used", "steps", "initialised"):
        assert torch.equal(getattr(other, name), getattr(vq, name)), name
    assert other.usage() == vq.usage() != (0.0, 0.0)
    assert bool(other.initialised)


@pytest.mark.parametrize("bad", [
    dict(jitter=1.5), dict(jitter=-0.1), dict(codebook_size=1), dict(kmeans_seeding="foo"),
    dict(ema=True, ema_decay=1.0), dict(usage_window=0), dict(dead_code_steps=-1), dict(ema=True, beta=0.0),
])
def test_invalid_options_are_refused(bad):
    with pytest.raises(ConfigError, match="model.vq"):
        VectorQuantizer(plain(**bad))


@pytest.mark.parametrize("ema,kmeans_init,dead,jitter", list(itertools.product([False, True], [False, True],
                                                                                [0, 5], [0.0, 0.5])))
def test_every_option_combination_trains_without_nan(ema, kmeans_init, dead, jitter):
    torch.manual_seed(0)
    model = tiny_vqvae(VQConfig(codebook_size=16, dim=4, ema=ema, kmeans_init=kmeans_init,
                                dead_code_steps=dead, jitter=jitter, kmeans_iters=3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    wav = torch.sin(torch.linspace(0, 60, 256)).repeat(2, 1) * 0.5
    speaker = torch.tensor([0, 1])
    for _ in range(20):
        out = model(wav, speaker)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model.quantizer.codebook).all()
    assert model.quantizer.usage()[1] > 0


_DDP_WORKER = """
import sys, torch, torch.distributed as dist
from vqaudio.config import VQConfig
from vqaudio.models import VectorQuantizer
rank, init_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=2)
torch.manual_seed(0)
vq = VectorQuantizer(VQConfig(codebook_size=16, dim=4, ema=True, kmeans_init=True, dead_code_steps=2,
                              usage_window=4, kmeans_iters=3))
torch.manual_seed(100 + rank)  # different data and random draws on each rank
for _ in range(6):
    vq(torch.randn(2, 4, 8) + rank)
torch.save(vq.state_dict(), out)
dist.destroy_process_group()
"""


def test_distributed_replicas_stay_identical(tmp_path):
    import subprocess
    import sys

    outs = [tmp_path / f"rank{r}.pt" for r in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _DDP_WORKER, str(r), str(tmp_path / "init"), str(outs[r])])
             for r in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    a, b = (torch.load(o, weights_only=True) for o in outs)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert int(a["steps"]) == 6 and bool(a["initialised"])
