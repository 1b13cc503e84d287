"""Classical low-bitrate codecs as baselines: Codec2 (1300/2400/3200 bit/s) and Opus (6 kbit/s).

They run through their command-line tools when installed (`c2enc`/`c2dec`, `opusenc`/`opusdec`, found
with shutil.which); vqaudio never installs them. Where a tool is missing the baseline is skipped and
`available_baselines` says why, for the report.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from vqaudio.audio import resample
from vqaudio.errors import VQAudioError


class BaselineError(VQAudioError):
    """A codec tool failed on an utterance."""


@dataclass(frozen=True)
class Baseline:
    name: str  # e.g. "codec2-1300"
    bitrate: float  # bit/s
    tools: tuple[str, ...]  # executables needed


BASELINES = (
    Baseline("codec2-1300", 1300.0, ("c2enc", "c2dec")),
    Baseline("codec2-2400", 2400.0, ("c2enc", "c2dec")),
    Baseline("codec2-3200", 3200.0, ("c2enc", "c2dec")),
    Baseline("opus-6k", 6000.0, ("opusenc", "opusdec")),
)


def available_baselines() -> tuple[list[Baseline], list[str]]:
    """(baselines whose tools are on PATH, notes on those skipped)."""
    ok, notes = [], []
    for b in BASELINES:
        missing = [t for t in b.tools if shutil.which(t) is None]
        if missing:
            notes.append(f"{b.name} skipped: {', '.join(missing)} not installed")
        else:
            ok.append(b)
    return ok, notes


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()
        raise BaselineError(f"{cmd[0]} failed ({tail[-1] if tail else f'exit {res.returncode}'})")


def _codec2(wav: np.ndarray, sample_rate: int, mode: int, tmp: Path) -> np.ndarray:
    """Codec2 works on raw 16-bit mono PCM at 8 kHz: resample down, code, decode, resample back."""
    pcm = np.clip(resample(wav, sample_rate, 8000), -1, 1)
    (tmp / "in.raw").write_bytes((pcm * 32767).astype("<i2").tobytes())
    _run(["c2enc", str(mode), str(tmp / "in.raw"), str(tmp / "bits.c2")])
    _run(["c2dec", str(mode), str(tmp / "bits.c2"), str(tmp / "out.raw")])
    out = np.frombuffer((tmp / "out.raw").read_bytes(), dtype="<i2").astype(np.float32) / 32768
    return resample(out, 8000, sample_rate)


def _opus(wav: np.ndarray, sample_rate: int, kbps: float, tmp: Path) -> np.ndarray:
    sf.write(str(tmp / "in.wav"), wav, sample_rate, subtype="PCM_16")
    _run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(tmp / "in.wav"), str(tmp / "bits.opus")])
    _run(["opusdec", "--quiet", "--rate", str(sample_rate), str(tmp / "bits.opus"), str(tmp / "out.wav")])
    out, sr = sf.read(str(tmp / "out.wav"), dtype="float32", always_2d=True)
    return resample(out.mean(axis=1), sr, sample_rate)


def run_baseline(baseline: Baseline, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Encode and decode `wav` [T] through `baseline`; returns [T] at `sample_rate` (cut or zero-padded)."""
    with tempfile.TemporaryDirectory(prefix="vqaudio-baseline-") as d:
        tmp = Path(d)
        if baseline.name.startswith("codec2"):
            out = _codec2(wav, sample_rate, int(baseline.bitrate), tmp)
        else:
            out = _opus(wav, sample_rate, baseline.bitrate / 1000, tmp)
    fitted = np.zeros(len(wav), dtype=np.float32)
    fitted[: min(len(out), len(wav))] = out[: len(wav)]
    return fitted
