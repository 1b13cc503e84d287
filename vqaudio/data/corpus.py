"""Reading a speech corpus: its utterances (audio, transcript, speaker), speaker information and alignments.

Two layouts are detected automatically:

- VCTK 0.92 / the embedded corpus: `wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac` (mic2 as fallback),
  `txt/<spk>/<spk>_<nnn>.txt`, `speaker-info.txt`, optional `alignments/<spk>/<spk>_<nnn>.TextGrid`;
- one folder per speaker: `CORPUS/<speaker>/*.{wav,flac,ogg}`, optional `<name>.txt` / `<name>.lab` beside
  (users' own voices; the shared real-speech sets).

Real-corpus mess (no transcript, unreadable or empty audio, missing alignment) is counted in a `PrepareSummary`
and never raises. `vqaudio.data.prepare` turns what is read here into Kaldi-style data dirs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from vqaudio.audio import AUDIO_SUFFIXES
from vqaudio.data.textgrid import frame_labels, read_textgrid
from vqaudio.errors import DataError, VQAudioError
from vqaudio.phones import FRAME_SHIFT
from vqaudio.progress import progress

VCTK_AUDIO_DIRS = ("wav48_silence_trimmed", "wav48", "wav")


@dataclass
class Utterance:
    utt: str  # `<speaker>_<name>`
    speaker: str
    audio: Path  # absolute
    text: str | None = None
    duration: float = 0.0  # seconds
    phone_ali: list[str] | None = None  # 10 ms frame labels


@dataclass
class SpeakerInfo:
    speaker: str
    gender: str | None = None  # "f", "m" or None (unknown)
    info: str = ""  # free text: age, accent, region, comments


@dataclass
class PrepareSummary:
    """What `prepare` wrote: per split counts and hours, aligned fraction, and what it skipped."""

    layout: str
    speakers: dict[str, int] = field(default_factory=dict)  # split -> speakers
    utterances: dict[str, int] = field(default_factory=dict)  # split -> utterances
    hours: dict[str, float] = field(default_factory=dict)  # split -> hours of audio
    aligned: float = 0.0  # fraction of utterances with phone_ali
    shared_sentences: int = 0  # distinct shared texts sent to test
    skipped: Counter = field(default_factory=Counter)  # problem kind -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem kind -> first few items

    def note(self, kind: str, item: str) -> None:
        self.skipped[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 3:
            self.examples[kind].append(item)


# --------------------------------------------------------------------------- corpus scanning


def _clean_id(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())


def detect_layout(corpus: Path) -> str:
    """`vctk` when a VCTK audio dir exists, else `folders` (one sub-folder of audio per speaker)."""
    if any((corpus / d).is_dir() for d in VCTK_AUDIO_DIRS):
        return "vctk"
    return "folders"


def _read_transcript(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return None
    return text or None


def _scan_vctk(corpus: Path) -> list[Utterance]:
    audio_dir = next(corpus / d for d in VCTK_AUDIO_DIRS if (corpus / d).is_dir())
    found: dict[str, tuple[int, Utterance]] = {}
    for spk_dir in sorted(p for p in audio_dir.iterdir() if p.is_dir()):
        spk = _clean_id(spk_dir.name)
        for f in sorted(spk_dir.iterdir()):
            if f.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            stem, rank = f.stem, 0
            m = re.fullmatch(r"(.*)_mic([12])", stem)
            if m:
                stem, rank = m.group(1), int(m.group(2))
            utt = _clean_id(stem if stem.startswith(spk) else f"{spk}_{stem}")
            if utt in found and found[utt][0] <= rank:
                continue  # mic1 before mic2
            text = _read_transcript(corpus / "txt" / spk_dir.name / f"{stem}.txt")
            found[utt] = (rank, Utterance(utt, spk, f.resolve(), text))
    return [u for _, u in found.values()]


def scan_folders(corpus: Path) -> list[Utterance]:
    """Utterances of CORPUS/<speaker>/<name>.{wav,flac,ogg}, with <name>.txt / .lab transcripts where present."""
    out: list[Utterance] = []
    for spk_dir in sorted(p for p in corpus.iterdir() if p.is_dir() and not p.name.startswith(".")):
        spk = _clean_id(spk_dir.name)
        for f in sorted(spk_dir.iterdir()):
            if f.suffix.lower() not in AUDIO_SUFFIXES or not f.is_file():
                continue
            stem = _clean_id(f.stem)
            utt = stem if stem.startswith(spk + "_") else f"{spk}_{stem}"
            text = _read_transcript(f.with_suffix(".txt")) or _read_transcript(f.with_suffix(".lab"))
            out.append(Utterance(utt, spk, f.resolve(), text))
    return out


def read_speaker_info(path: Path) -> dict[str, SpeakerInfo]:
    """Parse VCTK's `speaker-info.txt` (whitespace separated, header `ID AGE GENDER ...`).

    Comment lines (`;`, `#`) and extra columns are allowed; the free text keeps every column but
    ID and GENDER. Missing file: empty dict.
    """
    if not path.is_file():
        return {}
    header = ["ID", "AGE", "GENDER", "ACCENTS", "REGION", "COMMENTS"]
    out: dict[str, SpeakerInfo] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith((";", "#")):
            continue
        if tokens[0].upper() == "ID":
            header = [t.upper() for t in tokens]
            continue
        cols = {name: tokens[i] for i, name in enumerate(header[:-1]) if i < len(tokens)}
        gender = cols.get("GENDER", "").lower()[:1]
        parts = [f"age {cols['AGE']}"] if "AGE" in cols else []
        parts += [cols[n] for n in header[:-1] if n not in ("ID", "AGE", "GENDER") and n in cols]
        parts += tokens[len(header) - 1:]
        spk = _clean_id(tokens[0])
        out[spk] = SpeakerInfo(spk, gender if gender in ("f", "m") else None, " ".join(parts))
    return out


def audio_duration(path: Path) -> float:
    """Duration in seconds from the file header; checks that the first samples decode.

    Raises VQAudioError when the file is unreadable or holds no samples.
    """
    try:
        info = sf.info(str(path))
        sf.read(str(path), frames=64, dtype="float32")
    except Exception as e:
        raise VQAudioError(f"{path}: not a readable audio file ({str(e).strip().splitlines()[0]})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise VQAudioError(f"{path}: audio file is empty")
    if info.frames >= 2**62:  # length unknown to the header: decode it
        from vqaudio.audio import load_audio

        return len(load_audio(path, info.samplerate)) / info.samplerate
    return info.frames / info.samplerate


def find_alignment(ali_dir: Path, utt: Utterance) -> Path | None:
    """`<dir>/<spk>/<name>.TextGrid` (MFA layout) or `<dir>/<name>.TextGrid` (flat), name = utt id or audio stem."""
    for name in (utt.utt, utt.audio.stem):
        for cand in (ali_dir / utt.speaker / f"{name}.TextGrid", ali_dir / f"{name}.TextGrid"):
            if cand.is_file():
                return cand
    return None


def alignment_labels(textgrid: Path, duration: float) -> list[str]:
    """Frame labels of a TextGrid, as many as ceil(duration / 10 ms) (the audio's length rules)."""
    ali = read_textgrid(textgrid)
    ali.duration = duration
    return frame_labels(ali, FRAME_SHIFT)


def scan_corpus(corpus: Path, summary: PrepareSummary, ali_dir: Path | None = None,
                show_progress: bool = True) -> list[Utterance]:
    """Find every readable utterance with its duration, transcript and (when found) phone labels."""
    utts = _scan_vctk(corpus) if summary.layout == "vctk" else scan_folders(corpus)
    if not utts:
        raise DataError(f"{corpus}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found "
                        f"({'VCTK layout' if summary.layout == 'vctk' else 'expected CORPUS/<speaker>/*.wav'})")
    kept = []
    with progress(disable=None if show_progress else True) as bar:
        task = bar.add_task("scan", total=len(utts), info="")
        for u in utts:
            bar.advance(task)
            try:
                u.duration = audio_duration(u.audio)
            except VQAudioError:
                summary.note("unreadable or empty audio", str(u.audio))
                continue
            if u.text is None:
                summary.note("no transcript", u.utt)
            if ali_dir is not None:
                tg = find_alignment(ali_dir, u)
                if tg is None:
                    summary.note("no alignment", u.utt)
                else:
                    try:
                        u.phone_ali = alignment_labels(tg, u.duration)
                    except VQAudioError:
                        summary.note("unreadable alignment", str(tg))
            kept.append(u)
    return kept
