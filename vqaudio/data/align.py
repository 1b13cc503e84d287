"""Forced alignment with PocketSphinx 5 (its bundled US-English model): transcripts -> phone TextGrids.

For data dirs whose utterances have text but no `phone_ali` (real VCTK without MFA). Two passes per
utterance, as PocketSphinx documents: a word-level alignment (`set_align_text`), then a phone-level one
(`set_alignment`). When the phone pass fails, each word's dictionary phones share its word segment evenly
("coarse"). Words missing from CMUdict get a letter-to-sound guess. CMU labels (`AH0`, `SIL`, `+NSN+`) are
mapped onto the 41-phone inventory by `vqaudio.phones.normalise_phone`.

    aligner = Aligner()
    result = aligner.align(load_audio(path, 16000), "Please call Stella.")
    write_textgrid("p225_001.TextGrid", result.alignment)
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqaudio.audio import load_audio
from vqaudio.data.corpus import alignment_labels, audio_duration
from vqaudio.data.kaldi import DataDir
from vqaudio.data.prepare import SPLITS
from vqaudio.data.textgrid import Alignment, Interval, write_textgrid
from vqaudio.errors import DataError, VQAudioError
from vqaudio.phones import normalise_phone
from vqaudio.progress import progress

SAMPLE_RATE = 16000  # the acoustic model's rate
FRAME_RATE = 100  # PocketSphinx frames per second
# Decoder settings tried in turn. Optional silences between words (fillers) sometimes make the alignment
# search lose the final state; without them, or with wider beams, it is found.
RETRIES: tuple[dict, ...] = ({}, {"fsgusefiller": False}, {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80})
PAD_SECONDS = 0.1  # silence added at both ends: the model expects to start and end in silence
DITHER = 1e-4  # digital silence (exact zeros) breaks the log-energy features; eSpeak audio has lots of it
DIGITS = "zero one two three four five six seven eight nine".split()

# Greedy letter-to-sound rules for words CMUdict lacks: longest spelling first. A rough guess, but the
# aligner then places the word's sounds in the right stretch of audio.
_LTS = {
    "tch": "CH", "igh": "AY", "sh": "SH", "ch": "CH", "th": "TH", "ph": "F", "ng": "NG", "ck": "K", "qu": "K W",
    "wh": "W", "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "ai": "EY", "ay": "EY", "oi": "OY",
    "oy": "OY", "au": "AO", "aw": "AO", "er": "ER", "ir": "ER", "ur": "ER", "a": "AE", "b": "B", "c": "K",
    "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M",
    "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W",
    "x": "K S", "y": "IY", "z": "Z",
}  # fmt: skip


def letter_to_sound(word: str) -> str:
    """A rough ARPAbet guess for an out-of-dictionary word, e.g. `blorf` -> `B L AA R F`."""
    w = re.sub(r"[^a-z]", "", word.lower())
    w = re.sub(r"([b-df-hj-np-tv-z])\1", r"\1", w)  # doubled consonants sound once
    if len(w) > 3 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]  # silent final e
    phones, i = [], 0
    while i < len(w):
        for n in (3, 2, 1):
            if w[i:i + n] in _LTS:
                piece = "Y" if w[i:i + n] == "y" and i == 0 else _LTS[w[i:i + n]]
                phones.append(piece)
                i += n
                break
    return " ".join(phones) or "AH"


def words_of(text: str) -> list[str]:
    """Lower-case words for the aligner: punctuation dropped, hyphens split, digits spelled one by one."""
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text.lower())
    return re.sub(r"[^a-z' ]+", " ", text.replace("-", " ")).replace(" '", " ").split()


@dataclass
class AlignResult:
    alignment: Alignment
    coarse: bool = False  # phone pass failed: phones spread evenly over their word
    oov: list[str] = field(default_factory=list)  # words guessed by letter-to-sound


@dataclass
class AlignSummary:
    aligned: int = 0  # TextGrids written
    coarse: int = 0  # of which with evenly spread phones
    failed: int = 0  # no alignment found
    no_text: int = 0  # utterances without a transcript
    reused: int = 0  # TextGrids already present
    oov: Counter = field(default_factory=Counter)  # out-of-dictionary word -> count
    filled: dict[str, int] = field(default_factory=dict)  # data dir -> utterances with phone_ali
    examples: list[str] = field(default_factory=list)  # first failed utterances


class Aligner:
    """PocketSphinx forced aligner; one per process (the decoder keeps its dictionary between utterances)."""

    def __init__(self) -> None:
        self._decoders: list = [self._decoder(RETRIES[0])] + [None] * (len(RETRIES) - 1)

    @staticmethod
    def _decoder(beams: dict):
        from pocketsphinx import Decoder, get_model_path

        return Decoder(hmm=get_model_path("en-us/en-us"), dict=get_model_path("en-us/cmudict-en-us.dict"),
                       lm=None, samprate=SAMPLE_RATE, loglevel="FATAL", **beams)

    def _prepare_words(self, words: list[str]) -> list[str]:
        oov = []
        for i, d in enumerate(self._decoders):
            if d is None:
                self._decoders[i] = d = self._decoder(RETRIES[i])
            for w in words:
                if d.lookup_word(w) is None:
                    d.add_word(w, letter_to_sound(w), True)
                    oov.append(w)
        return sorted(set(oov))

    def align(self, wav: np.ndarray, text: str) -> AlignResult | None:
        """Align `text` to `wav` ([T] float at 16 kHz); None when no alignment is found."""
        words = words_of(text)
        if not words:
            return None
        oov = self._prepare_words(words)
        pcm = padded_pcm(wav)
        duration = len(wav) / SAMPLE_RATE
        fallback = None
        for d in self._decoders:
            segments = _word_pass(d, pcm, " ".join(words))
            if segments is None:
                continue
            phones = _phone_pass(d, pcm)
            if phones is not None:
                return AlignResult(_alignment(segments, phones, duration), False, oov)
            fallback = fallback or AlignResult(_alignment(segments, _spread_phones(d, segments), duration), True, oov)
        return fallback


def _alignment(segments: list[tuple[str, float, float]], phones: list[Interval], duration: float) -> Alignment:
    """Alignment of the unpadded audio from padded word segments and phones (filler words dropped)."""
    words = [Interval(s, e, re.sub(r"\(\d+\)$", "", w)) for w, s, e in segments if not w.startswith(("<", "+", "["))]
    return Alignment(duration=duration, phones=_shift(phones, duration), words=_shift(words, duration))


def padded_pcm(wav: np.ndarray) -> bytes:
    """16-bit PCM of `wav` with PAD_SECONDS of (dithered) silence at both ends; deterministic."""
    pad = np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)
    x = np.concatenate([pad, np.asarray(wav, np.float32), pad])
    x = x + DITHER * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _shift(intervals: list[Interval], duration: float) -> list[Interval]:
    """Undo the padding: shift by -PAD_SECONDS, clip to [0, duration], drop what falls outside."""
    out = []
    for iv in intervals:
        start, end = max(0.0, iv.start - PAD_SECONDS), min(duration, iv.end - PAD_SECONDS)
        if end > start:
            out.append(Interval(start, end, iv.label))
    return out


def decode_pcm(d, pcm: bytes) -> bool:
    """Run PocketSphinx decoder `d` over 16-bit PCM `pcm`; False when it fails.

    The front end is re-initialised first: PocketSphinx otherwise carries feature state from one utterance to the
    next, and the same audio was heard differently after different audio (3 of 80 FSDD digits changed their
    hypothesis when the list was recognised in reverse; with the reset, none, and every hypothesis is a fresh
    decoder's; `tests/evaluate/test_real.py`)."""
    try:
        d.reinit_feat()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        return True
    except RuntimeError:
        return False


def _word_pass(d, pcm: bytes, text: str) -> list[tuple[str, float, float]] | None:
    """(word, start s, end s) of the word-level alignment, or None."""
    try:
        d.set_align_text(text)
    except RuntimeError:
        return None
    if not decode_pcm(d, pcm) or d.hyp() is None:
        return None
    return [(s.word, s.start_frame / FRAME_RATE, (s.end_frame + 1) / FRAME_RATE) for s in d.seg()
            if s.end_frame >= s.start_frame]


def _phone_pass(d, pcm: bytes) -> list[Interval] | None:
    try:
        d.set_alignment()
    except RuntimeError:
        return None
    if not decode_pcm(d, pcm):
        return None
    ali = d.get_alignment()
    if ali is None:
        return None
    return [Interval(p.start / FRAME_RATE, (p.start + p.duration) / FRAME_RATE, normalise_phone(p.name))
            for p in ali.phones() if p.duration > 0]


def _spread_phones(d, segments: list[tuple[str, float, float]]) -> list[Interval]:
    out = []
    for word, start, end in segments:
        if word in ("<s>", "</s>"):
            continue
        pron = (d.lookup_word(word) or "").split() if not word.startswith(("<", "+", "[")) else ["SIL"]
        step = (end - start) / max(1, len(pron))
        out += [Interval(start + i * step, start + (i + 1) * step, normalise_phone(p)) for i, p in enumerate(pron)]
    return out


def _data_dirs(path: Path) -> list[Path]:
    """`path` itself when it is a data dir, else its split sub-dirs (train, dev, test, test_unseen)."""
    if (path / "wav.scp").is_file():
        return [path]
    dirs = [path / s for s in SPLITS if (path / s / "wav.scp").is_file()]
    if not dirs:
        raise DataError(f"{path}: not a data dir (no wav.scp) and holds no {'/'.join(SPLITS)} data dirs")
    return dirs


def align_data_dir(path: str | os.PathLike, out: str | os.PathLike | None = None,
                   show_progress: bool = True) -> AlignSummary:
    """Align every utterance with text and no phone_ali; write `<out>/<spk>/<utt>.TextGrid`, fill `phone_ali`.

    `path` is a data dir or a DATA root of split dirs; `out` defaults to `path/alignments`. TextGrids
    already in `out` are reused, so an interrupted run resumes.
    """
    root = Path(path)
    dirs = _data_dirs(root)
    out_dir = Path(out) if out is not None else root / "alignments"
    summary = AlignSummary()
    datas = [DataDir.load(d) for d in dirs]
    todo = [(data, utt) for data in datas for utt in data.utterances if utt not in data.phone_ali]
    aligner: Aligner | None = None
    with progress(disable=None if show_progress else True) as bar:
        task = bar.add_task("align", total=len(todo), info="")
        for data, utt in todo:
            bar.advance(task)
            tg = out_dir / data.utt2spk[utt] / f"{utt}.TextGrid"
            if tg.is_file():
                summary.reused += 1
                continue
            if not data.text.get(utt):
                summary.no_text += 1
                continue
            aligner = aligner or Aligner()
            _align_one(aligner, data.wav_scp[utt], data.text[utt], tg, summary, utt)
            bar.update(task, info=f"failed {summary.failed}, coarse {summary.coarse}, oov {len(summary.oov)}")
    for data in datas:
        _fill_phone_ali(data, out_dir)
        summary.filled[str(data.path)] = len(data.phone_ali)
    return summary


def _align_one(aligner: Aligner, audio: str, text: str, tg: Path, summary: AlignSummary, utt: str) -> None:
    try:
        result = aligner.align(load_audio(audio, SAMPLE_RATE), text)
    except VQAudioError:
        result = None
    if result is None:
        summary.failed += 1
        if len(summary.examples) < 3:
            summary.examples.append(utt)
        return
    write_textgrid(tg, result.alignment)
    summary.aligned += 1
    summary.coarse += result.coarse
    summary.oov.update(result.oov)


def _fill_phone_ali(data: DataDir, out_dir: Path) -> None:
    """Add frame labels (as many as the audio's 10 ms frames) from `out_dir` TextGrids; rewrite the dir."""
    added = 0
    for utt in data.utterances:
        tg = out_dir / data.utt2spk[utt] / f"{utt}.TextGrid"
        if utt in data.phone_ali or not tg.is_file():
            continue
        try:
            data.phone_ali[utt] = alignment_labels(tg, audio_duration(Path(data.wav_scp[utt])))
            added += 1
        except VQAudioError:
            continue
    if added:
        data.save()
