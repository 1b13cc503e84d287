"""Speaker enrolment: frozen parts stay bit-identical, old voices convert as before, the new voice works, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.train_fixtures import make_data_root, synthetic_wav
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.config import load_config
from vqaudio.errors import VQAudioError
from vqaudio.inference import codec
from vqaudio.models import build_vqvae
from vqaudio.models.io import load_model, save_model
from vqaudio.training.enroll import enroll, enroll_voice

SR = 16000
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A quick vocoder model trained 4 steps, and 3 recordings (1.5 s each) of a new 'voice'."""
    root = tmp_path_factory.mktemp("enroll")
    data = make_data_root(root / "data", utts=2, seconds=0.5)
    sets = ["--set", "train.threads=1", "--set", "train.batch_size=2", "--set", "train.segment_samples=1024",
            "--set", "train.max_minutes=0"]
    result = runner.invoke(app, ["train", str(data), str(root / "exp"), "--config", "quick", *sets, "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    voice = root / "voice"
    voice.mkdir()
    for i in range(3):
        sf.write(voice / f"v{i}.wav", synthetic_wav(40 + i, 1.5, 290.0), SR)
    return {"root": root, "model": root / "exp" / "model.pt", "voice": voice}


@pytest.fixture(scope="module")
def enrolled(setup) -> dict:
    out = setup["root"] / "with_new.pt"
    result = enroll(setup["model"], "new1", [setup["voice"]], out, steps=20, seed=3)
    return {"result": result, "path": out}


def test_frozen_parts_stay_bit_identical(setup, enrolled) -> None:
    old, new = load_model(setup["model"]), load_model(enrolled["path"])
    assert new.speakers == old.speakers + ["new1"]
    before, after = old.model.state_dict(), new.model.state_dict()
    assert set(before) == set(after)
    for key, value in before.items():
        if key.endswith(("speaker_embed.weight", "speaker_lf0", "speaker_envelope")):
            # old rows unchanged (NaN statistics stay NaN), one new row
            torch.testing.assert_close(after[key][: len(value)], value, rtol=0, atol=0, equal_nan=True, msg=key)
            assert len(after[key]) == len(value) + 1
        else:
            assert torch.equal(after[key], value), key
    row = after["decoder.wavenet.speaker_embed.weight"][-1]
    assert not torch.equal(row, before["decoder.wavenet.speaker_embed.weight"].mean(0))  # it learnt
    mixture = new.extra["enrolled"]["new1"]["mixture"]  # a convex mixture of the trained voices' rows
    assert list(mixture) == old.speakers and sum(mixture.values()) == pytest.approx(1, abs=1e-3)
    assert min(mixture.values()) >= 0 and max(mixture.values()) > 1 / len(old.speakers)
    weights = torch.tensor([mixture[s] for s in old.speakers])
    torch.testing.assert_close(row, weights @ before["decoder.wavenet.speaker_embed.weight"], atol=1e-3, rtol=1e-3)
    assert np.log(250) < after["decoder.speaker_lf0"][-1, 0] < np.log(330)  # the voice's F0 (290 Hz)
    gv, bias = after["decoder.speaker_envelope"][-1]
    assert torch.isfinite(gv).all() and (gv > 0).all()  # the voice's global variance, for the postfilter
    assert new.extra["postfilter"] == old.extra["postfilter"]  # the trained voices' postfilter references kept
    assert bias[0] == 0 and torch.isfinite(bias).all() and bias.abs().sum() > 0  # energy left alone


def test_an_enrolled_voice_is_postfiltered_by_the_utterances_scale(setup, enrolled, tmp_path, monkeypatch
                                                                   ) -> None:
    """No postfilter reference is recorded for an enrolled voice (its row is NaN: each utterance's own variance), and
    a trained voice re-enrolled with `replace` loses its stale one; the other voices keep theirs."""
    import vqaudio.inference.vocode as V
    from vqaudio.inference.vocode import postfilter_reference
    from vqaudio.training.vqvae import calibrate_model_file

    loaded = load_model(setup["model"])
    recorded = dict(loaded.extra["postfilter"]["decoded_gv"])
    assert recorded, "the trained model records its voices' reference"
    spk = next(iter(recorded))
    enroll_voice(loaded, spk, [setup["voice"]], steps=2, replace=True)
    enroll_voice(loaded, "new2", [setup["voice"]], steps=2)
    ref = postfilter_reference(loaded)
    for i, name in enumerate(loaded.speakers):
        assert np.isnan(ref[i]).all() == (name not in recorded or name == spk), name
    assert set(loaded.extra["postfilter"]["utterances"]) == set(recorded) - {spk}
    save_model(tmp_path / "m.pt", loaded.model, loaded.config, loaded.speakers, loaded.speaker_info, loaded.extra)
    decoded = []  # `vqaudio calibrate` afterwards measures the trained voices only
    monkeypatch.setattr(V, "calibrate_postfilter", lambda model, codes, speakers: decoded.extend(speakers) or {"x": 1})
    calibrate_model_file(tmp_path / "m.pt", setup["root"] / "data" / "train")
    assert sorted(set(decoded)) == [i for i, s in enumerate(loaded.speakers) if s not in (spk, "new2")]


def test_enrolment_bias_moves_decoded_envelopes_to_the_voice(setup, enrolled) -> None:
    """The bias is what the decoder misses of the voice's mean envelope: with it added, the decoder's output for the
    enrolment audio has, over the real voiced frames, about the real mean envelope (up to the per-file averaging)."""
    from vqaudio.audio import load_audio
    from vqaudio.data.world import analyze
    from vqaudio.inference.vocode import decode_features
    from vqaudio.models.vocoder import envelope_statistics

    loaded = codec.load_codec(enrolled["path"], "cpu")
    dec, row = loaded.model.decoder, loaded.speakers.index("new1")
    bias = dec.speaker_envelope[row, 1].numpy()
    errors_before, errors_after = [], []
    for f in sorted(setup["voice"].iterdir()):
        wav = load_audio(f, loaded.sample_rate)
        wav = wav[: len(wav) // loaded.hop_length * loaded.hop_length]
        made = decode_features(loaded, [codec.encode(loaded, wav)], [row])[0]
        real = analyze(wav, dec.settings)[: len(made)]
        voiced = real[:, dec.settings.vuv_index] >= 0.5
        target = envelope_statistics(real, dec.settings)[0][1:]
        decoded = envelope_statistics(made, dec.settings, voiced)[0][1:]
        errors_before.append(np.abs(decoded - target).mean())
        errors_after.append(np.abs(decoded + bias[1:] - target).mean())
    assert np.mean(errors_after) < 0.5 * np.mean(errors_before)


def test_old_speakers_convert_exactly_as_before(setup, enrolled) -> None:
    wav = synthetic_wav(9, 0.7, 140.0)
    old, new = codec.load_codec(setup["model"], "cpu"), codec.load_codec(enrolled["path"], "cpu")
    for spk in old.speakers:
        np.testing.assert_array_equal(codec.convert(old, [wav], spk)[0], codec.convert(new, [wav], spk)[0])
    out = codec.convert(new, [wav], "new1")[0]
    assert len(out) == len(wav) and np.isfinite(out).all()


def test_enrolment_is_recorded_and_deterministic(setup, enrolled, tmp_path) -> None:
    res = enrolled["result"]
    rec = load_model(enrolled["path"]).extra["enrolled"]["new1"]
    assert rec["steps"] == 20 and len(rec["files"]) == 3 and rec["seconds"] > 3.0
    assert rec["final_loss"] == pytest.approx(res.final_loss) and np.isfinite(res.losses).all()
    again = enroll(setup["model"], "new1", [setup["voice"]], tmp_path / "again.pt", steps=20, seed=3)
    assert again.identity == res.identity


def test_enroll_and_convert_through_the_cli(setup, enrolled, tmp_path) -> None:
    result = runner.invoke(app, ["enroll", "cli_voice", str(setup["voice"]), "--model", str(setup["model"]),
                                 "--out", str(tmp_path / "m.pt"), "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert "cli_voice" in result.stderr and "enrolled from 3 file(s)" in result.stderr
    assert "nearest voice" in result.stderr
    listed = runner.invoke(app, ["speakers", "--model", str(tmp_path / "m.pt")])
    assert listed.exit_code == 0 and "enrolled" in listed.stdout and "trained" in listed.stdout
    result = runner.invoke(app, ["convert", str(setup["voice"] / "v0.wav"), str(tmp_path / "o.wav"),
                                 "--target-speaker", "cli_voice", "--model", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output


def refused(args: list[str], *fragments: str) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_refusals(setup, enrolled, tmp_path) -> None:
    model, voice = setup["model"], setup["voice"]
    refused(["enroll", "p225", voice, "--model", model, "--out", tmp_path / "a.pt"], "already in this model",
            "--replace")
    short = tmp_path / "short.wav"
    sf.write(short, synthetic_wav(1, 1.0, 200.0), SR)
    refused(["enroll", "x", short, "--model", model, "--out", tmp_path / "b.pt"], "usable speech", "3 s")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 5, np.float32), SR)
    refused(["enroll", "x", silent, "--model", model, "--out", tmp_path / "b.pt"], "usable speech")
    junk = tmp_path / "notes.wav"
    junk.write_text("not audio")
    refused(["enroll", "x", voice, junk, "--model", model, "--out", tmp_path / "b.pt"], "notes.wav")
    refused(["enroll", "x", tmp_path / "nowhere", "--model", model, "--out", tmp_path / "b.pt"], "nowhere")
    cfg = load_config("quick", ["model.decoder.kind=wavenet", "model.decoder.kernel_size=2"])
    save_model(tmp_path / "wn.pt", build_vqvae(cfg.model, 2).eval(), cfg.model, ["p225", "p226"])
    refused(["enroll", "x", voice, "--model", tmp_path / "wn.pt", "--out", tmp_path / "b.pt"], "vocoder-kind",
            "wavenet kind")
    refused(["enroll", "x", voice, "--model", model, "--out", model], "same")
    refused(["enroll", "x", voice, "--model", model, "--out", tmp_path / "b.pt", "--steps", "0"], "steps must be >= 1")
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
    with pytest.raises(VQAudioError, match="already"):
        enroll(enrolled["path"], "new1", [voice], tmp_path / "c.pt", steps=2)
    replaced = enroll(enrolled["path"], "new1", [voice], tmp_path / "c.pt", steps=2, replace=True)
    assert load_model(replaced.model_path).speakers.count("new1") == 1
    single = codec.load_codec(model, "cpu")
    single.speakers = ["p225"]
    with pytest.raises(VQAudioError, match="trained voices"):
        enroll_voice(single, "p225", [voice], steps=2, replace=True)


def test_enrolled_voices_are_not_mixed(setup, enrolled, tmp_path) -> None:
    second = enroll(enrolled["path"], "new2", [setup["voice"]], tmp_path / "two.pt", steps=2)
    assert list(second.mixture) == load_model(setup["model"]).speakers  # new1 is not among them


def test_band_limited_recordings_enrol_without_envelope_statistics(setup, enrolled, tmp_path) -> None:
    """Recordings through an 8 kHz line (the voice's files resampled to 8 kHz and written so): the voice is
    enrolled, but its postfilter statistics, learnt from envelopes without the top of the band, are not (NaN
    variance, zero bias: the postfilter off for it); the full-band enrolment learnt them. The CLI says so in one
    warning line."""
    import librosa

    phone = tmp_path / "phone"
    phone.mkdir()
    for f in sorted(setup["voice"].iterdir()):
        wav, sr = sf.read(f, dtype="float32")
        sf.write(phone / f.name, librosa.resample(wav, orig_sr=sr, target_sr=8000), 8000)
    full = load_model(enrolled["path"])
    assert full.extra["enrolled"]["new1"]["envelope_statistics"] is True
    assert torch.isfinite(full.model.decoder.speaker_envelope[-1]).all()
    result = runner.invoke(app, ["enroll", "phone1", str(phone), "--model", str(setup["model"]),
                                 "--out", str(tmp_path / "m.pt"), "--steps", "5"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, warnings
    assert "band-limited to ~3.9 kHz" in warnings[0] and "postfilter off" in warnings[0], warnings
    narrow = load_model(tmp_path / "m.pt")
    record = narrow.extra["enrolled"]["phone1"]
    assert record["envelope_statistics"] is False and 3500 < record["band_hz"] < 4200, record
    row = narrow.model.decoder.speaker_envelope[-1]
    assert torch.isnan(row[0]).all() and torch.equal(row[1], torch.zeros_like(row[1]))
    out = codec.convert(codec.load_codec(tmp_path / "m.pt", "cpu"), [synthetic_wav(9, 0.7, 140.0)], "phone1")[0]
    assert np.isfinite(out).all() and np.abs(out).max() > 0
