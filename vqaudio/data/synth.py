"""The embedded multi-speaker English corpus: eSpeak NG voices reading generated sentences, in VCTK 0.92 layout.

    OUT/wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac   (16-bit FLAC at `sample_rate`, not 48 kHz)
    OUT/txt/<spk>/<spk>_<nnn>.txt                          (the sentence, one line)
    OUT/alignments/<spk>/<spk>_<nnn>.TextGrid              (words + phones tiers, 41-phone labels)
    OUT/speaker-info.txt                                    (VCTK columns + the eSpeak voice of each id)

Speakers are combinations of an eSpeak English accent, a voice variant (`voices/!v`), a base pitch, a
pitch range and a speaking rate, in a fixed order that mixes accents and genders from the first ids on.
Utterances `_001`.. `_00K` are the K shared sentences; the rest differ per speaker. Alignments come from
eSpeak's own phoneme events. Leading and trailing silence is trimmed to `MARGIN` seconds as in VCTK's
silence-trimmed release. Same arguments give byte-identical files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqaudio.audio import resample, save_audio
from vqaudio.data import espeak
from vqaudio.data.sentences import generate_sentences
from vqaudio.data.textgrid import Alignment, Interval, write_textgrid
from vqaudio.errors import DataError
from vqaudio.fileio import atomic_write_text
from vqaudio.phones import SILENCE

MARGIN = 0.1  # seconds of silence kept before the first and after the last phone
PEAK = 0.7  # every utterance is scaled to this peak amplitude
VOLUME = 40  # eSpeak volume (100 = normal): at 100 a quarter of the voices clip; at 40 none reach 0.7 of full scale
AUDIO_DIR, TEXT_DIR, ALIGN_DIR = "wav48_silence_trimmed", "txt", "alignments"
MARKER = "# Synthetic speech corpus made by vqaudio"  # first line of speaker-info.txt

# (eSpeak language, VCTK-style ACCENTS token, REGION)
ACCENTS: tuple[tuple[str, str, str], ...] = (
    ("en-us", "American", "General American"),
    ("en-gb-x-rp", "English", "Received Pronunciation"),
    ("en-gb-scotland", "Scottish", "Scotland"),
    ("en-029", "Caribbean", "West Indies"),
    ("en-us-nyc", "American", "New York City"),
    ("en", "English", "Southern England"),
    ("en-gb-x-gbclan", "English", "Lancashire"),
    ("en-gb-x-gbcwmd", "English", "West Midlands"),
)
FEMALE_VARIANTS = ("f1", "f3", "Annie", "f2", "steph", "f4", "Alicia", "f5", "linda", "Andrea", "aunty", "anika")
MALE_VARIANTS = ("m1", "m3", "klatt", "m2", "Andy", "m7", "klatt2", "m4", "m6", "klatt4", "m8", "Lee")


@dataclass(frozen=True)
class SpeakerVoice:
    """One synthetic speaker: an eSpeak accent and variant plus prosody settings."""

    id: str  # VCTK-style id, p225...
    gender: str  # "F" or "M"
    language: str  # eSpeak language, e.g. en-gb-scotland
    variant: str  # eSpeak voice variant from voices/!v, e.g. f3
    accent: str  # VCTK ACCENTS column
    region: str  # VCTK REGION column
    pitch: int  # eSpeak base pitch 0..100 (50 = the variant's own)
    pitch_range: int  # 0..100
    rate: int  # words per minute

    @property
    def voice(self) -> str:
        return f"{self.language}+{self.variant}"

    def info_line(self) -> str:
        """A speaker-info.txt row: ID AGE GENDER ACCENTS REGION COMMENTS (AGE is `-`: synthetic)."""
        return (f"{self.id}  -  {self.gender}  {self.accent}  {self.region}  espeak:{self.voice} "
                f"variant={self.variant} pitch={self.pitch} range={self.pitch_range} rate={self.rate}")


def _make_speakers() -> tuple[SpeakerVoice, ...]:
    """48 speakers: 8 accents x 6; genders alternate, shifting every 8 ids so each accent gets both."""
    out: list[SpeakerVoice] = []
    counts = {"F": 0, "M": 0}
    for i in range(48):
        language, accent, region = ACCENTS[i % len(ACCENTS)]
        gender = "F" if (i + i // len(ACCENTS)) % 2 == 0 else "M"
        variants = FEMALE_VARIANTS if gender == "F" else MALE_VARIANTS
        k = counts[gender]
        counts[gender] += 1
        # A variant is used twice at most; its second use is pitched and paced apart from its first.
        second = k >= len(variants)
        out.append(SpeakerVoice(
            id=f"p{225 + i}", gender=gender, language=language, variant=variants[k % len(variants)],
            accent=accent, region=region, pitch=(66 if second else 42) + (k * 7) % 12,
            pitch_range=35 + (i * 13) % 45, rate=150 + (i * 11) % 45,
        ))
    return tuple(out)


SPEAKERS: tuple[SpeakerVoice, ...] = _make_speakers()


def select_speakers(count: int) -> list[SpeakerVoice]:
    """The first `count` speakers of the fixed, diverse order."""
    if not 1 <= count <= len(SPEAKERS):
        raise DataError(f"--speakers {count}: the embedded corpus has 1 to {len(SPEAKERS)} speakers")
    return list(SPEAKERS[:count])


# --------------------------------------------------------------------------- one utterance


@dataclass
class Utterance:
    """Audio and alignment of one synthesised sentence."""

    audio: np.ndarray  # float32 [T] at sample_rate
    sample_rate: int
    alignment: Alignment  # seconds; duration == T / sample_rate


def render_utterance(text: str, speaker: SpeakerVoice, sample_rate: int = 16000) -> Utterance:
    """Synthesise `text` with `speaker`, align it from eSpeak's events, trim silences to `MARGIN`."""
    syn = espeak.synthesize(text, voice=speaker.voice, pitch=speaker.pitch, pitch_range=speaker.pitch_range,
                            rate=speaker.rate, volume=VOLUME)
    phones, words = _intervals(syn, text)
    speech = [iv for iv in phones if iv.label != SILENCE]
    if not speech:
        raise DataError(f"eSpeak produced no phonemes for {text!r} with voice {speaker.voice}")
    audio = resample(syn.audio, syn.sample_rate, sample_rate)
    first = int(round((speech[0].start - MARGIN) * sample_rate))
    last = int(round((speech[-1].end + MARGIN) * sample_rate))
    audio = _crop(audio, first, last)
    peak = float(np.abs(audio).max()) or 1.0
    audio = (audio * (PEAK / peak)).astype(np.float32)
    # Rounded to the microsecond the TextGrid is written with (praatio warns when its bounds change).
    duration = round(len(audio) / sample_rate, 6)
    shift = first / sample_rate
    inner = _shift(_strip_silence(phones), shift)
    alignment = Alignment(duration=duration, phones=_fill_silence(inner, duration), words=_shift(words, shift))
    return Utterance(audio=audio, sample_rate=sample_rate, alignment=alignment)


def _strip_silence(phones: list[Interval]) -> list[Interval]:
    """Drop leading and trailing `sil` intervals (the trimmed margins are re-filled as `sil`); inner pauses stay."""
    start = next(i for i, iv in enumerate(phones) if iv.label != SILENCE)
    end = max(i for i, iv in enumerate(phones) if iv.label != SILENCE)
    return phones[start:end + 1]


def _intervals(syn: espeak.Synthesis, text: str) -> tuple[list[Interval], list[Interval]]:
    """Phone and word intervals in seconds of the raw eSpeak audio."""
    sr = syn.sample_rate
    events = syn.phonemes
    bounds = [ev.sample for ev in events] + [max(syn.end_sample, events[-1].sample if events else 0)]
    phones: list[Interval] = []
    for ev, start, end in zip(events, bounds[:-1], bounds[1:], strict=True):
        labels = espeak.to_arpabet(ev.name)
        if end <= start:
            continue
        if labels is None:  # merge into the previous phone
            if phones:
                phones[-1] = Interval(phones[-1].start, end / sr, phones[-1].label)
            continue
        phones.extend(_split(start / sr, end / sr, labels))
    words = []
    for i, w in enumerate(syn.words):
        word_end = syn.words[i + 1].sample / sr if i + 1 < len(syn.words) else bounds[-1] / sr
        inside = [p for p in phones if w.sample / sr - 1e-9 <= p.start < word_end and p.label != SILENCE]
        label = text[w.text_start:w.text_start + w.length].strip(".,?!;:\"' ")
        if inside and label:
            words.append(Interval(inside[0].start, inside[-1].end, label))
    return phones, words


def _split(start: float, end: float, labels: tuple[str, ...]) -> list[Interval]:
    """One interval per label: a pair shares time 60/40 (vowel before its glide), more share equally."""
    if len(labels) == 1:
        return [Interval(start, end, labels[0])]
    weights = [0.6, 0.4] if len(labels) == 2 else [1.0 / len(labels)] * len(labels)
    out, t = [], start
    for label, w in zip(labels, weights, strict=True):
        nxt = t + w * (end - start)
        out.append(Interval(t, nxt, label))
        t = nxt
    return out


def _crop(audio: np.ndarray, first: int, last: int) -> np.ndarray:
    """audio[first:last], zero-padded where the range runs past either end."""
    pad_left, pad_right = max(0, -first), max(0, last - len(audio))
    body = audio[max(0, first):min(len(audio), last)]
    return np.concatenate([np.zeros(pad_left, np.float32), body, np.zeros(pad_right, np.float32)])


def _shift(intervals: list[Interval], offset: float) -> list[Interval]:
    return [Interval(iv.start - offset, iv.end - offset, iv.label) for iv in intervals]


def _fill_silence(phones: list[Interval], duration: float) -> list[Interval]:
    """Add `sil` from 0 to the first phone and from the last phone to `duration`."""
    out = [Interval(0.0, phones[0].start, SILENCE)] + phones + [Interval(phones[-1].end, duration, SILENCE)]
    return [iv for iv in out if iv.end - iv.start > 1e-6]


# --------------------------------------------------------------------------- the corpus


@dataclass
class CorpusSummary:
    speakers: int
    utterances: int
    seconds: float  # total audio duration


def corpus_sentences(speaker_ids: list[str], utterances: int, shared: int, seed: int) -> dict[str, list[str]]:
    """Sentence list per speaker: the `shared` common sentences first, then the speaker's own."""
    if not 0 <= shared <= utterances:
        raise DataError(f"--shared {shared}: must be between 0 and --utterances ({utterances})")
    common = generate_sentences(shared, seed=f"{seed}-shared")
    return {spk: common + generate_sentences(utterances - shared, seed=f"{seed}-{spk}") for spk in speaker_ids}


def build_corpus(out_dir: str | os.PathLike, speakers: int = 8, utterances: int = 40, seed: int = 0,
                 shared: int = 5, sample_rate: int = 16000, force: bool = False,
                 show_progress: bool | None = None) -> CorpusSummary:
    """Write the embedded corpus into `out_dir` (layout in the module docstring).

    `speakers` takes the first N of `SPEAKERS`; each reads `utterances` sentences, the first `shared`
    of them common to all. Raises DataError for out-of-range options.

    Refuses a non-empty `out_dir` unless it holds an earlier corpus of ours and `force` is set,
    in which case that corpus is replaced.
    """
    from vqaudio.progress import progress

    if utterances < 1 or utterances > 999:
        raise DataError(f"--utterances {utterances}: must be between 1 and 999")
    if not 8000 <= sample_rate <= 48000:
        raise DataError(f"--sample-rate {sample_rate}: must be between 8000 and 48000 Hz")
    voices = select_speakers(speakers)
    texts = corpus_sentences([v.id for v in voices], utterances, shared, seed)
    out = Path(out_dir)
    _prepare_dir(out, force)
    total = 0.0
    disable = None if show_progress is None else not show_progress  # None: shown when stderr is a terminal
    with progress(disable=disable) as bar:
        task = bar.add_task("synth", total=len(voices) * utterances, info="")
        for voice in voices:
            for n, text in enumerate(texts[voice.id], 1):
                total += _write_utterance(out, voice, n, text, sample_rate)
                bar.update(task, advance=1, info=voice.id)
    atomic_write_text(out / "speaker-info.txt", speaker_info(voices, sample_rate))
    return CorpusSummary(speakers=len(voices), utterances=len(voices) * utterances, seconds=total)


def _write_utterance(out: Path, voice: SpeakerVoice, n: int, text: str, sample_rate: int) -> float:
    """Render and write one utterance's audio, text and TextGrid; returns its duration in seconds."""
    utt = f"{voice.id}_{n:03d}"
    rendered = render_utterance(text, voice, sample_rate)
    save_audio(out / AUDIO_DIR / voice.id / f"{utt}_mic1.flac", rendered.audio, sample_rate)
    atomic_write_text(out / TEXT_DIR / voice.id / f"{utt}.txt", text + "\n")
    write_textgrid(out / ALIGN_DIR / voice.id / f"{utt}.TextGrid", rendered.alignment)
    return rendered.alignment.duration


def _prepare_dir(out: Path, force: bool) -> None:
    """Refuse to write into a non-empty folder, except over our own corpus with `force`."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    info = out / "speaker-info.txt"
    ours = info.exists() and info.read_text(encoding="utf-8", errors="replace").startswith(MARKER)
    if not ours:
        raise DataError(f"{out}: not empty and not an embedded corpus; choose an empty or new folder")
    if not force:
        raise DataError(f"{out}: already holds an embedded corpus; pass --force to replace it")
    for sub in (AUDIO_DIR, TEXT_DIR, ALIGN_DIR):
        shutil.rmtree(out / sub, ignore_errors=True)
    info.unlink()


def speaker_info(voices: list[SpeakerVoice], sample_rate: int) -> str:
    """speaker-info.txt: a '#' header saying what made the corpus, VCTK's column line, one row per speaker."""
    from vqaudio import __version__

    header = (f"{MARKER} {__version__} with eSpeak NG {espeak.version()}: not recorded speech. "
              f"Audio is {sample_rate} Hz 16-bit FLAC; the folder name {AUDIO_DIR} is kept for VCTK 0.92 "
              f"layout compatibility. AGE is '-'; COMMENTS give the eSpeak voice, pitch, range and rate.")
    rows = ["ID  AGE  GENDER  ACCENTS  REGION  COMMENTS"] + [v.info_line() for v in voices]
    return header + "\n" + "\n".join(rows) + "\n"
