"""What PocketSphinx hears in `vqaudio evaluate-real`: word accuracy of the real sources, their WORLD copies, their
reconstructions and their conversions, with the model as it is and with each speaker's own MLLR transform.

The speaker-adapted figures (`vqaudio.evaluate.adapt`) give every speaker the same `adapt_seconds` of its own speech
that is not scored: a real speaker's unscored recordings, a model voice's train utterances of DATA_DIR (its genuine
speech, never the model's rendering of it). Each audio is recognised with the transform of the voice it speaks in,
estimated through the channel it is heard through: a source with the real speaker's from its recordings; for the
vocoder kind, whose output WORLD renders, a WORLD copy of a source with the real speaker's from WORLD copies of its
recordings, and a reconstruction or conversion with its voice's from WORLD copies of the voice's utterances (analysis
and synthesis, no model: the transform learns the voice and the vocoder, not the model's errors). Measured on
held-out FSDD digits (egs/vctk/RESULTS.md, "The recogniser kept state; speaker-adapted recognition"): the voices'
transforms from WORLD copies hear conversions 1.9 points better than transforms from the raw voices, with which
the Klatt voice p230's reconstructions lost 2.8 points.

    heard = Heard(16000, scored, pairs, convs, recon, copies)
    heard.word_figures(lambda speaker, vocoded: plain_recognizer, nearest)
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vqaudio.errors import DataError

if TYPE_CHECKING:
    from vqaudio.evaluate.recognize import WordRecognizer


@dataclass
class RealUtterance:
    """One real recording: its id, speaker, words, and audio [T] at the model's rate cut to whole codes."""

    utt: str
    speaker: str
    words: list[str]
    wav: np.ndarray


FAILURES = (DataError, OSError, RuntimeError, ValueError, struct.error)  # a speaker's adaptation failing this way
POOL = 4  # utterances offered to a speaker's adaptation: up to POOL x adapt_seconds of audio (bw aligns only some)


def to_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """`wav` [T] at `sample_rate` resampled to PocketSphinx's rate (16 kHz)."""
    from vqaudio.audio import resample
    from vqaudio.data.align import SAMPLE_RATE

    return resample(wav, sample_rate, SAMPLE_RATE)


@dataclass
class Heard:
    """The audio `evaluate-real` recognises (all [T] at `sample_rate`); `pairs` are (source, target voice)."""

    sample_rate: int
    scored: list[RealUtterance]
    pairs: list[tuple[RealUtterance, str]]
    conversions: list[np.ndarray]
    reconstructions: list[np.ndarray]
    copies: list[np.ndarray] | None  # WORLD copies of the sources (vocoder kind only)
    own_voice: list[np.ndarray] | None = None  # reconstructions in each real speaker's enrolled voice (vocoder kind)

    def word_figures(self, recognizer: Callable[[str, bool], WordRecognizer], nearest: dict[str, str]
                     ) -> dict[str, Any]:
        """Word accuracies; `recognizer(speaker, vocoded)` is the recogniser for audio in that speaker's voice
        (rendered by WORLD when `vocoded`), `nearest` the voice each real speaker is reconstructed in."""
        from vqaudio.evaluate.recognize import word_accuracy

        rendered = self.copies is not None  # the vocoder kind: reconstructions and conversions are WORLD's output

        def hear(speaker: str, vocoded: bool, wav: np.ndarray) -> list[str]:
            return recognizer(speaker, vocoded).recognize(to_16k(wav, self.sample_rate))

        refs = [r.words for r in self.scored]
        conv = [hear(t, rendered, w) for (_, t), w in zip(self.pairs, self.conversions, strict=True)]
        targets = list(dict.fromkeys(t for _, t in self.pairs))
        return {
            "source": word_accuracy(refs, [hear(r.speaker, False, r.wav) for r in self.scored]),
            "world_copy": (word_accuracy(refs, [hear(r.speaker, True, w) for r, w in zip(self.scored, self.copies,
                                                                                           strict=True)])
                           if self.copies is not None else None),
            "reconstruction": word_accuracy(refs, [hear(nearest[r.speaker], rendered, w) for r, w in
                                                   zip(self.scored, self.reconstructions, strict=True)]),
            # in the speaker's own (enrolled) voice: heard as a WORLD copy of that speaker
            "reconstruction_own_voice": (word_accuracy(refs, [hear(r.speaker, True, w) for r, w in
                                                              zip(self.scored, self.own_voice, strict=True)])
                                         if self.own_voice is not None else None),
            "conversion": word_accuracy([r.words for r, _ in self.pairs], conv),
            "conversion_by_target": {t: word_accuracy([r.words for r, tt in self.pairs if tt == t],
                                                      [h for (_, tt), h in zip(self.pairs, conv, strict=True)
                                                       if tt == t]) for t in targets},
        }


Pools = dict[str, tuple[list[np.ndarray], list[list[str]]]]  # speaker -> (waveforms [T], their words)


def adapt_recognizers(seconds: float, real_dir: str | os.PathLike, data_dir: str | os.PathLike,
                      scored: list[RealUtterance], voices: list[str], words: list[str], max_words: int,
                      sample_rate: int, vocode: Callable[[list[np.ndarray]], list[np.ndarray]] | None
                      ) -> tuple[dict[tuple[str, bool], WordRecognizer], dict[str, Any]]:
    """Speaker-adapted recognisers keyed (speaker, vocoded): each real speaker of `scored` from its recordings
    and, with `vocode` (WORLD copies at `sample_rate`, the vocoder kind), from their copies; each model voice in
    `voices` from its train utterances, copied by `vocode` when given; `seconds` of speech each (0: no adaptation).
    Also what each transform was made of. ({}, {"skipped": why}) when adaptation is off or its tools are missing."""
    from vqaudio.evaluate.adapt import SpeakerAdapter, missing_packages
    from vqaudio.evaluate.recognize import WordRecognizer

    if seconds <= 0:
        return {}, {"skipped": "off (--adapt-seconds 0)"}
    if missing_packages():
        return {}, {"skipped": "needs Debian's " + " ".join(missing_packages())}
    real = real_pools(real_dir, scored, seconds, sample_rate)
    voice = voice_pools(data_dir, voices, seconds, sample_rate)
    jobs = [(real, False)] + ([(real, True), (voice, True)] if vocode else [(voice, False)])  # (pools, WORLD-copied)
    recognizers, made = {}, {}
    with tempfile.TemporaryDirectory(prefix="vqaudio-mllr-") as work:
        try:
            adapter = SpeakerAdapter(work)
        except FAILURES as e:  # a broken install: the plain figures stand, the reason is recorded
            return {}, {"skipped": f"{type(e).__name__}: {e}" if not isinstance(e, DataError) else str(e)}
        for pools, vocoded in jobs:
            for speaker, (wavs, texts) in pools.items():
                heard = vocode(wavs) if vocoded and vocode else wavs
                name = f"{speaker} (WORLD copies)" if vocoded else speaker
                try:
                    done = adapter.transform(name, [to_16k(w, sample_rate) for w in heard], texts, seconds)
                    recognizers[(speaker, vocoded)] = WordRecognizer(words, max_words=max_words, mllr=done.mllr)
                    made[name] = {"utterances": done.utterances, "seconds": round(done.seconds, 1)}
                except FAILURES as e:  # this speaker is heard unadapted; said in `made`
                    recognizers[(speaker, vocoded)] = WordRecognizer(words, max_words=max_words)
                    made[name] = {"utterances": 0, "seconds": 0.0, "error": str(e) or type(e).__name__}
    return recognizers, {"seconds": seconds, "speakers": made}


def real_pools(real_dir: str | os.PathLike, scored: list[RealUtterance], seconds: float, sample_rate: int) -> Pools:
    """Per real speaker of `scored`: its unscored transcribed recordings (at `sample_rate`) in file order, up to
    POOL x `seconds` of audio, and their words."""
    from vqaudio.audio import load_audio
    from vqaudio.data.align import words_of
    from vqaudio.data.corpus import scan_folders

    taken = {r.utt for r in scored}
    pools: Pools = {r.speaker: ([], []) for r in scored}
    for u in scan_folders(Path(real_dir)):
        if u.speaker not in pools or u.utt in taken or not (u.text and words_of(u.text)):
            continue
        wavs, texts = pools[u.speaker]
        if sum(len(w) for w in wavs) < POOL * seconds * sample_rate:
            wavs.append(load_audio(u.audio, sample_rate))
            texts.append(words_of(u.text))
    return pools


def voice_pools(data_dir: str | os.PathLike, voices: list[str], seconds: float, sample_rate: int) -> Pools:
    """Per model voice: its train utterances of DATA_DIR (at `sample_rate`) in order, up to POOL x `seconds`, and
    their words (utterances without a transcript skipped)."""
    from vqaudio.audio import load_audio
    from vqaudio.data.align import words_of
    from vqaudio.data.kaldi import DataDir

    data = DataDir.load(Path(data_dir) / "train")
    by_voice = data.spk2utt()
    pools = {}
    for voice in voices:
        if voice not in by_voice:
            raise DataError(f"{data_dir}/train: no utterances of {voice} to adapt the recogniser to")
        wavs, texts = [], []
        for utt in by_voice[voice]:
            if words_of(data.text.get(utt, "")) and sum(map(len, wavs)) < POOL * seconds * sample_rate:
                wavs.append(load_audio(data.wav_scp[utt], sample_rate))
                texts.append(words_of(data.text[utt]))
        pools[voice] = (wavs, texts)
    return pools


def adapted_seconds_note(adaptation: dict[str, Any]) -> str:
    """One line on the transforms: seconds and utterances per speaker, or why there are none."""
    if "skipped" in adaptation:
        return f"speaker-adapted recognition not run: {adaptation['skipped']}"
    parts = [f"{s} {a['seconds']:.0f} s ({a['utterances']})" + (" failed, unadapted" if "error" in a else "")
             for s, a in adaptation["speakers"].items()]
    return (f"speaker-adapted: one MLLR transform per speaker (and channel) from up to {adaptation['seconds']:g} s "
            "of its unscored speech that aligned: " + ", ".join(parts))

