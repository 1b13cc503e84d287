"""Kaldi tables and data dirs: byte-order sorting, round trips, consistency errors."""

from __future__ import annotations

import pytest

from vqaudio.data.kaldi import DataDir, read_table, write_table
from vqaudio.errors import DataError


def test_write_table_sorts_in_byte_order(tmp_path):
    table = {"b_1": "x", "B_1": "y", "a-1": "z", "a_1": "w", "\u00e9_1": "v", "a_10": "u", "a_2": "t"}
    write_table(tmp_path / "t", table)
    keys = [line.split(" ")[0] for line in (tmp_path / "t").read_text(encoding="utf-8").splitlines()]
    assert keys == ["B_1", "a-1", "a_1", "a_10", "a_2", "b_1", "\u00e9_1"]  # LC_ALL=C sort
    assert keys == sorted(table, key=lambda k: k.encode())


def test_round_trip_keeps_values_with_spaces(tmp_path):
    table = {"u1": "/path with space/a.wav", "u2": "hello   world", "u3": ""}
    write_table(tmp_path / "t", table)
    assert (tmp_path / "t").read_text().splitlines()[-1] == "u3"  # empty value: key alone
    back = read_table(tmp_path / "t")
    assert back == {"u1": "/path with space/a.wav", "u2": "hello   world", "u3": ""}


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match="missing"):
        read_table(tmp_path / "nope")
    assert read_table(tmp_path / "nope", required=False) == {}
    (tmp_path / "dup").write_text("a 1\n\nb 2\na 3\n")
    with pytest.raises(DataError, match=r"dup:4: duplicate key 'a'"):
        read_table(tmp_path / "dup")


def make(path, **kw) -> DataDir:
    utts = ["s1_a", "s1_b", "s2_a"]
    return DataDir(path, wav_scp={u: f"/w/{u}.wav" for u in utts}, utt2spk={u: u.split("_")[0] for u in utts}, **kw)


def test_data_dir_round_trip(tmp_path):
    data = make(tmp_path / "d", text={"s1_a": "hi there"}, spk2gender={"s1": "f", "s2": "m"},
                phone_ali={"s2_a": ["sil", "AH", "AH", "sil"]})
    data.save()
    assert (tmp_path / "d" / "spk2utt").read_text() == "s1 s1_a s1_b\ns2 s2_a\n"
    back = DataDir.load(tmp_path / "d")
    assert back.wav_scp == data.wav_scp and back.utt2spk == data.utt2spk and back.text == data.text
    assert back.spk2gender == data.spk2gender and back.phone_ali == data.phone_ali
    assert back.speakers == ["s1", "s2"] and back.utterances == ["s1_a", "s1_b", "s2_a"]
    assert back.spk2utt() == {"s1": ["s1_a", "s1_b"], "s2": ["s2_a"]}


def test_consistency_errors(tmp_path):
    bad = make(tmp_path / "d")
    bad.utt2spk.pop("s1_b")
    with pytest.raises(DataError, match="wav.scp and utt2spk differ on 1 utterance"):
        bad.save()
    with pytest.raises(DataError, match="text names 1 utterance"):
        make(tmp_path / "d", text={"s9_x": "who"}).save()
    with pytest.raises(DataError, match="wav.scp is empty"):
        DataDir(tmp_path / "e", {}, {}).validate()
    with pytest.raises(DataError, match="not a data directory"):
        DataDir.load(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    write_table(tmp_path / "half" / "wav.scp", {"s1_a": "/a.wav"})
    with pytest.raises(DataError, match="utt2spk: missing"):
        DataDir.load(tmp_path / "half")
    assert not (tmp_path / "d").exists()  # a refused save writes nothing
