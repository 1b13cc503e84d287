"""Figures a person would rather look at than read: spectrograms, code usage, the probe's confusion matrix.

matplotlib with the Agg backend (no display needed); every figure is written atomically as PNG.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vqaudio.fileio import atomic_path  # noqa: E402
from vqaudio.phones import PHONES  # noqa: E402


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def spectrograms(path: str | os.PathLike, waves: dict[str, np.ndarray], sample_rate: int, title: str = "") -> None:
    """One log-mel spectrogram panel per named waveform [T] (e.g. source, reconstruction, conversions).

    All panels share one dB scale (the loudest panel's peak down 80 dB), so level differences show.
    """
    from vqaudio.evaluate.metrics import log_mel

    mels = {name: 10 / np.log(10) * log_mel(wav, sample_rate, n_mels=80).T for name, wav in waves.items()}
    top = max(float(m.max()) for m in mels.values())
    fig, axes = plt.subplots(len(waves), 1, figsize=(9, 1.9 * len(waves) + 0.4), squeeze=False, sharex=True)
    for ax, (name, mel_db) in zip(axes[:, 0], mels.items(), strict=True):
        ax.imshow(mel_db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, mel_db.shape[1] * 0.01, 0, 80))
        ax.set_ylabel("mel band")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def code_usage(path: str | os.PathLike, counts: list[int] | np.ndarray, title: str = "Code usage") -> None:
    """Bar chart of code frequencies [K], sorted from most to least used, with perplexity in the title."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts / max(counts.sum(), 1.0)
    nz = p[p > 0]
    perplexity = float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(p)), np.sort(p)[::-1], width=1.0, color="tab:blue")
    ax.set_xlabel(f"code rank ({int((counts > 0).sum())} of {len(counts)} used)")
    ax.set_ylabel("share of frames")
    ax.set_title(f"{title}: perplexity {perplexity:.1f}", fontsize=10)
    _save(fig, path)


def confusion_matrix(path: str | os.PathLike, confusion: list[list[int]] | np.ndarray, title: str = "") -> None:
    """Row-normalised phone confusion matrix [41, 41] (rows true, columns predicted); absent phones left out."""
    mat = np.asarray(confusion, dtype=np.float64)
    present = np.flatnonzero(mat.sum(axis=1) + mat.sum(axis=0))
    mat = mat[np.ix_(present, present)]
    norm = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1.0)
    names = [PHONES[i] for i in present]
    size = 3 + 0.18 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted phone")
    ax.set_ylabel("true phone")
    ax.set_title(title or "Phone confusion (row-normalised)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    _save(fig, path)


def write_evaluation_figures(out_dir: str | os.PathLike, results: dict, sources: dict[str, np.ndarray],
                             recon: dict[str, np.ndarray], convs: dict[tuple[str, str], np.ndarray],
                             sample_rate: int) -> list[str]:
    """The figures and audio samples of `vqaudio evaluate`; returns their paths relative to `out_dir`.

    plots/code_usage.png, plots/probe_confusion.png (first evaluation split), and per utterance of
    `sources`: plots/spectrogram_<utt>.png (source / reconstruction / conversions) and samples/<utt>_*.wav.
    """
    from pathlib import Path

    from vqaudio.audio import save_audio
    from vqaudio.evaluate.report import to_plain

    out, written = Path(out_dir), []
    plain = to_plain({"codec": results.get("codec"), "probe": results.get("probe")})
    if plain["codec"]:
        code_usage(out / "plots/code_usage.png", plain["codec"]["usage"]["counts"], "Code usage on test")
        written.append("plots/code_usage.png")
    splits = (plain["probe"] or {}).get("splits")
    if splits:
        confusion_matrix(out / "plots/probe_confusion.png", splits[0]["majority"]["confusion"],
                         f"Code→phone probe on {splits[0]['split']} (row-normalised)")
        written.append("plots/probe_confusion.png")
    for utt, wav in sources.items():
        waves = {"source": wav, "reconstruction": recon[utt]}
        waves.update({f"converted to {t}": w for (u, t), w in convs.items() if u == utt})
        spectrograms(out / f"plots/spectrogram_{utt}.png", waves, sample_rate, title=utt)
        written.append(f"plots/spectrogram_{utt}.png")
        for name, w in waves.items():
            rel = f"samples/{utt}_{name.replace('converted ', '').replace(' ', '_')}.wav"
            save_audio(out / rel, w, sample_rate)
            written.append(rel)
    return written
