"""Kaldi-style data directories: the one format every vqaudio command reads.

A data dir (`DATA_DIR/train`, `dev`, `test`, `test_unseen`) holds text tables, one
`key value` line each, sorted by key in C (byte) order as Kaldi's validate_data_dir.sh expects:

    wav.scp      utt-id  /abs/path/to/audio.{wav,flac}   (a path; Kaldi pipes are not supported)
    utt2spk      utt-id  speaker-id
    spk2utt      speaker-id  utt-id utt-id ...
    text         utt-id  transcript (optional per utterance)
    spk2gender   speaker-id  m|f
    phone_ali    utt-id  PH PH PH ...   (optional: frame-level labels, 10 ms frames, 41-phone inventory)

Utterance ids start with their speaker id (`p225_001`), so sorting by utterance also groups speakers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqaudio.errors import DataError
from vqaudio.fileio import atomic_write_text


def pick(items: Sequence, limit: int | None) -> list:
    """At most `limit` of `items`, evenly spaced (all of them when limit is None or 0)."""
    if not limit or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def read_table(path: str | os.PathLike, required: bool = True) -> dict[str, str]:
    """Read a `key value...` table into a dict (value is the rest of the line, stripped)."""
    p = Path(path)
    if not p.exists():
        if required:
            raise DataError(f"{p}: missing")
        return {}
    table: dict[str, str] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if key in table:
            raise DataError(f"{p}:{n}: duplicate key '{key}'")
        table[key] = value.strip()
    return table


def write_table(path: str | os.PathLike, table: dict[str, str]) -> None:
    """Write a table atomically, sorted by key in byte order (Kaldi's `LC_ALL=C sort`)."""
    keys = sorted(table, key=lambda k: k.encode("utf-8"))
    atomic_write_text(path, "".join(f"{k} {table[k]}\n" if table[k] else f"{k}\n" for k in keys))


@dataclass
class DataDir:
    """An in-memory Kaldi data dir; `load` checks its consistency."""

    path: Path
    wav_scp: dict[str, str]
    utt2spk: dict[str, str]
    text: dict[str, str] = field(default_factory=dict)
    spk2gender: dict[str, str] = field(default_factory=dict)
    phone_ali: dict[str, list[str]] = field(default_factory=dict)

    @property
    def utterances(self) -> list[str]:
        return sorted(self.wav_scp)

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()))

    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utterances:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> DataDir:
        p = Path(path)
        if not p.is_dir():
            raise DataError(f"{p}: not a data directory")
        ali = read_table(p / "phone_ali", required=False)
        data = cls(
            path=p,
            wav_scp=read_table(p / "wav.scp"),
            utt2spk=read_table(p / "utt2spk"),
            text=read_table(p / "text", required=False),
            spk2gender=read_table(p / "spk2gender", required=False),
            phone_ali={k: v.split() for k, v in ali.items()},
        )
        data.validate()
        return data

    def validate(self) -> None:
        """Raise DataError unless wav.scp and utt2spk cover the same utterances."""
        if not self.wav_scp:
            raise DataError(f"{self.path}: wav.scp is empty")
        if set(self.wav_scp) != set(self.utt2spk):
            diff = sorted(set(self.wav_scp) ^ set(self.utt2spk))
            raise DataError(f"{self.path}: wav.scp and utt2spk differ on {len(diff)} utterance(s), e.g. {diff[0]}")
        extra = set(self.text) - set(self.wav_scp)
        if extra:
            raise DataError(f"{self.path}: text names {len(extra)} utterance(s) not in wav.scp, e.g. {min(extra)}")

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write every table (and spk2utt) into `path` (default: self.path)."""
        p = Path(path or self.path)
        self.validate()  # before mkdir: a refused save leaves nothing behind
        p.mkdir(parents=True, exist_ok=True)
        write_table(p / "wav.scp", self.wav_scp)
        write_table(p / "utt2spk", self.utt2spk)
        write_table(p / "spk2utt", {s: " ".join(u) for s, u in self.spk2utt().items()})
        if self.text:
            write_table(p / "text", self.text)
        if self.spk2gender:
            write_table(p / "spk2gender", self.spk2gender)
        if self.phone_ali:
            write_table(p / "phone_ali", {k: " ".join(v) for k, v in self.phone_ali.items()})
