"""Generation and encoding speed of the VQ-VAE codec on the CPU: real-time factors, measured in one run.

    python benchmarks/generation_speed.py                   # the mini_wavenet preset (random weights), ~1-2 min
    python benchmarks/generation_speed.py --small           # also a smaller WaveNet decoder
    python benchmarks/generation_speed.py --long 600        # also encode + convert a 10-minute signal (peak memory)
    python benchmarks/generation_speed.py --long 120 --skip-main

Real-time factor (RTF) = compute seconds per second of 16 kHz audio (lower is faster; < 1 is faster than real
time). Random weights: speed does not depend on training. The naive (receptive field recomputed per sample)
and eager (PyTorch cached step) loops run on a short clip and are extrapolated per second; their ratios to the
compiled loop, measured in the same run, are what matters: absolute figures move with the machine and its
load. Another CPU-heavy process on the same cores (a second job, a test run) invalidates the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqaudio.config import load_config
from vqaudio.inference import codec
from vqaudio.inference.generate import generate
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model

TARGETS = {"single": 0.5, "batch": 0.2, "encode_speedup": 200.0}


def machine_info() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{cpu}; {os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"torch threads {torch.get_num_threads()}")


def make_model(small: bool, path: Path):
    """A random VQ-VAE with the sample-level decoder (the mini_wavenet preset, or it with a smaller decoder) saved
    and loaded like a trained one."""
    cfg = load_config("mini_wavenet").model
    if small:
        d = cfg.decoder
        d.layers, d.stacks, d.residual_channels, d.gate_channels, d.skip_channels = 12, 2, 32, 64, 64
    torch.manual_seed(0)
    save_model(path, build_vqvae(cfg, 4).eval(), cfg, ["p225", "p226", "p227", "p228"])
    return codec.load_codec(path, device="cpu")


def random_codes(loaded, seconds: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * loaded.sample_rate / loaded.hop_length)
    return np.random.default_rng(seed).integers(0, loaded.config.vq.codebook_size, n)


def voiced(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return (0.3 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


CPU_SECONDS: list[float] = []  # process CPU time of the last `timed` call, all threads


def timed(fn) -> float:
    """Wall seconds of fn(); its process CPU seconds go to CPU_SECONDS[-1] (less inflated by other load)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    CPU_SECONDS.append(time.process_time() - cpu)
    return time.perf_counter() - start


def loop_rtf(loaded, method: str, n_samples: int, batch: int = 1) -> float:
    """RTF per column of generate(method) for `batch` columns of n_samples (no segmenting)."""
    net, sr = loaded.model.decoder, loaded.sample_rate
    codes = torch.as_tensor(random_codes(loaded, n_samples / sr + 0.1))
    with torch.inference_mode():
        cond = net.conditioning(loaded.model.codes_to_latent(codes[None].repeat(batch, 1)), torch.zeros(batch).long())
    generate(net, cond, 16, method=method, threads=1)  # compile / warm up
    return timed(lambda: generate(net, cond, n_samples, seed=0, method=method, threads=1)) / (n_samples / sr) / batch


def bench_decoder(loaded, label: str, naive_samples: int, eager_samples: int) -> dict[str, float]:
    sr = loaded.sample_rate
    net = loaded.model.decoder
    print(f"\n== {label}: WaveNet {net.cfg.layers} layers ({net.cfg.stacks} stacks), residual "
          f"{net.cfg.residual_channels}, gate {net.cfg.gate_channels}, skip {net.cfg.skip_channels}; "
          f"receptive field {net.receptive_field} samples")
    r, cpu = {}, {}
    with torch_threads(1):  # one sample at a time: intra-op threads only contend
        r["naive"], cpu["naive"] = loop_rtf(loaded, "naive", naive_samples), CPU_SECONDS[-1] / naive_samples * sr
        r["eager"], cpu["eager"] = loop_rtf(loaded, "eager", eager_samples), CPU_SECONDS[-1] / eager_samples * sr
        r["numba_b1"], cpu["numba_b1"] = loop_rtf(loaded, "numba", sr // 2), CPU_SECONDS[-1] * 2
    single = random_codes(loaded, 4.0)
    codec.synthesize(loaded, [single[:20]], [0])  # warm up
    r["single"] = timed(lambda: codec.synthesize(loaded, [single], [0], seed=0)) / 4.0
    cpu["single"] = CPU_SECONDS[-1] / 4.0
    wavs = [voiced(2.0, sr, seed=i) for i in range(8)]
    r["batch"] = timed(lambda: codec.convert(loaded, wavs, "p226", seed=0)) / 16.0
    cpu["batch"] = CPU_SECONDS[-1] / 16.0
    long = voiced(60.0, sr)
    r["encode_speedup"] = 60.0 / timed(lambda: codec.encode(loaded, long))
    cpu["encode_speedup"] = 60.0 / CPU_SECONDS[-1]
    report(r, cpu, naive_samples, eager_samples)
    return r


def report(r: dict[str, float], cpu: dict[str, float], naive_samples: int, eager_samples: int) -> None:
    def verdict(key: str) -> str:
        ok = r[key] >= TARGETS[key] if key == "encode_speedup" else r[key] <= TARGETS[key]
        return f"target {'>=' if key == 'encode_speedup' else '<='} {TARGETS[key]:g}: {'met' if ok else 'NOT met'}"

    rows = [
        ("naive", f"naive loop (receptive field per sample), {naive_samples} samples, B=1", ""),
        ("eager", f"eager PyTorch cached step, {eager_samples} samples, B=1", ""),
        ("numba_b1", "compiled cached loop (numba), 0.5 s, B=1",
         f"{r['eager'] / r['numba_b1']:.1f}x eager, {r['naive'] / r['numba_b1']:.0f}x naive"),
        ("single", "one 4 s utterance, 0.25 s segments batched (B=16)", verdict("single")),
        ("batch", "convert 8 x 2 s, one batch of 0.5 s segments (B=32)", verdict("batch")),
    ]
    print(f"{'':58s} {'RTF wall':>9s} {'RTF cpu':>8s}")
    for key, label, note in rows:
        print(f"{label:58s} {r[key]:9.3f} {cpu[key]:8.3f}  {note}")
    print(f"{'encode 60 s: times faster than real time':58s} {r['encode_speedup']:9.0f} "
          f"{cpu['encode_speedup']:8.0f}  {verdict('encode_speedup')}")
    print(f"threads: {torch.get_num_threads()} (numba column groups, torch); RTF cpu = process CPU seconds (all "
          "threads) per second of audio")


@contextlib.contextmanager
def torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def bench_long(loaded, seconds: float) -> None:
    """Encode and convert one long signal; peak resident memory of the process (ru_maxrss)."""
    sr = loaded.sample_rate
    wav = voiced(seconds, sr)
    t_enc = timed(lambda: codec.encode(loaded, wav))
    rss_enc = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_conv = timed(lambda: codec.convert(loaded, [wav], "p225", seed=0))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n== long input: {seconds:.0f} s: encode {t_enc:.1f} s (peak RSS {rss_enc:.0f} MiB), "
          f"convert {t_conv:.1f} s (RTF {t_conv / seconds:.3f}); peak RSS of the whole run {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="also measure a smaller decoder (2x6, 32/64/64)")
    parser.add_argument("--long", type=float, default=0.0, help="also encode + convert a signal this many seconds long")
    parser.add_argument("--skip-main", action="store_true", help="only the --long measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="numba column groups and torch threads")
    parser.add_argument("--naive-samples", type=int, default=160)
    parser.add_argument("--eager-samples", type=int, default=800)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("machine:", machine_info())
    print("warning: other CPU load on these cores invalidates absolute figures; compare the ratios of one run")
    with tempfile.TemporaryDirectory() as tmp:
        loaded = make_model(False, Path(tmp) / "mini.pt")
        if not args.skip_main:
            bench_decoder(loaded, "mini preset", args.naive_samples, args.eager_samples)
        if args.small:
            bench_decoder(make_model(True, Path(tmp) / "small.pt"), "smaller decoder", args.naive_samples,
                          args.eager_samples)
        if args.long:
            bench_long(loaded, args.long)
    print("\nload average at the end:", " ".join(f"{x:.2f}" for x in os.getloadavg()), file=sys.stdout)


if __name__ == "__main__":
    main()
