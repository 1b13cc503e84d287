"""Neural-network building blocks shared by the models."""

from vqaudio.nn.conv import CausalConv1d, DilatedResidualBlock, same_padding

__all__ = ["CausalConv1d", "DilatedResidualBlock", "same_padding"]
