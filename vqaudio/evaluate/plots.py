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
    """One log-mel spectrogram panel per named waveform [T] (e.g. source, reconstruction, conversions)."""
    from vqaudio.evaluate.metrics import log_mel

    fig, axes = plt.subplots(len(waves), 1, figsize=(9, 1.9 * len(waves) + 0.4), squeeze=False, sharex=True)
    for ax, (name, wav) in zip(axes[:, 0], waves.items(), strict=True):
        mel_db = 10 / np.log(10) * log_mel(wav, sample_rate, n_mels=80).T
        ax.imshow(mel_db, origin="lower", aspect="auto", cmap="magma", vmin=mel_db.max() - 80, vmax=mel_db.max(),
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
