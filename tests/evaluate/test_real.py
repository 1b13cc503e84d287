"""Real-speech evaluation: word recognition and `vqaudio evaluate-real` on a few shared FSDD files (skipped when
../shared/realspeech is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.train_fixtures import make_data_root
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.evaluate.recognize import word_accuracy, word_errors

FSDD = Path(__file__).resolve().parents[3] / "shared" / "realspeech" / "fsdd"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"{FSDD} absent (shared real-speech set)")
runner = CliRunner()


def test_word_errors_count_substitutions_deletions_and_insertions() -> None:
    assert word_errors(["one", "two"], ["one", "two"]) == 0
    assert word_errors(["one", "two"], ["one", "three"]) == 1
    assert word_errors(["one", "two"], ["two"]) == 1
    assert word_errors(["one"], ["one", "one", "two"]) == 2
    assert word_accuracy([["one", "two"], ["three"]], [["one"], ["four"]]) == pytest.approx(1 / 3)


def test_heard_as_counts_each_targets_conversions_by_the_class_given() -> None:
    from vqaudio.evaluate.real import heard_as

    got = heard_as(["a", "b", "a", "a", "b"], ["a", "c", "c", "c", "b"])
    assert got == {"a": {"c": 2, "a": 1}, "b": {"c": 1, "b": 1}}
    assert list(got["a"]) == ["c", "a"]  # most first


def test_duration_matched_cuts_pieces_of_the_real_lengths_and_balances_the_speakers() -> None:
    import numpy as np

    from vqaudio.evaluate.real import duration_matched

    wavs = [np.arange(90.0), np.arange(100.0) + 1000, np.arange(35.0) + 2000]
    pieces, owners = duration_matched(wavs, ["a", "a", "b"], [30, 20], per_speaker=None)
    assert [len(p) for p in pieces] == [30, 20, 30, 20, 30, 20, 30, 20]  # the lengths in turn, across utterances
    assert owners == ["a"] * 7 + ["b"]  # remainders too short for the next length dropped (10 and 15 samples)
    assert np.array_equal(pieces[1], np.arange(30.0, 50.0)) and pieces[3][0] == 1000  # consecutive, from the start
    assert pieces[-1][0] == 2000
    few, few_owners = duration_matched(wavs, ["a", "a", "b"], [30, 20], per_speaker=2)
    assert few_owners == ["a", "a", "b"]
    assert np.array_equal(few[0], pieces[0]) and np.array_equal(few[1], pieces[6])  # a: its first and last of 7
    whole, whole_owners = duration_matched(wavs, ["a", "a", "b"], [500], per_speaker=None)
    assert whole_owners == ["a", "a", "b"] and [len(w) for w in whole] == [90, 100, 35]  # longer than any: whole
    with pytest.raises(ValueError):
        duration_matched(wavs, ["a", "a", "b"], [], per_speaker=None)


def test_real_tables_leave_out_the_world_copy_row_for_other_kinds() -> None:
    from vqaudio.evaluate.real import real_tables

    results = {"conversions": 2, "targets": ["p225"], "scored_utterances": 1, "nearest_voice": {"ann": "p225"},
               "speaker_id": {"classes": ["ann", "p225"], "conversion_as_target": 0.5, "conversion_as_source": 0.5,
                              "real_source_accuracy": 1.0, "conversions_heard_as": {"p225": {"p225": 1, "ann": 1}}},
               "word_accuracy": {"source": 1.0, "world_copy": None, "reconstruction": 0.5, "conversion": 0.5},
               "probe": {"aligned_utterances": 1, "source": 0.2, "conversion_reencoded": 0.1}}
    rows = [row[0] for table in real_tables(results) for row in table.rows]
    assert "real source" in rows and not any(r.startswith("WORLD copy") for r in rows)
    results["word_accuracy"]["world_copy"] = 0.9
    rows = [row[0] for table in real_tables(results) for row in table.rows]
    assert any(r.startswith("WORLD copy") for r in rows)


def real_subset(root: Path, per_speaker: int = 5, pattern: str = "*_[0-4]_0.wav") -> Path:
    """The first `per_speaker` recordings (and transcripts) of two FSDD speakers, copied under `root`."""
    for spk in ("george", "jackson"):
        (root / spk).mkdir(parents=True)
        for wav in sorted((FSDD / spk).glob(pattern))[:per_speaker]:
            shutil.copy(wav, root / spk / wav.name)
            shutil.copy(wav.with_suffix(".txt"), root / spk / wav.with_suffix(".txt").name)
    return root


@needs_fsdd
def test_recogniser_hears_real_digits() -> None:
    from vqaudio.audio import load_audio
    from vqaudio.evaluate.recognize import WordRecognizer

    files = sorted(FSDD.glob("*/*_[0-9]_3.wav"))
    rec = WordRecognizer("zero one two three four five six seven eight nine".split())
    refs = [f.with_suffix(".txt").read_text().split() for f in files]
    hyps = [rec.recognize(load_audio(f, 16000)) for f in files]
    assert word_accuracy(refs, hyps) > 0.5  # 30 recordings; chance is 10%


@needs_fsdd
def test_evaluate_real_runs_end_to_end(tmp_path: Path) -> None:
    data = make_data_root(tmp_path / "data", utts=2, seconds=0.5)
    sets = ["--set", "train.threads=1", "--set", "train.batch_size=2", "--set", "train.segment_samples=1024",
            "--set", "train.max_minutes=0", "--set", "perturb.channel=0.5"]
    result = runner.invoke(app, ["train", str(data), str(tmp_path / "exp"), "--config", "quick", *sets,
                                 "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    shutil.copytree(data / "dev", data / "test")  # held-out speech of the voices, for the judges' control
    real = real_subset(tmp_path / "real", 14, "*_[0-9]_[01].wav")  # 12 to enrol each speaker's own voice from
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate-real", str(real), str(data), "--model", str(tmp_path / "exp" / "model.pt"),
                                 "--out", str(out), "--convert-per-speaker", "2", "--id-per-speaker", "12",
                                 "--n-targets", "2", "--f0", "normalized", "--gv-strength", "1",
                                 "--gv-scale", "utterance", "--adapt-seconds", "5"])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "real.json").read_text())
    assert figures["decoding"] == {"f0_mode": "normalized", "gv_strength": 1.0,  # the options reach the decoder
                                   "gv_scale": "utterance"}
    assert figures["conversions"] == 2 * 2 * 2 and figures["real_speakers"] == ["george", "jackson"]
    assert set(figures["speaker_id"]["classes"]) == {"george", "jackson", "p225", "p226"}
    for name in ("conversion_as_target", "conversion_as_source", "real_source_accuracy"):
        assert 0.0 <= figures["speaker_id"][name] <= 1.0
    for name in ("source", "reconstruction", "reconstruction_own_voice", "conversion"):
        assert figures["word_accuracy"][name] <= 1.0
    enrolled = figures["enrolled"]  # each real speaker's own voice, from its 12 unscored 8 kHz recordings
    assert enrolled.keys() == {"george", "jackson"}, enrolled
    assert all(e["utterances"] == 12 and e["seconds"] >= 3 and not e["envelope_statistics"] for e in enrolled.values())
    assert "own voice, enrolled" in (out / "real.md").read_text()
    assert figures["model"]["speakers"] == 2  # counted before the enrolments
    assert figures["word_accuracy"]["world_copy"] is not None  # quick is the vocoder kind
    from vqaudio.evaluate.adapt import missing_packages

    if missing_packages():  # said, not failed
        assert figures["word_accuracy_adapted"] is None and "skipped" in figures["adaptation"]
        assert "speaker-adapted recognition skipped" in result.output
    else:
        made = figures["adaptation"]["speakers"]
        assert made["george"]["utterances"] >= 1 and made["george"]["seconds"] <= 5 + 1  # unscored digits
        assert set(made) >= {"george", "jackson", "george (WORLD copies)",  # quick is the vocoder kind
                             *(f"{t} (WORLD copies)" for t in figures["targets"])}
        assert set(figures["word_accuracy_adapted"]) == set(figures["word_accuracy"])

    assert figures["word_accuracy"]["world_copy"] <= 1.0
    assert figures["nearest_voice"].keys() == {"george", "jackson"}
    by_target = figures["word_accuracy"]["conversion_by_target"]
    assert by_target.keys() == set(figures["targets"])
    assert sum(by_target.values()) / 2 == pytest.approx(figures["word_accuracy"]["conversion"])  # 4 each, 1 word
    assert "by target" in (out / "real.md").read_text()
    sid = figures["speaker_id"]
    assert sid["judge"] == "duration-matched" and 0 < sid["voice_pieces"] <= 2 * 12  # at most --id-per-speaker each
    for judge in (sid, sid["whole_utterance"]):  # both judges and their controls
        for name in ("conversion_as_target", "real_source_accuracy", "voice_pieces_accuracy",
                     "world_copy_as_source", "world_copy_as_voice"):
            assert 0.0 <= judge[name] <= 1.0, name
    assert "whole utterances" in (out / "real.md").read_text()
    heard = figures["speaker_id"]["conversions_heard_as"]
    assert heard.keys() == set(figures["targets"]) and sum(sum(c.values()) for c in heard.values()) == 8
    as_target = sum(c.get(t, 0) for t, c in heard.items()) / 8
    assert as_target == pytest.approx(figures["speaker_id"]["conversion_as_target"])
    assert "word accuracy" in (out / "real.md").read_text() and "WORLD copy" in (out / "real.md").read_text()
    assert "F0 normalized, postfilter strength 1.0" in (out / "real.md").read_text()


@pytest.mark.parametrize("bad", [["--f0", "flat"], ["--gv-strength", "1.5"], ["--gv-scale", "sentence"]])
def test_evaluate_real_refuses_bad_decoding_options(tmp_path: Path, bad: list[str]) -> None:
    result = runner.invoke(app, ["evaluate-real", str(tmp_path), str(tmp_path), *bad])
    assert result.exit_code == 1 and bad[0] + " must be" in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_real_refuses_a_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate-real", str(tmp_path / "nope"), str(tmp_path), "--model",
                                 str(tmp_path / "m.pt")])
    assert result.exit_code == 1 and "no such folder" in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("seconds", ["-1", "nan", "inf"])
def test_evaluate_real_refuses_bad_adaptation_seconds(tmp_path: Path, seconds: str) -> None:
    result = runner.invoke(app, ["evaluate-real", str(tmp_path), str(tmp_path), "--adapt-seconds", seconds])
    assert result.exit_code == 1 and "--adapt-seconds" in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def tiny_model_and_real(tmp_path: Path, recordings: dict[str, int]) -> Path:
    """A tiny untrained model (voices p225, p226) at tmp_path/m.pt, its data folder (returned), and
    tmp_path/real/<speaker>/ with `recordings[speaker]` synthetic recordings saying "one"."""
    import soundfile as sf
    import torch
    from helpers.tiny_models import tiny_config
    from helpers.train_fixtures import synthetic_wav

    from vqaudio.models import build_vqvae
    from vqaudio.models.io import save_model

    data = make_data_root(tmp_path / "data", utts=1, seconds=0.3)
    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", build_vqvae(tiny_config(), 2), tiny_config(), ["p225", "p226"], {})
    for spk, n in recordings.items():
        (tmp_path / "real" / spk).mkdir(parents=True)
        for i in range(n):
            sf.write(tmp_path / "real" / spk / f"{spk}_{i}.wav", synthetic_wav(i, 0.3, 120.0), 16000)
            (tmp_path / "real" / spk / f"{spk}_{i}.txt").write_text("one")
    return data


def test_evaluate_real_refuses_a_real_speaker_named_like_a_model_voice(tmp_path: Path) -> None:
    data = tiny_model_and_real(tmp_path, {"p225": 3})
    result = runner.invoke(app, ["evaluate-real", str(tmp_path / "real"), str(data), "--model",
                                 str(tmp_path / "m.pt"), "--convert-per-speaker", "1", "--id-per-speaker", "1",
                                 "--n-targets", "1"])
    assert result.exit_code == 1 and "name of a model voice" in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_real_refuses_a_speaker_with_too_few_recordings(tmp_path: Path) -> None:
    data = tiny_model_and_real(tmp_path, {"ann": 3, "bob": 1})
    result = runner.invoke(app, ["evaluate-real", str(tmp_path / "real"), str(data), "--model",
                                 str(tmp_path / "m.pt"), "--convert-per-speaker", "1", "--n-targets", "1"])
    assert result.exit_code == 1 and "too few recordings of bob" in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_heard_recognises_each_audio_with_the_recognizer_of_the_voice_it_speaks_in() -> None:
    import numpy as np

    from vqaudio.evaluate.heard import Heard, RealUtterance

    class Fake:  # hears "one" only in audio whose voice it was made for (marked by the audio's value)
        def __init__(self, mark: float) -> None:
            self.mark = mark

        def recognize(self, wav: np.ndarray) -> list[str]:
            return ["one"] if np.isclose(wav[len(wav) // 2], self.mark, atol=1e-3) else ["two"]

    marks = {"ann": 0.1, "p225": 0.2, "p226": 0.3}
    wav = lambda spk: np.full(1600, marks[spk], np.float32)  # noqa: E731
    src = RealUtterance("ann_1", "ann", ["one"], wav("ann"))
    heard = Heard(16000, [src], [(src, "p225"), (src, "p226")], [wav("p225"), wav("p226")], [wav("p226")],
                  [wav("ann")])
    got = heard.word_figures(lambda spk, vocoded: Fake(marks[spk]), {"ann": "p226"})
    assert got["source"] == got["world_copy"] == got["reconstruction"] == got["conversion"] == 1.0
    assert got["conversion_by_target"] == {"p225": 1.0, "p226": 1.0}
    wrong = heard.word_figures(lambda spk, vocoded: Fake(marks["ann"]), {"ann": "p226"})  # one for all
    assert wrong["source"] == 1.0 and wrong["conversion"] == 0.0 and wrong["reconstruction"] == 0.0
    asked = []
    heard.word_figures(lambda spk, vocoded: asked.append((spk, vocoded)) or Fake(0.0), {"ann": "p226"})
    assert asked == [("p225", True), ("p226", True), ("ann", False), ("ann", True), ("p226", True)]  # conversions,
    # then sources (as recorded), WORLD copies and reconstructions (WORLD's output: the vocoder kind)
    heard.own_voice, asked[:] = [wav("ann")], []  # the reconstruction in the speaker's own enrolled voice
    got = heard.word_figures(lambda spk, vocoded: asked.append((spk, vocoded)) or Fake(marks[spk]), {"ann": "p226"})
    assert asked[-1] == ("ann", True) and got["reconstruction_own_voice"] == 1.0  # heard as a WORLD copy of ann
    heard.own_voice, heard.copies, asked[:] = None, None, []
    heard.word_figures(lambda spk, vocoded: asked.append((spk, vocoded)) or Fake(0.0), {"ann": "p226"})
    assert asked == [("p225", False), ("p226", False), ("ann", False), ("p226", False)]  # other kinds: no WORLD


@needs_fsdd
def test_recogniser_hears_each_utterance_as_a_fresh_one_whatever_came_before() -> None:
    from vqaudio.audio import load_audio
    from vqaudio.evaluate.recognize import WordRecognizer

    digits = "zero one two three four five six seven eight nine".split()
    wavs = [load_audio(f, 16000) for f in sorted(FSDD.glob("*/*_[0-9]_1[0-9].wav"))[::4][:40]]
    rec = WordRecognizer(digits)
    forward = [rec.recognize(w) for w in wavs]
    assert [rec.recognize(w) for w in wavs[::-1]][::-1] == forward  # 3 of 80 changed before the reset
    assert [WordRecognizer(digits).recognize(w) for w in wavs[:8]] == forward[:8]
