"""The embedded corpus: layout, speaker-info, alignments, phone coverage, determinism, CLI, distinct speakers."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.data.synth import MARGIN, MARKER, SPEAKERS, build_corpus, render_utterance, select_speakers
from vqaudio.data.textgrid import read_textgrid
from vqaudio.errors import DataError
from vqaudio.phones import ARPABET, FRAME_SHIFT, SILENCE, SPOKEN_NOISE

TINY_SPEAKERS, TINY_UTTERANCES, TINY_SHARED = 4, 6, 5  # as tests/data/conftest.py builds `tiny_corpus`
IDS = [f"p{225 + i}" for i in range(TINY_SPEAKERS)]


def _alignments(corpus: Path):
    for tg in sorted((corpus / "alignments").rglob("*.TextGrid")):
        flac = corpus / "wav48_silence_trimmed" / tg.parent.name / f"{tg.stem}_mic1.flac"
        yield tg, flac, read_textgrid(tg)


def test_layout_and_shared_sentences(tiny_corpus):
    for spk in IDS:
        flacs = sorted(p.name for p in (tiny_corpus / "wav48_silence_trimmed" / spk).iterdir())
        assert flacs == [f"{spk}_{n:03d}_mic1.flac" for n in range(1, TINY_UTTERANCES + 1)]
        assert len(list((tiny_corpus / "txt" / spk).glob("*.txt"))) == TINY_UTTERANCES
        assert len(list((tiny_corpus / "alignments" / spk).glob("*.TextGrid"))) == TINY_UTTERANCES
    text = {spk: [(tiny_corpus / "txt" / spk / f"{spk}_{n:03d}.txt").read_text() for n in range(1, 7)] for spk in IDS}
    for spk in IDS[1:]:
        assert text[spk][:TINY_SHARED] == text[IDS[0]][:TINY_SHARED]  # parallel prompts
        assert text[spk][TINY_SHARED] != text[IDS[0]][TINY_SHARED]  # own sentences
    info = sf.info(str(tiny_corpus / "wav48_silence_trimmed" / "p225" / "p225_001_mic1.flac"))
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"


def test_speaker_info(tiny_corpus):
    lines = (tiny_corpus / "speaker-info.txt").read_text().splitlines()
    assert lines[0].startswith(MARKER) and "eSpeak NG" in lines[0] and "16000 Hz" in lines[0]
    assert lines[1].split() == ["ID", "AGE", "GENDER", "ACCENTS", "REGION", "COMMENTS"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert sorted(rows) == IDS
    assert {rows[s].split()[2] for s in IDS} == {"F", "M"}
    for spk, voice in zip(IDS, SPEAKERS, strict=False):
        assert f"espeak:{voice.voice}" in rows[spk] and f"pitch={voice.pitch}" in rows[spk]


def test_speaker_order_is_diverse_and_large():
    assert len(SPEAKERS) >= 40 and len({(v.voice, v.pitch) for v in SPEAKERS}) == len(SPEAKERS)
    first8 = SPEAKERS[:8]
    assert len({v.language for v in first8}) == 8 and Counter(v.gender for v in first8) == {"F": 4, "M": 4}
    assert Counter(v.gender for v in SPEAKERS)["F"] == len(SPEAKERS) // 2
    with pytest.raises(DataError, match="--speakers"):
        select_speakers(len(SPEAKERS) + 1)


def test_alignments_span_the_audio_and_cover_all_phonemes(tiny_corpus):
    seen: Counter[str] = Counter()
    for tg, flac, ali in _alignments(tiny_corpus):
        duration = sf.info(str(flac)).frames / 16000
        assert abs(ali.phones[-1].end - duration) <= FRAME_SHIFT and abs(ali.duration - duration) <= FRAME_SHIFT
        assert ali.phones[0].start == 0.0 and ali.phones[0].label == SILENCE == ali.phones[-1].label
        assert ali.phones[0].end == pytest.approx(MARGIN, abs=1e-3)  # trimmed to the VCTK-like margin
        assert ali.phones[-1].end - ali.phones[-1].start == pytest.approx(MARGIN, abs=1e-3)
        for a, b in zip(ali.phones, ali.phones[1:], strict=False):
            assert a.end == pytest.approx(b.start, abs=1e-6), tg  # contiguous
        words = (tiny_corpus / "txt" / tg.parent.name / f"{tg.stem}.txt").read_text().split()
        assert len(ali.words) == len(words)
        for iv in ali.phones:
            seen[iv.label] += 1
    missing = [p for p in ARPABET if p not in seen]
    assert not missing, f"phonemes absent from the tiny corpus: {missing}"


def test_spoken_noise_is_rare(tiny_corpus):
    time: Counter[str] = Counter()
    for _, _, ali in _alignments(tiny_corpus):
        for iv in ali.phones:
            time[iv.label] += iv.end - iv.start
    assert time[SPOKEN_NOISE] / sum(time.values()) < 0.01


def test_tiny_corpus_args(tiny_corpus_args):
    assert tiny_corpus_args == {"speakers": TINY_SPEAKERS, "utterances": TINY_UTTERANCES, "shared": TINY_SHARED,
                                "seed": 0}


def test_same_arguments_give_identical_bytes(tiny_corpus, tiny_corpus_args, tmp_path):
    again = tmp_path / "again"
    build_corpus(again, **tiny_corpus_args, show_progress=False)
    files = sorted(p.relative_to(tiny_corpus) for p in tiny_corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_corpus / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    build_corpus(other, speakers=1, utterances=TINY_SHARED + 1, seed=1, show_progress=False)
    assert (other / "txt/p225/p225_001.txt").read_text() != (tiny_corpus / "txt/p225/p225_001.txt").read_text()


def test_cli_builds_a_corpus(tmp_path):
    out = tmp_path / "c"
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--speakers", "2", "--utterances", "2",
                                      "--shared", "1", "--sample-rate", "22050"])
    assert result.exit_code == 0, result.output
    assert sf.info(str(out / "wav48_silence_trimmed/p226/p226_002_mic1.flac")).samplerate == 22050
    assert "22050 Hz" in (out / "speaker-info.txt").read_text()
    again = CliRunner().invoke(app, ["data", "synth", str(out), "--speakers", "1", "--utterances", "1",
                                     "--shared", "1", "--force"])
    assert again.exit_code == 0 and not (out / "wav48_silence_trimmed/p226").exists()


@pytest.mark.parametrize("args, message", [
    (["--speakers", "0"], "--speakers"),
    (["--speakers", str(len(SPEAKERS) + 1)], "--speakers"),
    (["--utterances", "3", "--shared", "5"], "--shared"),
    (["--utterances", "0"], "--utterances"),
    (["--sample-rate", "100"], "--sample-rate"),
    (["--speakers", "two"], "Usage"),  # click refuses it before our code runs (exit 2)
])
def test_cli_refuses_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "c"), *args])
    assert result.exit_code != 0
    assert message in result.output
    if result.exit_code == 1:  # ours, not click's usage error: exactly one line
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "speaker-info.txt").exists()


def test_cli_refuses_a_foreign_or_existing_folder(tmp_path, tiny_corpus):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["data", "synth", str(foreign)])
    assert result.exit_code == 1 and "not empty" in result.output and len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["data", "synth", str(tiny_corpus)])
    assert result.exit_code == 1 and "--force" in result.output


def _mfcc_stats(wav: np.ndarray, sr: int = 16000, n_fft: int = 512, hop: int = 160, n_mels: int = 40,
                n_mfcc: int = 20) -> np.ndarray:
    """Per-utterance MFCC mean and std [2 * n_mfcc] (numpy: librosa's first call JIT-compiles for seconds)."""
    from scipy.fft import dct

    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [frames, n_fft // 2 + 1]
    mel = 2595 * np.log10(1 + np.linspace(0, sr / 2, n_fft // 2 + 1) / 700)
    edges = np.linspace(0, mel[-1], n_mels + 2)
    fbank = np.maximum(0, np.minimum((mel - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
                                     (edges[2:, None] - mel) / (edges[2:, None] - edges[1:-1, None])))
    mfcc = dct(np.log(power @ fbank.T + 1e-8), type=2, norm="ortho", axis=1)[:, :n_mfcc]
    return np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)])


def test_speakers_are_distinguishable_by_mfcc_statistics():
    """A linear classifier on per-utterance MFCC mean+std tells 6 speakers apart on held-out sentences."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from vqaudio.data.sentences import generate_sentences

    sentences = generate_sentences(8, seed=123)
    feats, labels = [], []
    for k, voice in enumerate(SPEAKERS[:6]):
        for text in sentences:
            feats.append(_mfcc_stats(render_utterance(text, voice).audio))
            labels.append(k)
    x, y = np.array(feats), np.array(labels)
    train = np.array([i % 8 < 5 for i in range(len(y))])  # the same 5 sentences per speaker train, 3 held out
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[train], y[train])
    accuracy = float((clf.predict(x[~train]) == y[~train]).mean())
    assert accuracy >= 0.9, accuracy
    assert not math.isnan(accuracy)
