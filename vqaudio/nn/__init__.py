"""Building blocks of the networks: convolutions that know their own input buffer (full and incremental forward
on one code path). May import only torch and the foundations; the models are built from it.
"""

from vqaudio.nn.conv import CausalConv1d, DilatedResidualBlock, same_padding

__all__ = ["CausalConv1d", "DilatedResidualBlock", "same_padding"]
