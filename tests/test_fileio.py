"""Atomic writes and the same-path guard."""

from __future__ import annotations

import os

import pytest

from vqaudio.errors import VQAudioError
from vqaudio.fileio import atomic_path, atomic_write_bytes, atomic_write_text, refuse_same_path


def test_atomic_path_success_keeps_suffix(tmp_path):
    target = tmp_path / "sub" / "out.flac"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".flac") and tmp != target
        assert not target.exists()  # nothing at the target until the end
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(target.parent) == ["out.flac"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_failure_leaves_old_file(tmp_path, exc):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(exc):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise exc()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_text_and_bytes(tmp_path):
    atomic_write_text(tmp_path / "t.txt", "h\u00e9llo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "h\u00e9llo\n"
    atomic_write_bytes(tmp_path / "t.txt", b"\x00\x01")
    assert (tmp_path / "t.txt").read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["t.txt"]


def test_refuse_same_path(tmp_path, monkeypatch):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.write_bytes(b"x")
    refuse_same_path([a], b)  # different: fine
    with pytest.raises(VQAudioError, match="same as an input"):
        refuse_same_path([b, a], a)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VQAudioError):
        refuse_same_path([a], tmp_path / "." / "a.wav")
    link = tmp_path / "link.wav"
    link.symlink_to(a)
    with pytest.raises(VQAudioError):
        refuse_same_path([link], a)  # a symlink to the input is the input
