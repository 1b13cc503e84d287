"""Inference: what runs a trained model. The codec library (`codec`: encode, decode, convert), codes files
(`codes`), the file-level commands (`files`: encode/decode/convert files, .vqc compression), WORLD synthesis of the
vocoder decoder's output (`vocode`), fast sample-level generation (`generate`, the compiled loop `numba_loop`), the
latent prior's files and code sets (`prior`), ancestral sampling (`sampling`) and the `.vqc` bitstream
(`bitstream`: arithmetic coding under the prior).

May import models, nn, data and the foundations; never training, evaluate or cli (they use it).
"""
