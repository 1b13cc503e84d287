"""JSON, Markdown and terminal reports; plots; codec baselines' plumbing."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

from vqaudio.evaluate import baselines, plots, report


@dataclass
class Figures:
    accuracy: float
    counts: np.ndarray


def test_json_is_strict_and_plain(tmp_path):
    path = tmp_path / "r.json"
    report.write_json(path, {"a": Figures(float("nan"), np.arange(3)), "b": (np.float32(0.5), np.int64(2), math.inf)})
    data = json.loads(path.read_text())
    assert data == {"a": {"accuracy": None, "counts": [0, 1, 2]}, "b": [0.5, 2, None]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_markdown_table(tmp_path):
    t = report.Table("Codec", ["system", "STOI", "bits/s"], notes=["opus skipped"])
    t.add("vq-vae", 0.91234, 2250)
    t.add("a|b", float("nan"), "n/a")
    md = report.to_markdown([t], title="Results")
    lines = md.splitlines()
    assert lines[0] == "# Results" and "## Codec" in lines
    assert "| vq-vae | 0.912 | 2250 |" in lines
    assert "| a\\|b | – | n/a |" in lines
    assert "- opus skipped" in lines
    with pytest.raises(ValueError):
        t.add("too", "few")
    report.write_markdown(tmp_path / "results.md", [t])
    assert (tmp_path / "results.md").read_text().startswith("## Codec")


def test_fmt_percent_and_rich_output():
    from rich.console import Console

    assert report.fmt(0.4931, percent=True) == "49.3%"
    console = Console(record=True, width=100)
    t = report.Table("Probe", ["split", "accuracy"])
    t.add("test", report.fmt(0.5, percent=True))
    report.print_tables([t], console)
    assert "50.0%" in console.export_text()


def test_plots_write_png(tmp_path):
    sr = 16000
    wav = np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    plots.spectrograms(tmp_path / "s.png", {"source": wav, "reconstruction": 0.5 * wav}, sr, title="utt")
    plots.code_usage(tmp_path / "u.png", np.array([5, 0, 3, 1]))
    conf = np.zeros((41, 41), dtype=int)
    conf[0, 0], conf[1, 0], conf[1, 1] = 10, 2, 8
    plots.confusion_matrix(tmp_path / "c.png", conf)
    for name in ("s.png", "u.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baselines_skip_with_a_note_when_tools_are_missing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, notes = baselines.available_baselines()
    assert ok == [] and len(notes) == 4 and "c2enc" in notes[0]


def test_baselines_plumbing_with_pass_through_tools(tmp_path, monkeypatch):
    """Fake tools that copy their input: the pipeline must hand back the same audio."""
    for tool, (src, dst) in {"c2enc": (2, 3), "c2dec": (2, 3), "opusenc": (4, 5), "opusdec": (4, 5)}.items():
        exe = tmp_path / tool
        exe.write_text(f'#!/bin/sh\ncp "${src}" "${dst}"\n')
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ok, notes = baselines.available_baselines()
    assert len(ok) == 4 and notes == []
    sr = 16000
    wav = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)).astype(np.float32)
    for b in ok:
        out = baselines.run_baseline(b, wav, sr)
        assert out.shape == wav.shape
        assert np.abs(out[1000:-1000] - wav[1000:-1000]).max() < 0.02  # 16-bit PCM (and 8 kHz for codec2)
