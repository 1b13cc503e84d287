"""PocketSphinx forced alignment on eSpeak NG speech: coverage, inventory, agreement with eSpeak's phonemes."""

from __future__ import annotations

import difflib
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from vqaudio.audio import save_audio
from vqaudio.cli import app, prep_cmds  # noqa: F401  (registers `data prepare` / `data align`)
from vqaudio.data.align import align_data_dir, letter_to_sound, words_of
from vqaudio.data.kaldi import DataDir
from vqaudio.data.prepare import validate_data_dir
from vqaudio.data.textgrid import Alignment, Interval, frame_labels, read_textgrid
from vqaudio.phones import PHONES

TEXTS = {
    "spk1_001": "Please call Stella and ask her to bring these things with her from the store.",
    "spk1_002": "The blorfing rainbow is a division of white light.",  # `blorfing`: not in CMUdict
    "spk1_003": "",  # no transcript
}


def test_words_of_and_letter_to_sound():
    assert words_of("It's 42 well-known, OK?") == ["it's", "four", "two", "well", "known", "ok"]
    guess = letter_to_sound("blorfing").split()
    assert guess[:2] == ["B", "L"] and guess[-1] == "NG" and set(guess) <= set(PHONES)


def espeak_reference(synth, n_samples_16k: int) -> Alignment:
    """eSpeak's own phoneme timing as an Alignment (multi-label phonemes share their span)."""
    from vqaudio.data.espeak import to_arpabet

    ivs = []
    for i, ev in enumerate(synth.phonemes):
        end = synth.phonemes[i + 1].sample if i + 1 < len(synth.phonemes) else synth.end_sample
        labels = to_arpabet(ev.name) or ()
        start_s, end_s = ev.sample / synth.sample_rate, end / synth.sample_rate
        step = (end_s - start_s) / max(1, len(labels))
        ivs += [Interval(start_s + k * step, start_s + (k + 1) * step, lab) for k, lab in enumerate(labels)]
    return Alignment(n_samples_16k / 16000, phones=ivs)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    espeak = pytest.importorskip("vqaudio.data.espeak")
    from vqaudio.audio import resample

    root = tmp_path_factory.mktemp("align")
    refs, wav_scp = {}, {}
    for utt, text in TEXTS.items():
        synth = espeak.synthesize(text or "hello")
        wav = resample(synth.audio, synth.sample_rate, 16000)
        refs[utt] = espeak_reference(synth, len(wav))
        wav_scp[utt] = str(root / f"{utt}.flac")
        save_audio(wav_scp[utt], synth.audio, synth.sample_rate)
    data = DataDir(root / "data", wav_scp, {u: "spk1" for u in TEXTS}, {u: t for u, t in TEXTS.items() if t})
    data.save()
    summary = align_data_dir(root / "data", show_progress=False)
    return root, summary, refs


def test_align_writes_textgrids_and_phone_ali(aligned):
    root, summary, refs = aligned
    assert summary.aligned == 2 and summary.failed == 0 and summary.no_text == 1
    assert summary.oov["blorfing"] == 1
    data = DataDir.load(root / "data")
    assert validate_data_dir(root / "data") == []
    assert set(data.phone_ali) == {"spk1_001", "spk1_002"}
    for utt, labels in data.phone_ali.items():
        duration = refs[utt].duration
        assert len(labels) == math.ceil(round(duration / 0.01, 6))
        assert set(labels) <= set(PHONES)
        tg = read_textgrid(root / "data" / "alignments" / "spk1" / f"{utt}.TextGrid")
        speech = [iv for iv in tg.phones if iv.label != "sil"]
        assert speech[0].start < 0.3 and speech[-1].end > duration - 0.4  # covers the audio
        assert [w.label for w in tg.words][:2] == words_of(TEXTS[utt])[:2]


def test_alignment_agrees_with_espeak(aligned):
    """Phone sequence (CMUdict vs eSpeak) overlaps strongly; most 10 ms frames carry eSpeak's label."""
    root, _, refs = aligned
    data = DataDir.load(root / "data")
    for utt, labels in data.phone_ali.items():
        expected = frame_labels(refs[utt])
        ref_seq = [iv.label for iv in refs[utt].phones if iv.label != "sil"]
        tg = read_textgrid(root / "data" / "alignments" / "spk1" / f"{utt}.TextGrid")
        got_seq = [iv.label for iv in tg.phones if iv.label != "sil"]
        assert difflib.SequenceMatcher(None, ref_seq, got_seq).ratio() > 0.8, utt
        agree = np.mean([a == b for a, b in zip(labels, expected, strict=True)])
        assert agree > 0.55, (utt, agree)


def test_align_resumes_and_cli(aligned, tmp_path):
    root, _, _ = aligned
    runner = CliRunner()
    res = runner.invoke(app, ["data", "align", str(root / "data")])
    assert res.exit_code == 0, res.output
    assert "aligned 0" in res.output and "no text 1" in res.output  # nothing left to align
    res = runner.invoke(app, ["data", "align", str(tmp_path)])
    assert res.exit_code == 1 and "not a data dir" in res.output
