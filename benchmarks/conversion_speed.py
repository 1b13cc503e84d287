"""Speed of the vocoder-kind codec on the CPU: conversion, decoding and WORLD analysis, measured in one run.

    python benchmarks/conversion_speed.py                     # the mini preset (random weights), ~1 min
    python benchmarks/conversion_speed.py --model vqaudio/pretrained/vqvae.pt --repeats 5

Speech comes from the embedded corpus builder (eSpeak NG; a few utterances in a temporary folder). Figures are
compute seconds per second of 16 kHz audio and its inverse, "x real time" (higher is faster); each is the median
of `--repeats` runs. What is timed: `inference.codec.convert` of one 4 s utterance (encode, decode, WORLD synthesis,
in each F0 mode), of a batch of 8 x 2 s, and WORLD analysis of the 4 s utterance (Harvest, DIO + StoneMask,
CheapTrick + D4C). Target: conversion of one 4 s utterance at least 30x faster than real time on 2 cores.
Another CPU-heavy process on the same cores (a second job, a test run) invalidates the figures: run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqaudio.audio import load_audio
from vqaudio.config import load_config
from vqaudio.data.world import WorldSettings, estimate_f0
from vqaudio.inference import codec
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model

TARGET_X_REALTIME = 30.0
SR = 16000


def speech(work: Path) -> np.ndarray:
    """eSpeak NG speech of the embedded corpus builder (2 speakers x 6 utterances), end to end, float32 [T]."""
    from vqaudio.data.synth import build_corpus

    build_corpus(work / "corpus", speakers=2, utterances=6, seed=0, shared=2, show_progress=False)
    return np.concatenate([load_audio(p, SR) for p in sorted((work / "corpus").rglob("*.flac"))])


def clips(audio: np.ndarray, seconds: float, count: int, offset: int = 0) -> list[np.ndarray]:
    """`count` consecutive clips of `seconds` s from `audio`, starting `offset` samples in (wrapping around)."""
    n = int(seconds * SR)
    return [np.resize(np.roll(audio, -(offset + i * n)), n).astype(np.float32) for i in range(count)]


def timed(fn, repeats: int) -> float:
    """Median wall seconds of `repeats` calls of fn (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load(model: str | None, work: Path):
    if model:
        return codec.load_codec(model, device="cpu")
    cfg = load_config("mini").model
    torch.manual_seed(0)
    save_model(work / "mini.pt", build_vqvae(cfg, 4).eval(), cfg, ["p225", "p226", "p227", "p228"])
    return codec.load_codec(work / "mini.pt", device="cpu")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a vocoder-kind model file (default: the mini preset, random)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("warning: another CPU-heavy job on the same cores invalidates these figures; run this alone.",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loaded = load(args.model, work)
        if loaded.model.kind != "vocoder":
            sys.exit(f"{args.model}: a {loaded.model.kind}-kind model; this benchmark is for the vocoder kind "
                     "(benchmarks/generation_speed.py times the sample-level decoder)")
        audio = speech(work)
        one, batch = clips(audio, 4.0, 1)[0], clips(audio, 2.0, 8, offset=4 * SR)
        target = loaded.speakers[0]
        s = WorldSettings.from_config(loaded.config)
        x = one.astype(np.float64)
        headline = f"convert 4 s, F0 {loaded.config.vocoder.f0_mode} (the model's)"
        rows = {
            headline: (4.0, timed(lambda: codec.convert(loaded, [one], target), args.repeats)),
            "convert 4 s, F0 mapped": (4.0, timed(lambda: codec.convert(loaded, [one], target, f0_mode="mapped"),
                                                  args.repeats)),
            "convert batch 8 x 2 s": (16.0, timed(lambda: codec.convert(loaded, batch, target), args.repeats)),
            "encode 4 s": (4.0, timed(lambda: codec.encode(loaded, one), args.repeats)),
            "WORLD F0, Harvest, 4 s": (4.0, timed(lambda: estimate_f0(x, s, "harvest"), args.repeats)),
            "WORLD F0, DIO + StoneMask, 4 s": (4.0, timed(lambda: estimate_f0(x, s, "dio"), args.repeats)),
        }
    print(f"model: {args.model or 'mini preset, random weights'}; torch threads {torch.get_num_threads()}")
    print("| what | compute s per audio s | x real time |")
    print("|---|---|---|")
    for name, (audio_s, wall) in rows.items():
        print(f"| {name} | {wall / audio_s:.4f} | {audio_s / wall:.0f} |")
    single = 4.0 / rows[headline][1]
    verdict = "met" if single >= TARGET_X_REALTIME else "NOT met"
    print(f"target: one 4 s conversion >= {TARGET_X_REALTIME:.0f}x real time: {verdict} ({single:.0f}x)")


if __name__ == "__main__":
    main()
