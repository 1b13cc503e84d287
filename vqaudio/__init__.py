"""vqaudio: a VQ-VAE neural audio codec and voice-conversion toolkit.

Implements the audio experiments of "Neural Discrete Representation Learning"
(van den Oord, Vinyals, Kavukcuoglu 2017).
"""

__version__ = "0.1.0"
