"""Training throughput of the VQ-VAE presets on this machine: audio samples per second through the real loop.

Runs `vqaudio.training.vqvae.train_vqvae` on a small synthetic data dir (in a temporary folder) for each config,
logging every step, and reports the mean rate of the steps after the warm-up ones, with the machine it ran
on. Audio samples/s divided by the sample rate is seconds of audio trained on per second.

    python benchmarks/train_throughput.py                          # mini (vocoder decoder) and mini_wavenet
    python benchmarks/train_throughput.py --configs mini,mini_wavenet,paper
    python benchmarks/train_throughput.py --configs mini --steps 5 --warmup 2 --threads 2
    python benchmarks/train_throughput.py --configs paper --set train.batch_size=4   # a smaller batch on CPU

Another CPU-heavy job on the same cores invalidates the figures (a second torch job on 2 cores slows
both ~10x): run it alone. The 1-minute load average is printed with the table to show what else ran.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqaudio.config import Config, apply_override, load_config
from vqaudio.data.kaldi import DataDir
from vqaudio.models import build_vqvae, count_parameters
from vqaudio.phones import PHONES
from vqaudio.training.vqvae import train_vqvae

SPEAKERS = ("s01", "s02", "s03", "s04")


def synthetic_data(root: Path, seconds: float, sample_rate: int) -> Path:
    """Two utterances per speaker of harmonic signals with noise (throughput does not depend on content), with
    random 10 ms phone labels for configs that train the phone head (`model.phone_loss`, off in every preset)."""
    rng = np.random.default_rng(0)
    wav_scp, utt2spk, phone_ali = {}, {}, {}
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for s, spk in enumerate(SPEAKERS):
        for u in range(2):
            wav = 0.3 * np.sin(2 * np.pi * 100 * (s + 1) * t) + 0.05 * rng.standard_normal(len(t))
            path = root / "audio" / f"{spk}_{u:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav.astype(np.float32), sample_rate)
            wav_scp[f"{spk}_{u:03d}"], utt2spk[f"{spk}_{u:03d}"] = str(path), spk
            phone_ali[f"{spk}_{u:03d}"] = [PHONES[i] for i in rng.integers(0, len(PHONES), math.ceil(seconds * 100))]
    DataDir(root / "train", wav_scp, utt2spk, phone_ali=phone_ali).save()
    return root


def measure(name: str, cfg: Config, steps: int, warmup: int, work: Path) -> dict:
    """Train `warmup + steps` steps of config `cfg`; mean samples/s over the last `steps`."""
    total = warmup + steps
    for item in (f"train.max_steps={total}", "train.log_every=1", f"train.checkpoint_every={total + 1}",
                 f"train.valid_every={total + 1}", "train.valid_batches=1", "train.max_minutes=0"):
        apply_override(cfg, item)
    seconds = max(2.0, 2 * cfg.train.segment_samples / cfg.model.sample_rate)
    data = synthetic_data(work / f"data_{name}", seconds, cfg.model.sample_rate)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train_vqvae(data, work / f"exp_{name}", cfg, show_progress=False)
    records = [json.loads(x) for x in (work / f"exp_{name}" / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if r["kind"] == "train" and r["step"] > warmup]
    rate = statistics.mean(rates)
    return {
        "config": name, "params_M": count_parameters(build_vqvae(cfg.model, len(SPEAKERS))) / 1e6,
        "batch": f"{cfg.train.batch_size}x{cfg.train.segment_samples}", "steps": len(rates),
        "step_s": cfg.train.batch_size * cfg.train.segment_samples / rate, "samples_per_s": rate,
        "x_realtime": rate / cfg.model.sample_rate,
        "peak_gpu_GiB": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0,
    }


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"CPU ({platform.processor() or platform.machine()})"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"device {device}; {cpus} CPU cores usable (of {os.cpu_count()}); torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; load average (1 min) {load:.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="mini,mini_wavenet", help="comma-separated presets or YAML files")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per config")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocation, k-means init)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the config's train.threads)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    args = ap.parse_args(argv)
    print("warning: another CPU-heavy job on the same cores invalidates these figures; run this alone.",
          file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            extra = [f"train.threads={args.threads}"] if args.threads else []
            cfg = load_config(name, args.overrides + extra)
            t0 = time.perf_counter()
            rows.append(measure(Path(name).stem, cfg, args.steps, args.warmup, Path(tmp)))
            rows[-1]["wall_s"] = time.perf_counter() - t0
    print(machine())
    print("| config | params (M) | batch | timed steps | s/step | samples/s | x real time | peak GPU GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['params_M']:.2f} | {r['batch']} | {r['steps']} | {r['step_s']:.2f} | "
              f"{r['samples_per_s']:.0f} | {r['x_realtime']:.2f} | {r['peak_gpu_GiB']:.1f} |")


if __name__ == "__main__":
    main()
