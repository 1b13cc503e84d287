"""`vqaudio encode / decode / convert / speakers` through Typer's CliRunner: outputs, refusals, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.tiny_models import tiny_config
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.inference import codec
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model

SR = 16000
SPEAKERS = ["p225", "p226", "p227"]
runner = CliRunner()


def speech(seconds: float = 0.8) -> np.ndarray:
    """A short sentence from the embedded corpus' eSpeak voices, or a voiced-like signal without eSpeak."""
    try:
        from vqaudio.data.synth import SPEAKERS as VOICES
        from vqaudio.data.synth import render_utterance

        return render_utterance("Please call Stella.", VOICES[0], SR).audio[:int(seconds * SR)]
    except Exception:  # no eSpeak NG here: harmonics with a syllable-rate envelope
        t = np.arange(int(seconds * SR)) / SR
        wav = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6)) * np.sin(2 * np.pi * 3 * t) ** 2
        return (0.3 * wav).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = root / "model.pt"
    save_model(model, build_vqvae(tiny_config(), 3), tiny_config(), SPEAKERS,
               {"p225": "23 F English Southern England", "p226": "22 M English Surrey"})
    wav = speech()
    sf.write(root / "speech.wav", wav, SR)
    # stereo, 22.05 kHz, 24-bit FLAC and OGG of the same sentence are accepted too
    from vqaudio.audio import resample

    stereo = resample(wav, SR, 22050)
    sf.write(root / "stereo.flac", np.stack([stereo, 0.5 * stereo], axis=1), 22050, subtype="PCM_24")
    sf.write(root / "speech.ogg", wav, SR)
    return {"root": root, "model": model, "wav": wav}


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *fragments: str) -> None:
    """Exit 1, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_speakers_lists_ids_and_info(files) -> None:
    result = run("speakers", "--model", files["model"])
    assert result.exit_code == 0, result.output
    for text in ("p225", "p226", "p227", "Southern England", "3 speakers"):
        assert text in result.stdout


def test_encode_decode_round_trip(files, tmp_path) -> None:
    codes_path, out = tmp_path / "codes.npy", tmp_path / "out.wav"
    result = run("encode", files["root"] / "speech.wav", codes_path, "--model", files["model"])
    assert result.exit_code == 0, result.output
    codes = np.load(codes_path)
    assert codes.dtype == np.int16 and codes.shape == (int(np.ceil(len(files["wav"]) / 64)),)
    assert codes.min() >= 0 and codes.max() < 32
    result = run("decode", codes_path, out, "--speaker", "p226", "--model", files["model"], "--seed", "3",
                 "--temperature", "0.8")
    assert result.exit_code == 0, result.output
    audio, sr = sf.read(out)
    assert sr == SR and len(audio) == len(codes) * 64 and np.abs(audio).max() > 0
    again = tmp_path / "again.wav"
    run("decode", codes_path, again, "--speaker", "p226", "--model", files["model"], "--seed", "3",
        "--temperature", "0.8")
    np.testing.assert_array_equal(sf.read(again)[0], audio)  # same seed, same audio


def test_model_from_environment(files, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(codec.MODEL_ENV, str(files["model"]))
    result = run("encode", files["root"] / "speech.ogg", tmp_path / "c.npy")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.npy").exists()


def test_convert_one_and_many(files, tmp_path) -> None:
    out = tmp_path / "one.wav"
    result = run("convert", files["root"] / "stereo.flac", out, "--target-speaker", "p227", "--model", files["model"],
                 "--seed", "0")
    assert result.exit_code == 0, result.output
    assert sf.info(out).samplerate == SR and sf.info(out).frames == len(files["wav"])
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.flac"):
        sf.write(folder / name, files["wav"][:6000], SR)
    (folder / "notes.txt").write_text("not audio")
    result = run("convert", folder, files["root"] / "speech.ogg", "--out-dir", tmp_path / "out",
                 "--target-speaker", "p225", "--model", files["model"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav", "speech.wav"]
    assert sf.info(tmp_path / "out" / "a.wav").frames == 6000


@pytest.fixture()
def bad_inputs(tmp_path) -> dict:
    (tmp_path / "text.wav").write_text("this is not audio\n")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    sf.write(tmp_path / "short.wav", np.zeros(40, np.float32), SR)
    nan = np.zeros(2000, np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    np.save(tmp_path / "float.npy", np.array([1.0, 2.0]))
    np.save(tmp_path / "matrix.npy", np.zeros((3, 4), np.int16))
    np.save(tmp_path / "range.npy", np.array([0, 40], np.int16))
    np.save(tmp_path / "good.npy", np.array([0, 1, 2], np.int16))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage" * 50)
    torch.save({"format": "vqaudio-model", "payload": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    return {name: tmp_path / name for name in ("text.wav", "empty.wav", "short.wav", "nan.wav", "float.npy",
                                               "matrix.npy", "range.npy", "good.npy", "corrupt.pt", "pickled.pt")}


@pytest.mark.parametrize("name, fragments", [
    ("missing.wav", ["no such file"]),
    ("text.wav", ["not a readable audio file"]),
    ("empty.wav", ["empty"]),
    ("short.wav", ["too short", "64"]),
    ("nan.wav", ["NaN"]),
])
def test_bad_audio_is_refused(files, bad_inputs, tmp_path, name: str, fragments: list[str]) -> None:
    path = bad_inputs.get(name, tmp_path / name)
    assert_refused(run("encode", path, tmp_path / "c.npy", "--model", files["model"]), name, *fragments)
    assert_refused(run("convert", path, tmp_path / "o.wav", "--target-speaker", "p225", "--model", files["model"]),
                   *fragments)
    assert not (tmp_path / "c.npy").exists() and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("name, fragment", [
    ("float.npy", "integers"), ("matrix.npy", "1-D"), ("range.npy", "[0, 32)"), ("text.wav", "not a codes file"),
    ("missing.npy", "no such file"),
])
def test_bad_codes_are_refused(files, bad_inputs, tmp_path, name: str, fragment: str) -> None:
    path = bad_inputs.get(name, tmp_path / name)
    result = run("decode", path, tmp_path / "o.wav", "--speaker", "p225", "--model", files["model"])
    assert_refused(result, fragment)


def test_unknown_speaker_lists_known_ones(files, bad_inputs, tmp_path) -> None:
    result = run("decode", bad_inputs["good.npy"], tmp_path / "o.wav", "--speaker", "p999", "--model", files["model"])
    assert_refused(result, "unknown speaker 'p999'", "p225, p226, p227")
    result = run("convert", files["root"] / "speech.wav", tmp_path / "o.wav", "--target-speaker", "nobody",
                 "--model", files["model"])
    assert_refused(result, "unknown speaker 'nobody'", "p225")


@pytest.mark.parametrize("model, fragment", [
    ("missing.pt", "no such file"), ("corrupt.pt", "corrupt"), ("pickled.pt", "pickled"),
])
def test_bad_model_files_are_refused(files, bad_inputs, tmp_path, model: str, fragment: str) -> None:
    path = bad_inputs.get(model, tmp_path / model)
    assert_refused(run("speakers", "--model", path), fragment)
    assert_refused(run("encode", files["root"] / "speech.wav", tmp_path / "c.npy", "--model", path), fragment)


def test_no_default_model(files, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codec.MODEL_ENV, raising=False)
    monkeypatch.setattr(codec, "PRETRAINED_MODEL", tmp_path / "absent.pt")
    assert_refused(run("speakers"), "--model", "vqaudio train")


def test_output_equal_to_input_is_refused(files, bad_inputs) -> None:
    wav = files["root"] / "speech.wav"
    before = wav.read_bytes()
    assert_refused(run("encode", wav, wav, "--model", files["model"]), "same as an input")
    assert_refused(run("convert", wav, wav, "--target-speaker", "p225", "--model", files["model"]), "same as an input")
    good = bad_inputs["good.npy"]
    assert_refused(run("decode", good, good, "--speaker", "p225", "--model", files["model"]), "same as an input")
    assert wav.read_bytes() == before
    assert_refused(run("convert", wav, "--target-speaker", "p225", "--model", files["model"]), "IN OUT")


def test_crash_while_writing_leaves_no_partial_file(files, bad_inputs, tmp_path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous contents")

    def crash(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"RIFF partial")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the file was being written

    monkeypatch.setattr(sf, "write", crash)
    result = run("decode", bad_inputs["good.npy"], out, "--speaker", "p225", "--model", files["model"])
    assert result.exit_code == 130
    assert out.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in bad_inputs.values()), "out.wav"])


@pytest.mark.parametrize("kind, fragment", [("clipped", "clipped"), ("phone", "band-limited to ~4.0 kHz"),
                                            ("silent", "near-silent")])
def test_inputs_as_users_have_them_warn_but_still_encode(files, tmp_path, kind: str, fragment: str) -> None:
    wav = files["wav"]
    if kind == "clipped":
        path, data, rate = tmp_path / "clipped.wav", np.clip(wav * 8, -1, 1), SR
    elif kind == "phone":  # an 8 kHz phone-band recording
        from vqaudio.audio import resample

        path, data, rate = tmp_path / "phone.wav", resample(wav, SR, 8000), 8000
    else:
        path, data, rate = tmp_path / "silent.wav", 1e-5 * np.random.default_rng(0).standard_normal(len(wav)), SR
    sf.write(path, data.astype(np.float32), rate)
    result = run("encode", path, tmp_path / "c.npy", "--model", files["model"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and fragment in warnings[0] and path.name in warnings[0], result.stderr
    result = run("convert", path, tmp_path / "o.wav", "--target-speaker", "p226", "--model", files["model"])
    assert result.exit_code == 0 and fragment in result.stderr, result.output


def test_clean_input_gives_no_warning_and_dc_is_removed(files, tmp_path) -> None:
    result = run("encode", files["root"] / "speech.wav", tmp_path / "c.npy", "--model", files["model"])
    assert "warning" not in result.stderr
    loaded = codec.load_codec(files["model"])
    np.testing.assert_array_equal(codec.encode(loaded, files["wav"] + 0.2), codec.encode(loaded, files["wav"]))
