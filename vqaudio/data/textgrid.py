"""Praat TextGrid alignments with `words` and `phones` tiers, the format MFA writes for VCTK.

Phone labels are normalised onto the 41-phone inventory (`vqaudio.phones`) on read, so TextGrids
from MFA (`AH0`, `sp`, empty), PocketSphinx or the embedded corpus all read the same.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from vqaudio.errors import DataError
from vqaudio.fileio import atomic_path
from vqaudio.phones import FRAME_SHIFT, SILENCE, normalise_phone


@dataclass(frozen=True)
class Interval:
    start: float  # seconds
    end: float  # seconds
    label: str


@dataclass
class Alignment:
    """Word and phone intervals of one utterance; `duration` is the audio's length in seconds."""

    duration: float
    phones: list[Interval] = field(default_factory=list)
    words: list[Interval] = field(default_factory=list)


def write_textgrid(path: str | os.PathLike, alignment: Alignment) -> None:
    """Write `alignment` as a long-format TextGrid (tiers `words`, `phones`) atomically.

    Gaps between intervals are left blank, as Praat and MFA do; intervals are clipped to
    [0, duration] and zero-length ones dropped.
    """
    from praatio import textgrid

    duration = round(alignment.duration, 6)  # as the entries are rounded (else praatio prints a warning)
    tg = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=duration)
    for name, intervals in (("words", alignment.words), ("phones", alignment.phones)):
        entries = _clean(intervals, duration)
        tg.addTier(textgrid.IntervalTier(name, entries, 0.0, duration))
    with atomic_path(path) as tmp:
        tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")


def read_textgrid(path: str | os.PathLike) -> Alignment:
    """Read a TextGrid with a phones tier (named `phones`, or any tier whose name contains 'phone').

    Raises DataError when the file is unreadable or has no phone tier.
    """
    from praatio import textgrid

    p = Path(path)
    try:
        tg = textgrid.openTextgrid(str(p), includeEmptyIntervals=False, reportingMode="silence",
                                   duplicateNamesMode="rename")
    except Exception as e:
        raise DataError(f"{p}: not a readable TextGrid ({str(e).strip().splitlines()[0] if str(e) else e})") from None
    names = tg.tierNames
    phone_tier = next((n for n in names if n.lower() == "phones"), None) or next(
        (n for n in names if "phone" in n.lower()), None)
    if phone_tier is None:
        raise DataError(f"{p}: TextGrid has no phones tier (tiers: {', '.join(names) or 'none'})")
    word_tier = next((n for n in names if n.lower() == "words"), None)
    phones = [Interval(e.start, e.end, normalise_phone(e.label)) for e in tg.getTier(phone_tier).entries]
    words = [Interval(e.start, e.end, e.label) for e in tg.getTier(word_tier).entries] if word_tier else []
    return Alignment(duration=float(tg.maxTimestamp), phones=phones, words=words)


def frame_labels(alignment: Alignment, frame_shift: float = FRAME_SHIFT) -> list[str]:
    """One phone label per frame: frame i covers [i * shift, (i + 1) * shift); its label is the phone at
    the frame's centre, `sil` where no interval covers it. Returns ceil(duration / shift) labels."""
    n = math.ceil(round(alignment.duration / frame_shift, 6))
    labels = [SILENCE] * n
    for iv in alignment.phones:
        first = max(0, math.ceil(iv.start / frame_shift - 0.5))
        last = min(n, math.ceil(iv.end / frame_shift - 0.5))
        for i in range(first, last):
            labels[i] = iv.label
    return labels


def _clean(intervals: list[Interval], duration: float) -> list[tuple[float, float, str]]:
    out = []
    for iv in intervals:
        start, end = max(0.0, iv.start), min(duration, iv.end)
        if end - start > 1e-6 and iv.label:
            out.append((round(start, 6), round(end, 6), iv.label))
    return out
