"""The compiled CPU loop of WaveNet generation (numba): the weights in its layout, the kernels, `NumbaGenerator`.

Each layer's k dilated taps are fused into one matrix product (weight [G, k*R] times the stacked buffer
columns [k*R, B]), the per-sample loop runs compiled, and the B columns (utterances, or segments of one
utterance) share every matrix product. The per-layer state is a ring buffer of past inputs (Fast WaveNet,
Paine et al. 2016). `vqaudio.inference.generate` drives it (threads, progress, sampling uniforms); the layout of the
parameters it reads is in docs/DESIGN.md ("Models").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from vqaudio.models.prior import LatentPrior


@dataclass
class WaveNetWeights:
    """A WaveNet's parameters as float32 contiguous arrays, in the layout the compiled loop reads.

    Shapes: C classes, R residual, G gate, S skip channels, L layers, k kernel size. Biases of the 1x1
    products ride in the matrices as a last column (the loop appends a row of ones to their inputs), so
    the per-element loops are flat and vectorise.
    `dilated_w` [L, G, k*R]: column block j holds tap j (lag (k-1-j) * d_l samples) of layer l.
    """

    embed: np.ndarray  # [C + 1, R]; row C is the start token
    dilated_w: np.ndarray  # [L, G, k*R]
    dilated_b: np.ndarray  # [L, G] (folded into the conditioning, which is added at the same place)
    res_skip_w: np.ndarray  # [L, R + S, G/2 + 1], bias last
    out1_w: np.ndarray  # [S, S + 1], bias last
    out2_w: np.ndarray  # [C, S + 1], bias last
    dilations: np.ndarray  # [L] int64
    kernel_size: int

    @property
    def buffer_sizes(self) -> np.ndarray:
        """Ring-buffer slots per layer: dilation * (k - 1) + 1 (the taps' span, current sample included)."""
        return self.dilations * (self.kernel_size - 1) + 1


def _f32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def _with_bias(conv: torch.nn.Module) -> np.ndarray:
    """1x1 conv weight [out, in, 1] and bias [out] -> [out, in + 1]."""
    return np.ascontiguousarray(np.concatenate([_f32(conv.weight[:, :, 0]), _f32(conv.bias)[:, None]], axis=1))


def extract_weights(wavenet: torch.nn.Module) -> WaveNetWeights:
    """Read a `vqaudio.models.wavenet.WaveNet` (layout of docs/DESIGN.md, "Models") into `WaveNetWeights`."""
    layers = list(wavenet.layers)
    k = int(layers[0].dilated.kernel_size[0])
    dilated_w = [_f32(lay.dilated.weight.permute(0, 2, 1).reshape(lay.dilated.weight.shape[0], -1)) for lay in layers]
    return WaveNetWeights(
        embed=_f32(wavenet.embed.weight),
        dilated_w=np.ascontiguousarray(np.stack(dilated_w)),
        dilated_b=np.stack([_f32(lay.dilated.bias) for lay in layers]),
        res_skip_w=np.ascontiguousarray(np.stack([_with_bias(lay.res_skip) for lay in layers])),
        out1_w=_with_bias(wavenet.out1),
        out2_w=_with_bias(wavenet.out2),
        dilations=np.array([int(lay.dilated.dilation[0]) for lay in layers], dtype=np.int64),
        kernel_size=k,
    )


# --------------------------------------------------------------------------- elementwise kernels


@njit(cache=True, fastmath=False, error_model="numpy")
def _exp_inplace(v: np.ndarray, bits: np.ndarray) -> None:
    """v[:] = exp(v) for float32 [M], branch-free so that LLVM vectorises it (libm's expf does not).

    Cephes expf: exp(x) = 2^n * p(r), r = x - n ln 2, |r| <= ln2 / 2, degree-7 polynomial; relative error
    < 1e-7 over [-87, 87] (inputs are clamped there). bits: int32 scratch [>= M] for the 2^n factor.
    """
    n = v.shape[0]
    for i in range(n):
        x = min(max(v[i], np.float32(-87.0)), np.float32(87.0))
        m = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
        r = x - m * np.float32(0.693359375) + m * np.float32(2.12194440e-4)
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        v[i] = p * r * r + r + np.float32(1.0)
        bits[i] = (np.int32(m) + np.int32(127)) << np.int32(23)
    scale = bits[:n].view(np.float32)
    for i in range(n):
        v[i] *= scale[i]


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _tanh(x: np.float32) -> np.float32:
    """tanh in float32, branch-free (vectorises): Eigen's 13/6 rational approximation on [-7.9, 7.9], within
    4e-7 of the exact value everywhere (outside that range tanh rounds to +-1 in float32 anyway)."""
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


@njit(cache=True, fastmath=False, error_model="numpy")
def sample_rows(logits: np.ndarray, uniforms: np.ndarray, temperature: float, out: np.ndarray,
                 e: np.ndarray, bits: np.ndarray) -> None:
    """Draw one class per row. logits [B, C] float32, uniforms [B] in [0, 1), out [B] int64.

    softmax(logits / temperature) by the inverse CDF (sums in float64); temperature <= 0 takes the argmax.
    e: float32 scratch [C], bits: int32 scratch [C].
    """
    B, C = logits.shape
    inv_t = np.float32(1.0 / temperature) if temperature > 0.0 else np.float32(0.0)
    for b in range(B):
        row = logits[b]
        best, m = 0, row[0]
        for i in range(1, C):
            if row[i] > m:
                m, best = row[i], i
        if temperature <= 0.0:
            out[b] = best
            continue
        for i in range(C):
            e[i] = (row[i] - m) * inv_t
        _exp_inplace(e, bits)
        total = 0.0
        for i in range(C):
            total += e[i]
        threshold = uniforms[b] * total
        chosen, acc = C - 1, 0.0
        for i in range(C):
            acc += e[i]
            if acc > threshold:
                chosen = i
                break
        out[b] = chosen


# --------------------------------------------------------------------------- the compiled loop


@njit(cache=True, fastmath=False, error_model="numpy")
def _gated_layer(layer, t, h, X, a, z, rs, skip, ring, offsets, sizes, dilations, k, dilated_w, cond_l,
                 res_skip_w) -> None:
    """One residual layer for one sample, all B columns; updates h [R, B] and skip [S + 1, B] in place.

    a [G, B], z [G/2 + 1, B] (last row ones), rs [R + S, B]: scratch.
    """
    R, B = h.shape
    G = a.shape[0]
    size, off, d = sizes[layer], offsets[layer], dilations[layer]
    ring[off + t % size] = h
    for j in range(k):  # stack the k taps: one matrix product instead of k
        X[j * R:(j + 1) * R] = ring[off + (t - (k - 1 - j) * d) % size]
    np.dot(dilated_w[layer], X, a)
    af, cf, zf = a.reshape(G * B), cond_l.reshape(G * B), z.reshape(z.size)
    HB = G * B // 2
    for i in range(HB):  # tanh(a) * sigmoid(b), sigmoid(y) = (1 + tanh(y / 2)) / 2
        gate = np.float32(0.5) + np.float32(0.5) * _tanh(np.float32(0.5) * (af[HB + i] + cf[HB + i]))
        zf[i] = _tanh(af[i] + cf[i]) * gate
    np.dot(res_skip_w[layer], z, rs)
    hf, rsf, sf = h.reshape(R * B), rs.reshape(rs.size), skip.reshape(skip.size)
    half = np.float32(math.sqrt(0.5))
    for i in range(R * B):
        hf[i] = (hf[i] + rsf[i]) * half
    for i in range(sf.shape[0] - B):
        sf[i] += rsf[R * B + i]


@njit(cache=True, fastmath=False, error_model="numpy")
def _output(skip, out1_w, out2_w, o1, logits) -> None:
    """logits [C, B] = out2(relu(out1(relu(skip)))); skip, o1 [S + 1, B] with a last row of ones."""
    B = skip.shape[1]
    sf, of = skip.reshape(skip.size), o1.reshape(o1.size)
    n = sf.shape[0] - B
    for i in range(n):
        sf[i] = max(sf[i], np.float32(0.0))
    np.dot(out1_w, skip, o1[:-1])
    for i in range(n):
        of[i] = max(of[i], np.float32(0.0))
    np.dot(out2_w, o1, logits)


@njit(cache=True, fastmath=False, error_model="numpy", nogil=True)
def _run(embed, dilated_w, res_skip_w, out1_w, out2_w, dilations, k, cond, upsample, ring, offsets, sizes, x,
         t0, t1, inputs, teacher, uniforms, temperature, samples, logits_out) -> None:
    """Advance B columns from sample t0 to t1 (state: `ring` [slots, R, B] and inputs `x` [B], in place).

    cond [N, L, G, B] (dilated bias folded in); sample t uses frame t // upsample (frame 0 when N = 1).
    teacher: the input of step t is inputs[:, t] (logits recorded in logits_out [t1 - t0, C, B]);
    otherwise it is the previous sample, drawn with uniforms [t1 - t0, B] into samples [B, T].
    """
    R, B = ring.shape[1], ring.shape[2]
    L, G = dilated_w.shape[0], dilated_w.shape[1]
    S, C = out1_w.shape[0], out2_w.shape[0]
    h, X = np.empty((R, B), np.float32), np.empty((k * R, B), np.float32)
    a, e, bits = np.empty((G, B), np.float32), np.empty(C, np.float32), np.empty(C, np.int32)
    z, skip, o1 = np.ones((G // 2 + 1, B), np.float32), np.ones((S + 1, B), np.float32), np.ones((S + 1, B), np.float32)
    rs, logits = np.empty((R + S, B), np.float32), np.empty((C, B), np.float32)
    rows, drawn = np.empty((B, C), np.float32), np.empty(B, np.int64)
    n_frames = cond.shape[0]
    for t in range(t0, t1):
        frame = min(t // upsample, n_frames - 1)
        for b in range(B):
            if teacher:
                x[b] = inputs[b, t]
            h[:, b] = embed[x[b]]
        skip[:S] = 0.0
        for layer in range(L):
            _gated_layer(layer, t, h, X, a, z, rs, skip, ring, offsets, sizes, dilations, k, dilated_w,
                         cond[frame, layer], res_skip_w)
        _output(skip, out1_w, out2_w, o1, logits)
        if teacher:
            logits_out[t - t0] = logits
        else:
            rows[:] = logits.T
            sample_rows(rows, uniforms[t - t0], temperature, drawn, e, bits)
            for b in range(B):
                samples[b, t] = drawn[b]
                x[b] = drawn[b]


class NumbaGenerator:
    """State and arrays of the compiled loop for B columns with conditioning cond [B, L*G, N].

    `advance(t1, ...)` runs the loop from the current sample to t1; call it repeatedly (progress, bounded
    memory for the uniforms). Reuse one `WaveNetWeights` across calls to skip re-reading the model.
    """

    def __init__(self, weights: WaveNetWeights, cond: torch.Tensor, upsample: int, start_token: int):
        w = weights
        L, G = w.dilated_w.shape[0], w.dilated_w.shape[1]
        B, width, N = cond.shape
        if width != L * G:
            raise ValueError(f"cond has {width} channels; this WaveNet needs layers * gate = {L * G}")
        # [B, L*G, N] -> [N, L, G, B], the dilated conv's bias folded in (added once, not per sample).
        c = cond.detach().float().cpu().permute(2, 1, 0).reshape(N, L, G, B).numpy()
        self.cond = np.ascontiguousarray(c + w.dilated_b[None, :, :, None])
        self.weights, self.upsample = w, int(upsample)
        sizes = w.buffer_sizes
        self.sizes, self.offsets = sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.ring = np.zeros((int(sizes.sum()), w.embed.shape[1], B), np.float32)
        self.x = np.full(B, start_token, np.int64)
        self.t = 0
        self.batch = B

    def advance(self, t1: int, samples: np.ndarray, uniforms: np.ndarray | None = None, temperature: float = 1.0,
                inputs: np.ndarray | None = None) -> np.ndarray | None:
        """Run samples [self.t, t1). Sampling: uniforms [t1 - t, B] -> samples[:, t:t1] (int64 [B, T]).

        Teacher forcing (inputs int64 [B, T] given): returns logits [t1 - t, C, B] float32 instead.
        """
        w, B, n = self.weights, self.batch, t1 - self.t
        teacher = inputs is not None
        logits = np.empty((n if teacher else 0, w.out2_w.shape[0], B), np.float32)
        inputs = inputs if teacher else np.zeros((B, 0), np.int64)
        uniforms = uniforms if uniforms is not None else np.zeros((0, B))
        _run(w.embed, w.dilated_w, w.res_skip_w, w.out1_w, w.out2_w, w.dilations, w.kernel_size, self.cond,
             self.upsample, self.ring, self.offsets, self.sizes, self.x, self.t, t1, inputs, teacher,
             uniforms, float(temperature), samples, logits)
        self.t = t1
        return logits if teacher else None


class NumbaPriorStepper:
    """The protocol of `vqaudio.models.prior.PriorStepper` (next_logits, feed) on this compiled loop, for the latent
    prior (teacher-forced, batch 1): what `.vqc` coding steps by default."""

    def __init__(self, prior: LatentPrior, speaker: int | None):
        with torch.inference_mode():
            cond = prior.conditioning(speaker, 1).float().cpu()  # [1, L*G, 1]
        start = int(prior.wavenet.start_token)
        self.generator = NumbaGenerator(extract_weights(prior.wavenet), cond, 1, start)
        self.inputs = np.full((1, 1024), start, dtype=np.int64)  # inputs[0, t]: the input of step t
        self.no_samples = np.zeros((1, 0), dtype=np.int64)
        self.t, self.ready = 0, True

    def next_logits(self) -> np.ndarray:
        """float32 [K]: logits for the next code given every code fed so far."""
        if not self.ready:
            raise RuntimeError("feed() the previous code before asking for the next logits")
        logits = self.generator.advance(self.t + 1, self.no_samples, inputs=self.inputs)
        self.t, self.ready = self.t + 1, False
        return np.ascontiguousarray(logits[0, :, 0])

    def feed(self, code: int) -> None:
        """Give the code that followed the last prediction."""
        if self.t >= self.inputs.shape[1]:
            self.inputs = np.concatenate([self.inputs, np.zeros_like(self.inputs)], axis=1)
        self.inputs[0, self.t] = int(code)
        self.ready = True
