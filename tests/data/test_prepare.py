"""Corpus -> Kaldi data dirs: layouts, splits, alignments, real-corpus mess, validation, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from vqaudio.cli import (
    app,
    prep_cmds,  # noqa: F401  (registers `data prepare` / `data align`)
)
from vqaudio.data.corpus import read_speaker_info
from vqaudio.data.kaldi import DataDir, read_table, write_table
from vqaudio.data.prepare import choose_heldout, prepare, validate_data_dir
from vqaudio.data.textgrid import Alignment, Interval, write_textgrid
from vqaudio.errors import DataError

SHARED = ["Please call Stella.", "Ask her to bring these things."]
GENDERS = {"p225": "F", "p226": "M", "p227": "M", "p228": "F", "p229": "F", "p230": "M"}


def vowel(seconds: float, sr: int, f0: float) -> np.ndarray:
    """A vowel-like harmonic signal (f0 plus 9 harmonics under a formant-ish envelope), [T] float32."""
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k * (1.5 if 500 < f0 * k < 1200 else 1.0) for k in range(1, 10))
    return (0.2 * wav / np.abs(wav).max()).astype(np.float32)


def make_vctk(root: Path, speakers=GENDERS, n_own: int = 5, sr: int = 48000) -> Path:
    """A VCTK 0.92-layout corpus: 2 shared + n_own own sentences per speaker, TextGrids for all."""
    info = ["ID  AGE  GENDER  ACCENTS  REGION  COMMENTS", "; a comment line"]
    for i, (spk, g) in enumerate(speakers.items()):
        info.append(f"{spk}  {20 + i}  {g}    English    Southern  England")
        texts = SHARED + [f"Sentence {j} of speaker {spk}." for j in range(n_own)]
        for j, text in enumerate(texts, 1):
            utt = f"{spk}_{j:03d}"
            dur = 0.25 + 0.03 * j
            (root / "wav48_silence_trimmed" / spk).mkdir(parents=True, exist_ok=True)
            sf.write(root / "wav48_silence_trimmed" / spk / f"{utt}_mic1.flac", vowel(dur, sr, 100 + 20 * i), sr)
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{utt}.txt").write_text(text + "\n")
            ali = Alignment(dur, phones=[Interval(0.0, 0.05, "sil"), Interval(0.05, dur - 0.05, "AH0"),
                                         Interval(dur - 0.05, dur, "sp")])
            write_textgrid(root / "alignments" / spk / f"{utt}.TextGrid", ali)
    (root / "speaker-info.txt").write_text("\n".join(info) + "\n")
    return root


@pytest.fixture(scope="module")
def vctk(tmp_path_factory) -> Path:
    return make_vctk(tmp_path_factory.mktemp("vctk"), n_own=6)


@pytest.fixture(scope="module")
def prepared(vctk, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare(vctk, out, show_progress=False)
    return out


def test_vctk_splits_are_valid_kaldi_dirs(prepared):
    for split in ("train", "dev", "test", "test_unseen"):
        assert validate_data_dir(prepared / split) == [], split
        data = DataDir.load(prepared / split)
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in data.wav_scp.values())
        assert set(data.text) == set(data.wav_scp)
        assert set(data.spk2gender) == set(data.speakers)


def test_heldout_speakers_and_shared_sentences(prepared):
    train, dev, test = (DataDir.load(prepared / s) for s in ("train", "dev", "test"))
    unseen = DataDir.load(prepared / "test_unseen")
    assert len(unseen.speakers) == 1  # ~10% of 6, at least 1
    assert not set(unseen.speakers) & set(train.speakers)
    assert set(train.speakers) == set(dev.speakers) == set(test.speakers)
    shared = {t.lower().rstrip(".") for t in SHARED}
    for data in (train, dev):
        assert not any(t.lower().rstrip(".") in shared for t in data.text.values())
    for spk in train.speakers:  # every shared sentence of every training speaker is in test
        assert {f"{spk}_001", f"{spk}_002"} <= set(test.utterances)
    per_spk = {s: len(u) for s, u in dev.spk2utt().items()}
    assert set(per_spk.values()) == {2}
    assert all(len(u) == 2 + 3 for u in test.spk2utt().values())


def test_phone_ali_follows_audio_duration(prepared):
    data = DataDir.load(prepared / "train")
    assert set(data.phone_ali) == set(data.utterances)
    for utt, labels in data.phone_ali.items():
        dur = sf.info(data.wav_scp[utt]).duration
        assert len(labels) == math.ceil(round(dur / 0.01, 6))
        assert labels[0] == "sil" and labels[len(labels) // 2] == "AH" and labels[-1] == "sil"


def test_speakers_tsv_and_determinism(vctk, prepared, tmp_path):
    rows = [line.split("\t") for line in (prepared / "speakers.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == sorted(GENDERS)
    assert {r[0]: r[1] for r in rows} == {s: g.lower() for s, g in GENDERS.items()}
    assert "England" in rows[0][2] and "age 20" in rows[0][2]
    prepare(vctk, tmp_path / "again", show_progress=False)
    for split in ("train", "dev", "test", "test_unseen"):
        assert (tmp_path / "again" / split / "utt2spk").read_text() == (prepared / split / "utt2spk").read_text()
    other = prepare(vctk, tmp_path / "seed1", seed=1, show_progress=False)
    assert other.utterances["train"] > 0


def test_real_corpus_mess_is_counted_not_fatal(tmp_path):
    root = make_vctk(tmp_path / "c", {"p225": "F", "p226": "M", "p227": "F", "p228": "M", "p315": "M"}, n_own=4)
    for f in (root / "txt" / "p315").iterdir():  # VCTK's p315 has no transcripts
        f.unlink()
    (root / "wav48_silence_trimmed" / "p225" / "p225_003_mic1.flac").write_bytes(b"not audio")
    sf.write(root / "wav48_silence_trimmed" / "p226" / "p226_004_mic1.flac", np.zeros(0, np.float32), 48000)
    (root / "alignments" / "p227" / "p227_005.TextGrid").unlink()
    sf.write(root / "wav48_silence_trimmed" / "p228" / "p228_007_mic2.flac", vowel(0.3, 48000, 150), 48000)
    info = (root / "speaker-info.txt").read_text().replace("p228", "#p228")  # not in speaker-info
    (root / "speaker-info.txt").write_text(info)
    summary = prepare(root, tmp_path / "data", show_progress=False)
    assert summary.skipped["unreadable or empty audio"] == 2
    assert summary.skipped["no transcript"] == 6 + 1  # p315, and p228_007 (audio only)
    assert summary.skipped["no alignment"] == 2  # p227_005 and p228_007 (mic2 only)
    assert summary.examples["speaker gender unknown"] == ["p228"]
    allutt = {}
    for split in ("train", "dev", "test", "test_unseen"):
        if (tmp_path / "data" / split).is_dir():
            assert validate_data_dir(tmp_path / "data" / split) == []
            allutt.update(read_table(tmp_path / "data" / split / "wav.scp"))
    assert allutt["p228_007"].endswith("_mic2.flac")  # mic2 used when mic1 is missing
    assert "p225_003" not in allutt and "p315_001" in allutt
    assert 0.8 < summary.aligned < 1.0


def test_folder_layout_with_lab_and_ogg(tmp_path):
    for spk in ("alice", "bob"):
        (tmp_path / "c" / spk).mkdir(parents=True)
        for j, ext in enumerate(("wav", "flac", "ogg", "wav")):
            sf.write(tmp_path / "c" / spk / f"take {j}.{ext}", vowel(0.3, 22050, 120), 22050)
        (tmp_path / "c" / spk / "take 0.lab").write_text("hello there")
        (tmp_path / "c" / spk / "notes.md").write_text("not audio")
    summary = prepare(tmp_path / "c", tmp_path / "d", dev_per_speaker=1, test_per_speaker=1, show_progress=False)
    assert summary.layout == "folders" and summary.speakers["test_unseen"] == 0
    assert sum(summary.utterances.values()) == 8
    train = DataDir.load(tmp_path / "d" / "train")
    assert validate_data_dir(tmp_path / "d" / "train") == []
    assert all(u.startswith(train.utt2spk[u] + "_") and " " not in u for u in train.utterances)
    assert not (tmp_path / "d" / "test_unseen").exists()


def test_refusals(tmp_path):
    with pytest.raises(DataError, match="not found"):
        prepare(tmp_path / "missing", tmp_path / "d")
    (tmp_path / "empty" / "spk").mkdir(parents=True)
    with pytest.raises(DataError, match="no audio"):
        prepare(tmp_path / "empty", tmp_path / "d")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        prepare(tmp_path / "empty", tmp_path / "file")


def test_choose_heldout_balances_gender():
    genders = {f"f{i}": "f" for i in range(10)} | {f"m{i}": "m" for i in range(10)}
    picked = choose_heldout(genders, 4)
    assert sorted(p[0] for p in picked) == ["f", "f", "m", "m"]
    assert picked == ["f8", "f9", "m8", "m9"]  # the last ids: the first ones stay training speakers


def test_first_speaker_stays_a_training_speaker():
    genders = {"p225": "f", "p226": "m", "p227": "m", "p228": "f"}
    assert "p225" not in choose_heldout(genders, 1)
    assert choose_heldout(genders, 2) == ["p227", "p228"]


def test_read_speaker_info_extra_columns(tmp_path):
    p = tmp_path / "speaker-info.txt"
    p.write_text("# embedded corpus\nID AGE GENDER ACCENTS REGION VOICE COMMENTS\nv01 30 female Scottish Fife en+m3\n"
                 "v02 41 X Irish Cork en+f2 extra words\n")
    info = read_speaker_info(p)
    assert info["v01"].gender == "f" and "Scottish" in info["v01"].info and "en+m3" in info["v01"].info
    assert info["v02"].gender is None and "extra words" in info["v02"].info


def test_validate_data_dir_finds_problems(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "wav.scp").write_text("spkA_2 /a.wav\nspkA_1 /b.wav\n")
    write_table(d / "utt2spk", {"spkA_1": "spkA", "spkA_2": "spkA", "x_3": "spkA"})
    write_table(d / "text", {"spkA_9": "hi"})
    problems = " | ".join(validate_data_dir(d))
    assert "wav.scp: not sorted" in problems
    assert "not prefixed" in problems and "spk2utt" in problems and "text: 1 utterance" in problems


def test_cli_prepare(vctk, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "prepare", str(vctk), str(tmp_path / "d"), "--heldout-speakers", "2"])
    assert res.exit_code == 0, res.output
    assert len(DataDir.load(tmp_path / "d" / "test_unseen").speakers) == 2
    assert "test_unseen" in res.output and "aligned: 100.0%" in res.output  # the summary table
    res = runner.invoke(app, ["data", "prepare", str(vctk), str(tmp_path / "d"), "--heldout-speakers", "0"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "d" / "test_unseen").exists()  # no stale split from the first run
    res = runner.invoke(app, ["data", "prepare", str(tmp_path / "nope"), str(tmp_path / "d")])
    assert res.exit_code == 1 and "corpus directory not found" in res.output


def test_embedded_corpus(tiny_corpus, tmp_path):
    """The embedded corpus (tests/data/conftest.py): every split valid, shared sentences only in test."""
    summary = prepare(tiny_corpus, tmp_path / "d", show_progress=False)
    assert summary.layout == "vctk" and summary.aligned == 1.0 and not summary.skipped
    assert summary.speakers["test_unseen"] == 1 and summary.shared_sentences == 5
    for split in ("train", "test", "test_unseen"):
        assert validate_data_dir(tmp_path / "d" / split) == []
    train, test = DataDir.load(tmp_path / "d" / "train"), DataDir.load(tmp_path / "d" / "test")
    shared = set(train.text.values()) & set(test.text.values())
    assert not shared
    assert all(len(train.phone_ali[u]) == math.ceil(round(sf.info(p).duration / 0.01, 6))
               for u, p in train.wav_scp.items())
    assert len((tmp_path / "d" / "speakers.tsv").read_text().splitlines()) == 4


def test_vctk_080_numeric_ids_in_speaker_info(tmp_path):
    root = make_vctk(tmp_path / "c", {"p225": "F", "p226": "M"}, n_own=3)
    info = (root / "speaker-info.txt").read_text().replace("p225 ", "225 ").replace("p226 ", "226 ")
    (root / "speaker-info.txt").write_text(info)
    summary = prepare(root, tmp_path / "d", show_progress=False)
    assert "speaker gender unknown" not in summary.skipped
    assert read_table(tmp_path / "d" / "train" / "spk2gender") == {"p225": "f", "p226": "m"}
