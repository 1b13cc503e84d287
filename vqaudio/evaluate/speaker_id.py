"""A small speaker-identification model, trained by the toolkit itself, to score voice conversion.

Utterance-level features: 20 MFCCs and their deltas over 25 ms / 10 ms frames, keeping frames within
40 dB of the utterance's loudest (silence says nothing about the speaker), summarised by mean and
standard deviation (80 numbers). Standardised, then a multinomial logistic regression. Trained on the
training speakers' real utterances (`train` split); scored on converted audio, with its accuracy on
real held-out utterances as its own sanity figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_MFCC = 20


def speaker_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Utterance-level speaker features [4 * N_MFCC] of a waveform [T]: MFCC + delta, mean and std."""
    import librosa

    y = np.asarray(wav, dtype=np.float32)
    scale = sample_rate / 16000
    n_fft, win, hop = int(512 * scale), int(400 * scale), int(round(0.01 * sample_rate))
    mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=N_MFCC, n_fft=n_fft, win_length=win,
                                hop_length=hop, n_mels=40)
    rms_db = 20 * np.log10(np.maximum(librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0], 1e-8))
    loud = rms_db[: mfcc.shape[1]] >= rms_db.max() - 40.0  # silence says nothing about the speaker
    if loud.sum() >= 9:
        mfcc = mfcc[:, loud]
    delta = librosa.feature.delta(mfcc, width=9) if mfcc.shape[1] >= 9 else np.zeros_like(mfcc)
    frames = np.concatenate([mfcc, delta], axis=0)
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float64)


@dataclass
class SpeakerScores:
    """How a set of utterances is identified."""

    utterances: int
    target_share: float  # identified as the intended (target) speaker
    source_share: float  # identified as the source speaker (NaN when no source is given)
    predicted: list[str]


class SpeakerClassifier:
    """Standardised logistic regression over `speaker_features`; `speakers` are its classes."""

    def __init__(self, sample_rate: int, c: float = 1.0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.sample_rate = sample_rate
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=c))
        self.speakers: list[str] = []

    def features(self, wavs: list[np.ndarray], label: str) -> np.ndarray:
        """`speaker_features` of each waveform, [U, 4 * N_MFCC], with a progress bar."""
        from vqaudio.progress import progress

        rows = []
        with progress(transient=True) as bar:
            task = bar.add_task(label, total=len(wavs), info="")
            for w in wavs:
                rows.append(speaker_features(w, self.sample_rate))
                bar.advance(task)
        return np.stack(rows)

    def fit(self, wavs: list[np.ndarray], speakers: list[str]) -> SpeakerClassifier:
        """Train on waveforms [T] with their speaker ids (at least two speakers)."""
        if len(set(speakers)) < 2:
            from vqaudio.errors import DataError

            raise DataError("speaker identification needs utterances of at least two speakers")
        x = self.features(wavs, "speaker id: train")
        self.pipeline.fit(x, np.asarray(speakers))
        self.speakers = sorted(set(speakers))
        return self

    def probabilities(self, wavs: list[np.ndarray]) -> np.ndarray:
        """Class probabilities [U, len(speakers)] of each waveform (columns in `speakers` order)."""
        return self.pipeline.predict_proba(self.features(wavs, "speaker id"))

    def predict(self, wavs: list[np.ndarray]) -> list[str]:
        """The most likely training speaker of each waveform."""
        if not wavs:
            return []
        return [str(s) for s in self.pipeline.predict(self.features(wavs, "speaker id"))]

    def score(self, wavs: list[np.ndarray], targets: list[str], sources: list[str] | None = None) -> SpeakerScores:
        """Share of `wavs` identified as their target speaker, and as their source speaker."""
        pred = self.predict(wavs)
        n = len(pred)
        tgt = float(np.mean([p == t for p, t in zip(pred, targets, strict=True)])) if n else float("nan")
        src = float(np.mean([p == s for p, s in zip(pred, sources, strict=True)])) if n and sources else float("nan")
        return SpeakerScores(utterances=n, target_share=tgt, source_share=src, predicted=pred)
