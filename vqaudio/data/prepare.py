"""Corpus -> Kaldi-style data dirs `DATA/{train,dev,test,test_unseen}` plus `DATA/speakers.tsv`.

Two corpus layouts are detected automatically:

- VCTK 0.92 / the embedded corpus: `wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac` (mic2 as fallback),
  `txt/<spk>/<spk>_<nnn>.txt`, `speaker-info.txt`, optional `alignments/<spk>/<spk>_<nnn>.TextGrid`;
- one folder per speaker: `CORPUS/<speaker>/*.{wav,flac,ogg}`, optional `<name>.txt` / `<name>.lab` beside.

Splits are deterministic for a given `seed`: held-out speakers (the last ids, balanced by gender) form `test_unseen`;
for every training speaker the shared sentences (the same text read by most speakers, used by the
parallel-data evaluation) go to `test`, plus `test_per_speaker` and `dev_per_speaker` random utterances.
Real-corpus mess (no transcript, unreadable or empty audio, missing alignment, unknown speaker) is
counted in `PrepareSummary.skipped` and never raises.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from vqaudio.data.kaldi import DataDir, read_table
from vqaudio.data.textgrid import frame_labels, read_textgrid
from vqaudio.errors import DataError, VQAudioError
from vqaudio.fileio import atomic_write_text
from vqaudio.phones import FRAME_SHIFT
from vqaudio.progress import progress

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")
VCTK_AUDIO_DIRS = ("wav48_silence_trimmed", "wav48", "wav")
SPLITS = ("train", "dev", "test", "test_unseen")


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


# --------------------------------------------------------------------------- splits


def normalise_text(text: str) -> str:
    """Lower case, punctuation dropped, single spaces: the key that finds shared sentences."""
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def shared_texts(utts: list[Utterance]) -> set[str]:
    """Normalised texts read by at least 2 speakers and by at least half of the speakers with text."""
    readers: dict[str, set[str]] = {}
    for u in utts:
        if u.text:
            readers.setdefault(normalise_text(u.text), set()).add(u.speaker)
    n_speakers = len({u.speaker for u in utts if u.text})
    need = max(2, (n_speakers + 1) // 2)
    return {t for t, spks in readers.items() if len(spks) >= need}


def default_heldout(n_speakers: int) -> int:
    """About 10% of the speakers, at least 1 when there are 4 or more, none below 4."""
    return 0 if n_speakers < 4 else max(1, round(0.1 * n_speakers))


def choose_heldout(genders: dict[str, str | None], n: int) -> list[str]:
    """Pick `n` held-out speakers: the last ids of each gender in turn (largest group first) for balance.

    Taking them from the end keeps the first ids (p225, p226, ...) training speakers, so the examples
    `vqaudio convert --target-speaker p225` work on any corpus size, the embedded one included.
    """
    groups: dict[str, list[str]] = {}
    for spk in sorted(genders, reverse=True):
        groups.setdefault(genders[spk] or "?", []).append(spk)
    order = sorted(groups, key=lambda g: (g == "?", -len(groups[g]), g))
    picked: list[str] = []
    while len(picked) < n and any(groups.values()):
        for g in order:
            if groups[g] and len(picked) < n:
                picked.append(groups[g].pop(0))
    return sorted(picked)


def split_speaker(utts: list[Utterance], shared: set[str], n_dev: int, n_test: int,
                  rng: random.Random) -> dict[str, list[Utterance]]:
    """Split one training speaker's utterances; shared sentences go to test, at least one stays in train."""
    is_shared = [u for u in utts if u.text and normalise_text(u.text) in shared]
    rest = [u for u in utts if not (u.text and normalise_text(u.text) in shared)]
    rng.shuffle(rest)
    n_dev = min(n_dev, max(0, len(rest) - 1))
    n_test = min(n_test, max(0, len(rest) - 1 - n_dev))
    return {"dev": rest[:n_dev], "test": is_shared + rest[n_dev:n_dev + n_test], "train": rest[n_dev + n_test:]}


def assign_splits(utts: list[Utterance], heldout: list[str], n_dev: int, n_test: int,
                  seed: int) -> tuple[dict[str, list[Utterance]], int]:
    """All utterances by split (deterministic for `seed`) and the number of shared texts."""
    splits: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    by_speaker: dict[str, list[Utterance]] = {}
    for u in sorted(utts, key=lambda u: u.utt.encode()):
        by_speaker.setdefault(u.speaker, []).append(u)
    train_utts = [u for u in utts if u.speaker not in heldout]
    shared = shared_texts(train_utts)
    for spk in sorted(by_speaker):
        if spk in heldout:
            splits["test_unseen"] += by_speaker[spk]
            continue
        rng = random.Random(f"{seed}:{spk}")
        for name, part in split_speaker(by_speaker[spk], shared, n_dev, n_test, rng).items():
            splits[name] += part
    return splits, len(shared)


# --------------------------------------------------------------------------- writing and checking


def _write_split(path: Path, utts: list[Utterance], speakers: dict[str, SpeakerInfo]) -> None:
    data = DataDir(
        path=path,
        wav_scp={u.utt: str(u.audio) for u in utts},
        utt2spk={u.utt: u.speaker for u in utts},
        text={u.utt: u.text for u in utts if u.text},
        spk2gender={s: speakers[s].gender for s in {u.speaker for u in utts}
                    if s in speakers and speakers[s].gender},
        phone_ali={u.utt: u.phone_ali for u in utts if u.phone_ali},
    )
    data.save()
    for name, table in (("text", data.text), ("spk2gender", data.spk2gender), ("phone_ali", data.phone_ali)):
        if not table:
            (path / name).unlink(missing_ok=True)  # stale from an earlier run


def _remove_split(path: Path) -> None:
    """Remove the tables of a split left by an earlier run (its speakers may now be training speakers)."""
    for name in ("wav.scp", "utt2spk", "spk2utt", "text", "spk2gender", "phone_ali"):
        (path / name).unlink(missing_ok=True)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def write_speakers_tsv(path: Path, speakers: list[str], info: dict[str, SpeakerInfo]) -> None:
    """`speaker<TAB>gender<TAB>free text`, one line per speaker, sorted; unknown gender is empty."""
    lines = []
    for spk in sorted(speakers, key=str.encode):
        si = info.get(spk, SpeakerInfo(spk))
        lines.append(f"{spk}\t{si.gender or ''}\t{' '.join(si.info.split())}\n")
    atomic_write_text(path, "".join(lines))


def validate_data_dir(path: str | os.PathLike) -> list[str]:
    """The checks of Kaldi's utils/validate_data_dir.sh that apply here; returns the problems found."""
    p = Path(path)
    problems: list[str] = []
    if not (p / "wav.scp").is_file() or not (p / "utt2spk").is_file():
        return [f"{p}: wav.scp or utt2spk missing"]
    tables = {}
    for name in ("wav.scp", "utt2spk", "spk2utt", "text", "spk2gender", "phone_ali"):
        f = p / name
        if not f.is_file():
            continue
        keys = [line.split(" ", 1)[0] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        if keys != sorted(keys, key=str.encode) or len(set(keys)) != len(keys):
            problems.append(f"{name}: not sorted in C order or has duplicate keys")
        tables[name] = read_table(f) if len(set(keys)) == len(keys) else {}
    utt2spk, wav = tables["utt2spk"], tables["wav.scp"]
    if set(wav) != set(utt2spk):
        problems.append("wav.scp and utt2spk list different utterances")
    for utt, spk in utt2spk.items():
        if not utt.startswith(spk):
            problems.append(f"utt2spk: utterance {utt} is not prefixed by its speaker {spk}")
    expected = {}
    for utt in sorted(utt2spk, key=str.encode):
        expected.setdefault(utt2spk[utt], []).append(utt)
    if "spk2utt" not in tables or {s: v.split() for s, v in tables["spk2utt"].items()} != expected:
        problems.append("spk2utt is missing or does not match utt2spk")
    for name in ("text", "phone_ali"):
        extra = set(tables.get(name, {})) - set(utt2spk)
        if extra:
            problems.append(f"{name}: {len(extra)} utterance(s) not in utt2spk, e.g. {min(extra)}")
    if set(tables.get("spk2gender", {})) - set(expected):
        problems.append("spk2gender names speakers not in utt2spk")
    bad = [g for g in tables.get("spk2gender", {}).values() if g not in ("m", "f")]
    if bad:
        problems.append(f"spk2gender: gender must be m or f, got {bad[0]!r}")
    return problems


def prepare(corpus_dir: str | os.PathLike, data_dir: str | os.PathLike, alignments: str | os.PathLike | None = None,
            heldout_speakers: int | None = None, dev_per_speaker: int = 2, test_per_speaker: int = 3,
            seed: int = 0, show_progress: bool = True) -> PrepareSummary:
    """Turn a corpus into `data_dir/{train,dev,test,test_unseen}` and `data_dir/speakers.tsv`."""
    corpus, out = Path(corpus_dir), Path(data_dir)
    if not corpus.is_dir():
        raise DataError(f"{corpus}: corpus directory not found")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if min(dev_per_speaker, test_per_speaker) < 0 or (heldout_speakers or 0) < 0:
        raise DataError("--dev-per-speaker, --test-per-speaker and --heldout-speakers must be >= 0")
    summary = PrepareSummary(layout=detect_layout(corpus))
    ali_dir = Path(alignments) if alignments is not None else corpus / "alignments"
    if alignments is not None and not ali_dir.is_dir():
        raise DataError(f"{ali_dir}: alignments directory not found")
    utts = scan_corpus(corpus, summary, ali_dir if ali_dir.is_dir() else None, show_progress)
    if not utts:
        raise DataError(f"{corpus}: none of the audio files is readable")
    speakers = sorted({u.speaker for u in utts})
    info = read_speaker_info(corpus / "speaker-info.txt")
    info |= {s: info[s[1:]] for s in speakers if s not in info and s[1:] in info}  # VCTK 0.80 ids: `225`
    for spk in speakers:
        if spk not in info or info[spk].gender is None:
            summary.note("speaker gender unknown", spk)
    n_out = default_heldout(len(speakers)) if heldout_speakers is None else heldout_speakers
    if n_out >= len(speakers):
        raise DataError(f"--heldout-speakers {n_out}: the corpus has only {len(speakers)} speaker(s)")
    heldout = choose_heldout({s: info[s].gender if s in info else None for s in speakers}, n_out)
    splits, summary.shared_sentences = assign_splits(utts, heldout, dev_per_speaker, test_per_speaker, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        summary.speakers[name] = len({u.speaker for u in part})
        summary.utterances[name] = len(part)
        summary.hours[name] = sum(u.duration for u in part) / 3600
        if part:
            _write_split(out / name, part, info)
        else:
            _remove_split(out / name)
    write_speakers_tsv(out / "speakers.tsv", speakers, info)
    summary.aligned = sum(u.phone_ali is not None for u in utts) / len(utts)
    return summary
