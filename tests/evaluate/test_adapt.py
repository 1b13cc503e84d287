"""Speaker-adapted recognition: PocketSphinx's mixture weights read and rewritten for sphinxtrain, and one MLLR
transform per speaker (the sphinxtrain parts skip where Debian's sphinxtrain, pocketsphinx and sphinxbase-utils are
not installed)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from vqaudio.errors import DataError
from vqaudio.evaluate import adapt

needs_tools = pytest.mark.skipif(bool(adapt.missing_packages()),
                                 reason="needs Debian's sphinxtrain, pocketsphinx and sphinxbase-utils")
DIGITS = "zero one two three four five six seven eight nine".split()


def write_sendump(path: Path, quantised: np.ndarray) -> None:
    """An 8-bit sendump as PocketSphinx writes it: strings, a zero length, rows, columns, then [feat, density, sen]."""
    strings = [b"title", b"header", b"cluster_count 0", f"feature_count {quantised.shape[0]}".encode()]
    with open(path, "wb") as f:
        for s in strings:
            f.write(struct.pack("<i", len(s) + 1) + s + b"\0")
        f.write(struct.pack("<3i", 0, quantised.shape[1], quantised.shape[2]))
        f.write(quantised.astype(np.uint8).tobytes())


def test_read_sendump_turns_8_bit_logs_into_weights_that_sum_to_one(tmp_path: Path) -> None:
    q = np.random.default_rng(0).integers(0, 80, size=(2, 4, 3))
    write_sendump(tmp_path / "sendump", q)
    probs = adapt.read_sendump(tmp_path / "sendump")
    assert probs.shape == (2, 4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # the value is -log_1.0001(p) >> 10: one step is a factor 1.0001 ** 1024 between two densities
    raw = 1.0001 ** (-1024.0 * q)
    np.testing.assert_allclose(probs, raw / raw.sum(axis=1, keepdims=True), rtol=1e-9)
    (tmp_path / "short").write_bytes((tmp_path / "sendump").read_bytes()[:-1])
    with pytest.raises(DataError, match="do not hold"):
        adapt.read_sendump(tmp_path / "short")


def test_mixture_weights_file_has_sphinx3_header_and_senone_major_floats(tmp_path: Path) -> None:
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)  # [feat 2, dens 4, sen 3]
    adapt.write_mixture_weights(tmp_path / "mw", probs)
    raw = (tmp_path / "mw").read_bytes()
    head, body = raw.split(b"endhdr\n", 1)
    assert head.startswith(b"s3\n") and struct.unpack_from("<I", body)[0] == 0x11223344
    n_sen, n_feat, n_den, total = struct.unpack_from("<4i", body, 4)
    assert (n_sen, n_feat, n_den, total) == (3, 2, 4, 24)
    data = np.frombuffer(body[20:], "<f4").reshape(3, 2, 4)
    np.testing.assert_allclose(data, probs.transpose(2, 0, 1), rtol=1e-6)


def test_bundled_model_mixture_weights_are_readable() -> None:
    from pocketsphinx import get_model_path

    probs = adapt.read_sendump(Path(get_model_path("en-us/en-us")) / "sendump")
    assert probs.shape[0] == 3 and probs.shape[1] == 128  # three streams of 128-density codebooks
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)


def test_missing_tools_are_named_by_their_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(adapt, "find_tool", lambda name: None if name in ("bw", "sphinx_fe") else f"/x/{name}")
    assert adapt.missing_packages() == ["sphinxbase-utils", "sphinxtrain"]
    with pytest.raises(DataError, match="apt-get install sphinxbase-utils sphinxtrain"):
        adapt.SpeakerAdapter(tmp_path)


@needs_tools
def test_mllr_transform_helps_pocketsphinx_hear_an_espeak_voice(tmp_path: Path) -> None:
    from vqaudio.data.align import words_of
    from vqaudio.data.sentences import generate_sentences
    from vqaudio.data.synth import SPEAKERS, render_utterance
    from vqaudio.evaluate.recognize import WordRecognizer

    voice = next(s for s in SPEAKERS if s.id == "p235")  # en-gb-scotland+m7: the model hears 3 of its 10 digits
    sentences = generate_sentences(40, seed=3)
    wavs = [render_utterance(s, voice).audio for s in sentences]
    adapter = adapt.SpeakerAdapter(tmp_path)
    done = adapter.transform(voice.id, wavs, [words_of(s) for s in sentences], seconds=30)
    assert done.mllr is not None and done.mllr.is_file()
    assert 0 < done.utterances < len(sentences) and 25 <= done.seconds < 40  # stops at the budget
    digits = [render_utterance(d, voice).audio for d in DIGITS]
    plain, adapted = WordRecognizer(DIGITS), WordRecognizer(DIGITS, mllr=done.mllr)
    heard = [sum(r.recognize(w) == [d] for w, d in zip(digits, DIGITS, strict=True)) for r in (plain, adapted)]
    assert heard[1] >= heard[0] + 3, heard  # 3 -> 9 of 10 when measured


@needs_tools
def test_no_transform_without_usable_utterances(tmp_path: Path) -> None:
    adapter = adapt.SpeakerAdapter(tmp_path)
    done = adapter.transform("x", [np.zeros(16000, np.float32)], [["qqzzxv"]], seconds=30)  # not in the dictionary
    assert done.mllr is None and done.utterances == 0


def test_a_failed_transform_leaves_that_speaker_unadapted_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from vqaudio.evaluate import heard

    class FakeAdapter:
        def __init__(self, work: str) -> None:
            pass

        def transform(self, name: str, wavs: list, words: list, seconds: float) -> adapt.Adaptation:
            if name == "bob":
                raise DataError("bw failed (exit 1); see bw.log")
            return adapt.Adaptation(None, len(wavs), 1.5)

    pools = {"ann": ([np.zeros(800)], [["one"]]), "bob": ([np.zeros(800)], [["two"]])}
    monkeypatch.setattr(adapt, "SpeakerAdapter", FakeAdapter)
    monkeypatch.setattr(adapt, "missing_packages", lambda: [])
    monkeypatch.setattr(heard, "real_pools", lambda *a: pools)
    monkeypatch.setattr(heard, "voice_pools", lambda *a: {})
    recognizers, made = heard.adapt_recognizers(30, "real", "data", [], [], DIGITS, 1, 8000, None)
    assert set(recognizers) == {("ann", False), ("bob", False)}  # bob still heard, unadapted
    assert made["speakers"]["ann"] == {"utterances": 1, "seconds": 1.5}
    assert made["speakers"]["bob"]["utterances"] == 0 and "bw failed" in made["speakers"]["bob"]["error"]
    assert "bob 0 s (0) failed, unadapted" in heard.adapted_seconds_note(made)
    assert heard.adapt_recognizers(0, "real", "data", [], [], DIGITS, 1, 8000, None) == ({}, {"skipped": "off "
                                                                                             "(--adapt-seconds 0)"})


def test_bw_log_skips_are_read_from_each_of_its_messages() -> None:
    log = ("utt>     0   u00000  100 ...\n"
           'ERROR: "baum_welch.c", line 324: u00001 ignored\n'
           "WARN: utt u00002 too short\n"
           "ERROR: Skipped utterance 'u00003'\n"
           "INFO: u00004 aligned fine\n")
    ids = {f"u{i:05d}" for i in range(5)}
    assert adapt._skipped(log, ids) == {"u00001", "u00002", "u00003"}


def test_sendump_of_the_other_byte_order_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sendump").write_bytes(struct.pack(">i", 6) + b"title\0")
    with pytest.raises(DataError, match="little-endian"):
        adapt.read_sendump(tmp_path / "sendump")
