"""Corpus -> Kaldi-style data dirs `DATA/{train,dev,test,test_unseen}` plus `DATA/speakers.tsv`.

The corpus is read by `vqaudio.data.corpus` (VCTK 0.92 / the embedded corpus, or one folder per speaker).

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
from pathlib import Path

from vqaudio.data.corpus import (
    PrepareSummary,
    SpeakerInfo,
    Utterance,
    detect_layout,
    read_speaker_info,
    scan_corpus,
)
from vqaudio.data.kaldi import DataDir, read_table
from vqaudio.errors import DataError
from vqaudio.fileio import atomic_write_text

SPLITS = ("train", "dev", "test", "test_unseen")


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
