"""CausalConv1d: one code path for full and chunked/incremental forward, causality; residual blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqaudio.nn import CausalConv1d, DilatedResidualBlock, same_padding


@pytest.mark.parametrize("kernel_size,dilation", [(1, 1), (2, 1), (2, 4), (3, 2)])
def test_streamed_chunks_equal_full_forward(kernel_size, dilation):
    torch.manual_seed(0)
    conv = CausalConv1d(3, 5, kernel_size, dilation=dilation)
    x = torch.randn(2, 3, 50)
    full = conv(x)
    state, outs = conv.init_state(2), []
    for chunk in torch.split(x, [1, 7, 1, 13, 28], dim=2):
        y, state = conv.stream(chunk, state)
        outs.append(y)
    assert full.shape == (2, 5, 50)
    assert state.shape == (2, 3, conv.context)
    assert (torch.cat(outs, dim=2) - full).abs().max() < 1e-5


def test_full_forward_equals_left_padded_conv1d():
    torch.manual_seed(0)
    conv = CausalConv1d(4, 6, 3, dilation=2)
    ref = nn.Conv1d(4, 6, 3, dilation=2)
    ref.load_state_dict(conv.state_dict())  # same weight layout as nn.Conv1d
    x = torch.randn(1, 4, 30)
    expected = ref(torch.nn.functional.pad(x, (4, 0)))
    assert (conv(x) - expected).abs().max() < 1e-6


def test_causal_conv_is_causal():
    torch.manual_seed(0)
    conv = CausalConv1d(2, 2, 3, dilation=3)
    x = torch.randn(1, 2, 40)
    x2 = x.clone()
    x2[..., 21:] += 1.0
    y, y2 = conv(x), conv(x2)
    assert torch.equal(y[..., :21], y2[..., :21])
    assert not torch.allclose(y[..., 21:], y2[..., 21:])


def test_residual_block_keeps_shape_and_is_non_causal():
    torch.manual_seed(0)
    block = DilatedResidualBlock(8, 4, kernel_size=3, dilation=3)
    x = torch.randn(2, 8, 30)
    y = block(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[..., 20] += 1.0
    assert not torch.allclose(block(x2)[..., 17], y[..., 17])  # sees 3 frames into the future


def test_same_padding_refuses_even_kernels():
    assert same_padding(3, 4) == 4
    with pytest.raises(ValueError):
        same_padding(4)
