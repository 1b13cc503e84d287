"""The compiled loop's kernels: the sampler, the vectorised exp, the fused weight layout."""

from __future__ import annotations

import numpy as np
import torch
from helpers.tiny_models import tiny_wavenet

from vqaudio.inference.generate import sample_torch
from vqaudio.inference.numba_loop import _exp_inplace, extract_weights, sample_rows


def test_sampler_matches_softmax_with_temperature() -> None:
    logits = np.array([2.0, 0.0, -1.0, 1.0], np.float32)
    u = np.random.default_rng(0).random(20000)
    out, e, bits = np.empty(len(u), np.int64), np.empty(4, np.float32), np.empty(4, np.int32)
    for temperature in (1.0, 0.5):
        rows = np.ascontiguousarray(np.repeat(logits[None], len(u), axis=0))
        sample_rows(rows, u, temperature, out, e, bits)
        p = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
        freq = np.bincount(out, minlength=4) / len(u)
        assert np.abs(freq - p).max() < 0.015, (temperature, freq, p)
        # the device sampler implements the same inverse CDF
        dev = sample_torch(torch.from_numpy(rows), torch.from_numpy(u), temperature)
        assert (dev.numpy() == out).mean() > 0.999


def test_vectorised_exp_is_accurate() -> None:
    x = np.linspace(-80, 80, 100001).astype(np.float32)
    v, bits = x.copy(), np.empty(len(x), np.int32)
    _exp_inplace(v, bits)
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(v - ref) / ref) < 2e-7


def test_extracted_weights_fuse_the_taps() -> None:
    net = tiny_wavenet(kernel_size=3)
    w = extract_weights(net)
    assert w.dilated_w.shape == (4, 32, 3 * 16)
    assert w.res_skip_w.shape == (4, 16 + 24, 16 + 1)  # bias as the last column
    assert list(w.buffer_sizes) == [3, 5, 3, 5]  # d * (k - 1) + 1 for dilations 1, 2, 1, 2
    torch.testing.assert_close(torch.from_numpy(w.dilated_w[1, :, 16:32]), net.layers[1].dilated.weight[:, :, 1])
