"""Time to enrol one voice from 10 utterances (`vqaudio.training.enroll`) on the CPU, against the 5-minute target.

    python benchmarks/enroll_speed.py                                  # the mini preset, random weights
    python benchmarks/enroll_speed.py --model vqaudio/pretrained/vqvae.pt --steps 300 --repeats 2

The voice is an eSpeak NG speaker of the embedded corpus builder (10 utterances in a temporary folder). What is
timed is the whole call: reading the audio, encoding, WORLD analysis, the optimisation steps, writing the model
file. Another CPU-heavy process on the same cores (a second job, a test run) invalidates the figures: run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from vqaudio.config import load_config
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model
from vqaudio.training.enroll import enroll

TARGET_SECONDS = 300.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a vocoder-kind model file (default: the mini preset, random)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("warning: another CPU-heavy job on the same cores invalidates these figures; run this alone.",
          file=sys.stderr)
    from vqaudio.data.synth import build_corpus

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            cfg = load_config("mini").model
            torch.manual_seed(0)
            model = work / "mini.pt"
            save_model(model, build_vqvae(cfg, 4).eval(), cfg, ["p225", "p226", "p227", "p228"])
        build_corpus(work / "corpus", speakers=1, utterances=10, seed=0, shared=2, show_progress=False)
        files = sorted((work / "corpus").rglob("*.flac"))
        times, seconds = [], 0.0
        for i in range(args.repeats):
            t0 = time.perf_counter()
            result = enroll(model, "bench", files, work / f"out{i}.pt", steps=args.steps, seed=i)
            times.append(time.perf_counter() - t0)
            seconds = result.seconds
    wall = statistics.median(times)
    print(f"model: {args.model or 'mini preset, random weights'}; torch threads {torch.get_num_threads()}")
    print(f"enrolment from {len(files)} utterances ({seconds:.1f} s of speech), {args.steps} steps: "
          f"median {wall:.1f} s over {len(times)} runs (min {min(times):.1f}, max {max(times):.1f})")
    verdict = "met" if wall <= TARGET_SECONDS else "NOT met"
    print(f"target: <= {TARGET_SECONDS:.0f} s: {verdict} ({wall / TARGET_SECONDS:.2f} of the budget)")


if __name__ == "__main__":
    main()
