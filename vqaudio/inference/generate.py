"""WaveNet sampling: cached incremental generation (Fast WaveNet, Paine et al. 2016) on three paths.

The cached paths keep, per layer, a buffer of its past inputs, so one sample costs O(layers) work instead of
a pass over the receptive field. One entry point, `generate`, picks the path:

- ``naive``: recompute the whole receptive field for every sample (a reference for the benchmark only).
- ``eager``: the model's own cached `WaveNet.step` in PyTorch, one sample at a time (on CUDA: batched on
  the device under `torch.inference_mode`).
- ``numba``: the fast CPU path (`vqaudio.inference.numba_loop`): each layer's k dilated taps fused into one matrix
  product, the per-sample loop compiled, the B columns (utterances, or segments of one utterance) sharing
  every matrix product; column groups run on `threads` threads (the loop releases the GIL; BLAS is kept to
  one thread each).

Sampling is the same on every CPU path (`vqaudio.inference.numba_loop.sample_rows`): softmax with temperature
(float32 exp, float64 sums) and the inverse CDF at a uniform drawn beforehand from
`numpy.random.default_rng(seed)`, so the eager and numba paths give identical samples for the same seed (up
to a float32 logit rounding that lands exactly on a CDF step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from vqaudio.inference.numba_loop import NumbaGenerator, WaveNetWeights, extract_weights, sample_rows

METHODS = ("auto", "naive", "eager", "numba")
_CHUNK = 2048  # samples generated between progress callbacks (and uniforms drawn at once)


# --------------------------------------------------------------------------- public entry points


def resolve_method(method: str, device: torch.device) -> str:
    """'auto' -> 'numba' on CPU, 'eager' (batched torch on the device) on CUDA; refuse unknown names."""
    if method not in METHODS:
        raise ValueError(f"unknown generation method {method!r}; one of {', '.join(METHODS)}")
    if method == "auto":
        return "eager" if device.type == "cuda" else "numba"
    return method


def _chunks(n: int):
    for t0 in range(0, n, _CHUNK):
        yield t0, min(n, t0 + _CHUNK)


def _check(wavenet: torch.nn.Module, cond: torch.Tensor, n_samples: int, upsample: int) -> None:
    if cond.dim() != 3:
        raise ValueError(f"cond must be [B, layers * gate, N], got shape {tuple(cond.shape)}")
    if cond.shape[2] > 1 and cond.shape[2] * upsample < n_samples:
        raise ValueError(f"cond covers {cond.shape[2] * upsample} samples; {n_samples} requested")


def generate(wavenet: torch.nn.Module, cond: torch.Tensor, n_samples: int, temperature: float = 1.0,
             seed: int | np.random.Generator | None = None, method: str = "auto", upsample: int | None = None,
             on_progress: Callable[[int], None] | None = None, weights: WaveNetWeights | None = None,
             threads: int | None = None) -> torch.Tensor:
    """Sample n_samples values per column from a WaveNet, starting from its start token.

    Args:
        wavenet: a `WaveNet` (decoder or prior), in eval mode.
        cond: [B, layers * gate, N] from `wavenet.conditioning(local, speaker)`; sample t uses frame
            t // upsample (frame 0 when N = 1).
        n_samples: T, samples per column.
        temperature: softmax temperature (1 = the model's distribution; <= 0 = argmax).
        seed: seeds `numpy.random.default_rng` (or a Generator, drawn from in place); the same seed gives the
            same samples on every CPU path.
        method: 'auto', 'naive', 'eager' or 'numba' (see the module docstring).
        upsample: samples per cond frame (default `wavenet.upsample`).
        on_progress: called with the number of samples done per column after each chunk.
        weights: `extract_weights(wavenet)`, to reuse across calls (numba path).
        threads: numba path: column groups run in parallel (default `torch.get_num_threads()`).

    Returns:
        LongTensor [B, T] of class indices (mu-law levels for the decoder, codes for the prior), on cond's device.
    """
    upsample = int(upsample if upsample is not None else getattr(wavenet, "upsample", 1))
    _check(wavenet, cond, n_samples, upsample)
    method = resolve_method(method, cond.device)
    rng = np.random.default_rng(seed)
    run = {"numba": _generate_numba, "eager": _generate_eager, "naive": _generate_naive}[method]
    with torch.inference_mode():
        samples = run(wavenet, cond, n_samples, temperature, rng, upsample, on_progress, weights,
                      threads or torch.get_num_threads())
    return torch.as_tensor(samples).to(cond.device)


def _generate_numba(wavenet, cond, n, temperature, rng, upsample, on_progress, weights, threads) -> np.ndarray:
    """Compiled loop; the B columns split into `threads` groups run concurrently (the loop releases the GIL)."""
    w, B = weights or extract_weights(wavenet), cond.shape[0]
    groups = [g for g in np.array_split(np.arange(B), max(1, min(threads, B)))]
    gens = [NumbaGenerator(w, cond[g], upsample, int(wavenet.start_token)) for g in groups]
    outs = [np.zeros((len(g), n), np.int64) for g in groups]
    with _single_threaded_blas(), ThreadPoolExecutor(len(gens)) as pool:
        for t0, t1 in _chunks(n):
            uniforms = rng.random((t1 - t0, B))
            jobs = [pool.submit(gen.advance, t1, out, np.ascontiguousarray(uniforms[:, g]), temperature)
                    for gen, out, g in zip(gens, outs, groups, strict=True)]
            for job in jobs:
                job.result()
            if on_progress is not None:
                on_progress(t1)
    return np.concatenate(outs, axis=0)


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS threads inside a per-sample loop only contend (10-50x slower on a busy machine): use one each."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _frame(t: int, n_frames: int, upsample: int) -> int:
    return min(t // upsample, n_frames - 1)


def _generate_eager(wavenet, cond, n, temperature, rng, upsample, on_progress, weights, threads) -> torch.Tensor:
    """The model's own cached `step`, one sample at a time; sampling on the CPU (numba) or on the device."""
    B, N = cond.shape[0], cond.shape[2]
    on_cpu = cond.device.type == "cpu"
    state = wavenet.init_state(B)
    x = torch.full((B,), int(wavenet.start_token), dtype=torch.long, device=cond.device)
    samples = torch.zeros(B, n, dtype=torch.long, device=cond.device)
    drawn, e, bits = np.empty(B, np.int64), np.empty(wavenet.classes, np.float32), np.empty(wavenet.classes, np.int32)
    for t0, t1 in _chunks(n):
        uniforms = rng.random((t1 - t0, B))
        u_dev = None if on_cpu else torch.as_tensor(uniforms, device=cond.device)
        for t in range(t0, t1):
            logits, state = wavenet.step(x, cond[:, :, _frame(t, N, upsample)], state)
            if on_cpu:
                sample_rows(np.ascontiguousarray(logits.float().numpy()), uniforms[t - t0], temperature, drawn,
                             e, bits)
                x = torch.from_numpy(drawn.copy())
            else:
                x = sample_torch(logits, u_dev[t - t0], temperature)
            samples[:, t] = x
        if on_progress is not None:
            on_progress(t1)
    return samples


def sample_torch(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
    """The inverse-CDF sampler on the device: logits [B, C], uniforms [B] -> LongTensor [B]."""
    z = logits.double()
    if temperature <= 0:
        return z.argmax(dim=1)
    cdf = torch.exp((z - z.max(dim=1, keepdim=True).values) / temperature).cumsum(dim=1)
    idx = torch.searchsorted(cdf, (uniforms.double() * cdf[:, -1])[:, None], right=True)[:, 0]
    return idx.clamp_(max=z.shape[1] - 1)


def window_logits(wavenet: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor, t0: int,
                  upsample: int) -> torch.Tensor:
    """Full convolutional pass over inputs x [B, W] that start at sample t0 -> logits [B, C, W].

    Conditioned on cond [B, L*G, N] at frames (t0 + i) // upsample; the same computation as `WaveNet.forward`,
    but from a conditioning already computed (the naive path re-runs it over the receptive field per sample).
    """
    W, N, G = x.shape[1], cond.shape[2], wavenet.cfg.gate_channels
    frames = torch.clamp(torch.arange(t0, t0 + W, device=cond.device) // upsample, max=N - 1)
    h = wavenet.embed(x).transpose(1, 2)
    skips = 0
    for i, layer in enumerate(wavenet.layers):
        h, skip, _ = layer.stream(h, cond[:, i * G:(i + 1) * G, frames], layer.dilated.init_state(1))
        skips = skips + skip
    return wavenet.out2(torch.relu(wavenet.out1(torch.relu(skips))))


def _generate_naive(wavenet, cond, n, temperature, rng, upsample, on_progress, weights, threads) -> torch.Tensor:
    """Recompute the receptive field for every sample (no cache): O(receptive field) work per sample."""
    B, rf = cond.shape[0], int(wavenet.receptive_field)
    inputs = torch.full((B, n + 1), int(wavenet.start_token), dtype=torch.long, device=cond.device)
    drawn, e, bits = np.empty(B, np.int64), np.empty(wavenet.classes, np.float32), np.empty(wavenet.classes, np.int32)
    for t0, t1 in _chunks(n):
        uniforms = rng.random((t1 - t0, B))
        for t in range(t0, t1):
            s = max(0, t - rf + 1)
            logits = window_logits(wavenet, inputs[:, s:t + 1], cond, s, upsample)[:, :, -1]
            sample_rows(np.ascontiguousarray(logits.float().cpu().numpy()), uniforms[t - t0], temperature, drawn,
                         e, bits)
            inputs[:, t + 1] = torch.from_numpy(drawn.copy()).to(cond.device)
        if on_progress is not None:
            on_progress(t1)
    return inputs[:, 1:]


def cached_logits(wavenet: torch.nn.Module, inputs: torch.Tensor, cond: torch.Tensor, method: str = "numba",
                  upsample: int | None = None) -> torch.Tensor:
    """Teacher-forced logits from a cached path ('eager' or 'numba'), to check it against the full forward.

    inputs LongTensor [B, T] (inputs[:, 0] = start token), cond [B, L*G, N] -> logits [B, C, T] float32.
    """
    upsample = int(upsample if upsample is not None else getattr(wavenet, "upsample", 1))
    B, T, N = inputs.shape[0], inputs.shape[1], cond.shape[2]
    with torch.inference_mode():
        if method == "numba":
            gen = NumbaGenerator(extract_weights(wavenet), cond, upsample, int(wavenet.start_token))
            x = np.ascontiguousarray(inputs.cpu().numpy().astype(np.int64))
            logits = gen.advance(T, np.zeros((B, 0), np.int64), inputs=x)
            return torch.from_numpy(logits).permute(2, 1, 0).contiguous()
        if method != "eager":
            raise ValueError(f"cached_logits: method must be 'eager' or 'numba', got {method!r}")
        state, out = wavenet.init_state(B), []
        for t in range(T):
            logits, state = wavenet.step(inputs[:, t], cond[:, :, _frame(t, N, upsample)], state)
            out.append(logits.float())
        return torch.stack(out, dim=2)
