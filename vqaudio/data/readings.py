"""Parallel readings: each training sentence read again by other voices, at the original's timing.

A speaker perturbation beside the WORLD copies of `vqaudio.data.perturb` (`perturb.readings` in the config). The
copies keep the utterance's own envelope and only shift its pitch and warp its formant axis, so what is left of
the speaker in them (accent, phone realisations, the envelope's fine shape) still reaches the codes. A reading is the
same words from another voice altogether: eSpeak NG renders the utterance's transcript in one of the embedded
corpus's voices (`vqaudio.data.synth.SPEAKERS`), dynamic time warping aligns the reading to the original on the
mean-removed WORLD envelope (coefficients 1-24 of the coded spectral envelope), and WORLD resynthesises the reading's
features at the original's frame times, at the model's speech level. The encoder then sees another voice saying the
same thing at the same time while the decoder's target stays the original, so the codes must carry the words and
leave the voice to the speaker embedding (parallel data in the manner of the many-to-one conversion literature).

Readings of an utterance alternate genders (a female voice, then a male one, ...) and never use the utterance's own
speaker. The voices are the embedded corpus's voices named like the model's training speakers, so on the embedded
corpus a held-out (test_unseen) voice never reads; a corpus whose speakers share no name with them (a folder of
users' voices) draws from all 48. Works on real VCTK too: its transcripts are read by eSpeak voices. An utterance
without a transcript, or one eSpeak cannot read, gets a WORLD speaker copy (the settings of its copy 0) instead.

The readings are made once on both cores (~0.25 s of one core per reading: 3 min for the embedded corpus's 770 x 2)
and kept beside the WORLD features as DATA/<split>/world/readings-<split>-<features key>-<tag>.npy (int16
[readings, S], laid out like the samples).

Measured (egs/vctk/RESULTS.md, "Parallel readings as a package option"): above the base in three 1250-step pilots
(+2.1 points of real conversions' words), neutral at the default length (+0.5), so `mini` leaves them off.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from vqaudio.audio import to_int16
from vqaudio.config import PerturbConfig
from vqaudio.data import espeak
from vqaudio.data.perturb import copy_settings, resynthesize_at_level, rows_per_utterance
from vqaudio.data.synth import SPEAKERS, SpeakerVoice, render_utterance
from vqaudio.data.world import WorldSettings, analyze
from vqaudio.errors import DataError

READINGS_VERSION = 1  # part of the cache tag: bump when a reading is made differently
ALIGN_DIMS = slice(1, 25)  # coded-envelope coefficients the alignment compares (0, the level, left out)


def reading_voices(speakers: list[str]) -> list[SpeakerVoice]:
    """The voices that read: the embedded voices named like `speakers` (the model's training speakers), or all of
    them when none is."""
    wanted = set(speakers)
    named = [v for v in SPEAKERS if v.id in wanted]
    return named or list(SPEAKERS)


def reading_partners(speaker_ids: list[str], voices: list[SpeakerVoice], readings: int, seed: int
                     ) -> list[list[SpeakerVoice]]:
    """Per utterance (its speaker in `speaker_ids`), the `readings` voices that read it: genders alternating from
    female, never the utterance's own speaker, drawn at random (seeded by `seed` and the utterance's number) among
    `voices`; a gender the voices lack is filled from the other."""
    out = []
    for u, own in enumerate(speaker_ids):
        rng = np.random.default_rng([seed, 104729, u])
        others = [v for v in voices if v.id != own] or voices
        chosen = []
        for r in range(readings):
            pool = [v for v in others if v.gender == "FM"[r % 2]] or others
            chosen.append(pool[int(rng.integers(len(pool)))])
        out.append(chosen)
    return out


def align_frames(original: np.ndarray, reading: np.ndarray) -> np.ndarray:
    """int [N]: for each of the N frames of `original` [N, D], the frame of `reading` [M, D] that dynamic time
    warping (Euclidean distance, mean-removed features) pairs with it (the rounded mean where it pairs several)."""
    import librosa

    a, b = original - original.mean(0), reading - reading.mean(0)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=True)
    sums = np.bincount(path[:, 0], weights=path[:, 1], minlength=len(a))
    counts = np.bincount(path[:, 0], minlength=len(a))
    return np.rint(sums / np.maximum(counts, 1)).astype(np.int64)


def read_aligned(text: str, voice: SpeakerVoice, feats: np.ndarray, length: int, world: WorldSettings
                 ) -> np.ndarray:
    """float32 [length]: `text` read by `voice`, aligned to the original's features `feats` [N, dims] and
    resynthesised at its frame times, at `world.level_db` speech level. Raises DataError if eSpeak reads nothing."""
    spoken = render_utterance(text, voice, world.sample_rate).audio
    # DIO for the reading's F0: eSpeak's voicing is clean, and Harvest would triple the time of a reading
    theirs = analyze(spoken, replace(world, f0_method="dio"))
    return resynthesize_at_level(theirs[align_frames(feats[:, ALIGN_DIMS], theirs[:, ALIGN_DIMS])], world, length)


def _readings_of(job: tuple[str, list[SpeakerVoice], np.ndarray, int, WorldSettings, tuple[float, float]]
                 ) -> np.ndarray:
    """int16 [readings, length]: one utterance's readings (its speaker copy with settings (f0_scale, warp) for each
    reading eSpeak could not make)."""
    text, voices, feats, length, world, (f0_scale, warp) = job
    out = np.zeros((len(voices), length), np.int16)
    for r, voice in enumerate(voices):
        try:
            wav = read_aligned(text, voice, feats, length, world) if text.strip() else None
        except DataError:
            wav = None
        out[r] = to_int16(wav if wav is not None else resynthesize_at_level(feats, world, length, f0_scale, warp))
    return out


def parallel_readings(values: np.ndarray, frames: np.ndarray, lengths: np.ndarray, texts: list[str],
                      speaker_ids: list[str], speakers: list[str], world: WorldSettings, cfg: PerturbConfig,
                      seed: int, features_key: str, cache: Path | None = None, name: str = "train",
                      show_progress: bool | None = None) -> np.ndarray:
    """int16 [cfg.readings, sum(lengths)]: the parallel readings of every utterance (features `values`
    [sum frames, F] end to end, `frames` [U], `lengths` [U] samples, transcripts `texts` [U], speakers `speaker_ids`
    [U]; `speakers`: the model's training speakers, which name the reading voices), laid out like the dataset's
    samples; with `cache` (a folder) kept there (`vqaudio.data.perturb.rows_per_utterance`)."""
    partners = reading_partners(speaker_ids, reading_voices(speakers), cfg.readings, seed)
    offsets = np.concatenate([[0], np.cumsum(frames)])
    jobs = [(texts[u], partners[u], values[offsets[u]:offsets[u + 1]], int(lengths[u]), world,
             copy_settings(cfg, seed, u)[0]) for u in range(len(lengths))]
    texts_key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    settings = [READINGS_VERSION, cfg.readings, seed, [[v.id for v in p] for p in partners], texts_key,
                espeak.version(), cfg.pitch_semitones, cfg.formant_warp]
    return rows_per_utterance(_readings_of, jobs, lengths, cfg.readings, "readings", settings, features_key, cache,
                              name, f"speaker perturbation: {cfg.readings} parallel readings of {name}",
                              show_progress)
