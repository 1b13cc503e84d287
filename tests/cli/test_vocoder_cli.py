"""The vocoder decoder kind through the commands: train, encode, decode, convert (both F0 modes), sample, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.train_fixtures import make_data_root, synthetic_wav
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.config import load_config
from vqaudio.inference import codec
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model

runner = CliRunner()
SR = 16000


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A quick vocoder VQ-VAE trained 6 steps by `vqaudio train`, and a prior trained 2 steps on its codes."""
    root = tmp_path_factory.mktemp("vocoder_cli")
    data = make_data_root(root / "data", utts=2, seconds=0.5)
    sets = ["--set", "train.threads=1", "--set", "train.batch_size=2", "--set", "train.segment_samples=1024",
            "--set", "train.max_minutes=0", "--set", "train.log_every=1", "--set", "train.valid_every=3"]
    result = run("train", data, root / "exp", "--config", "quick", *sets, "--max-steps", "6")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (root / "exp" / "log.jsonl").read_text().splitlines()]
    prior_sets = ["--set", "prior_train.threads=1", "--set", "prior_train.batch_size=2", "--set",
                  "prior.segment_codes=16", "--set", "prior_train.max_minutes=0"]
    result = run("train-prior", data, root / "prior", "--model", root / "exp" / "model.pt", "--config", "quick",
                 *prior_sets, "--max-steps", "2")
    assert result.exit_code == 0, result.output
    wav = synthetic_wav(5, 0.8, 150.0)
    sf.write(root / "in.wav", wav, SR)
    return {"root": root, "model": root / "exp" / "model.pt", "prior": root / "prior" / "prior.pt",
            "records": records, "wav": wav}


def test_training_stopped_by_the_clock_says_so(trained) -> None:
    """max_minutes before max_steps: the model is written, exit 0, and one warning names the unfinished schedule."""
    exp = trained["root"] / "exp_clock"
    result = run("train", trained["root"] / "data", exp, "--config", "quick", "--set", "train.threads=1",
                 "--set", "train.batch_size=2", "--set", "train.segment_samples=1024", "--set",
                 "train.max_minutes=0.0001", "--max-steps", "50")
    assert result.exit_code == 0, result.output
    assert (exp / "model.pt").exists() and "(max_minutes)" in result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "of 50, before its learning-rate schedule ended" in warning[0], result.stderr


def test_training_logs_the_feature_losses_without_nan(trained) -> None:
    train = [r for r in trained["records"] if r["kind"] == "train"]
    valid = [r for r in trained["records"] if r["kind"] == "valid"]
    assert len(train) == 6 and valid
    for r in train + valid:
        for key in ("recon", "spectral_l1", "aperiodicity_l1", "lf0_l1", "vuv_bce", "vq_loss"):
            assert np.isfinite(r[key]), (key, r)
    loaded = codec.load_codec(trained["model"], device="cpu")
    assert loaded.model.kind == "vocoder"
    assert not torch.equal(loaded.model.decoder.feature_std, torch.ones_like(loaded.model.decoder.feature_std))


def test_encode_decode_and_convert(trained, tmp_path) -> None:
    root, model = trained["root"], trained["model"]
    result = run("encode", root / "in.wav", tmp_path / "c.npy", "--model", model)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "c.npy.json").read_text())
    assert meta["decoder_kind"] == "vocoder" and meta["code_rate"] == 250.0 and meta["codebook_size"] == 32
    result = run("decode", tmp_path / "c.npy", tmp_path / "d.wav", "--speaker", "p226", "--model", model)
    assert result.exit_code == 0, result.output
    out, sr = sf.read(tmp_path / "d.wav")
    assert sr == SR and len(out) == len(np.load(tmp_path / "c.npy")) * 64 and np.abs(out).max() > 0
    for f0 in ("predicted", "normalized", "mapped"):
        result = run("convert", root / "in.wav", tmp_path / f"{f0}.wav", "--target-speaker", "p225", "--model", model,
                     "--f0", f0)
        assert result.exit_code == 0, result.output
        conv, _ = sf.read(tmp_path / f"{f0}.wav")
        assert len(conv) == len(trained["wav"]) and np.isfinite(conv).all()


def test_decoding_is_deterministic_and_batched_equals_alone(trained) -> None:
    """Batching is a matter of the decoder (its features agree to float rounding); the audio is then WORLD's,
    utterance by utterance, and deterministic. (Audio batched against alone is not compared: rounding can tip a
    frame of this 4-step model whose voicing sits at the threshold, and one flipped frame changes the waveform.)"""
    from vqaudio.inference.vocode import decode_features

    loaded = codec.load_codec(trained["model"], device="cpu")
    codes = [codec.encode(loaded, synthetic_wav(s, 0.3 + 0.2 * s, 120.0 + 40 * s)) for s in range(3)]
    speakers = [0, 1, 0]
    feats = decode_features(loaded, codes, speakers)
    for f, c, s in zip(feats, codes, speakers, strict=True):
        np.testing.assert_allclose(f, decode_features(loaded, [c], [s])[0], atol=1e-4)
    together = codec.synthesize(loaded, codes, speakers)
    again = codec.synthesize(loaded, codes, speakers)
    for a, b, c in zip(together, again, codes, strict=True):
        assert len(a) == len(c) * 64
        np.testing.assert_array_equal(a, b)


def test_sample_through_the_cli(trained, tmp_path) -> None:
    result = run("sample", tmp_path / "s.wav", "--speaker", "p225", "--seconds", "0.5", "--seed", "0",
                 "--model", trained["model"], "--prior", trained["prior"])
    assert result.exit_code == 0, result.output
    out, sr = sf.read(tmp_path / "s.wav")
    assert sr == SR and len(out) == 8000


def test_codes_of_another_kind_are_refused(trained, tmp_path) -> None:
    cfg = load_config("quick", ["model.decoder.kind=wavenet", "model.decoder.kernel_size=2"])
    save_model(tmp_path / "wavenet.pt", build_vqvae(cfg.model, 2).eval(), cfg.model, ["p225", "p226"])
    result = run("encode", trained["root"] / "in.wav", tmp_path / "w.npy", "--model", tmp_path / "wavenet.pt")
    assert result.exit_code == 0, result.output
    result = run("decode", tmp_path / "w.npy", tmp_path / "x.wav", "--speaker", "p225", "--model", trained["model"])
    assert_refused(result, "wavenet-kind", "vocoder-kind")
    assert not (tmp_path / "x.wav").exists()
    (tmp_path / "w.npy.json").write_text("not json")
    assert_refused(run("decode", tmp_path / "w.npy", tmp_path / "x.wav", "--speaker", "p225", "--model",
                       trained["model"]), "not a vqaudio codes description")


def test_conversion_refusals(trained, tmp_path) -> None:
    root, model = trained["root"], trained["model"]
    cfg = load_config("quick", ["model.decoder.kind=wavenet", "model.decoder.kernel_size=2"])
    save_model(tmp_path / "wn.pt", build_vqvae(cfg.model, 2).eval(), cfg.model, ["p225", "p226"])
    assert_refused(run("convert", root / "in.wav", tmp_path / "o.wav", "--target-speaker", "p225", "--model",
                       tmp_path / "wn.pt", "--f0", "mapped"), "--f0 applies to vocoder-kind models")
    assert_refused(run("convert", root / "in.wav", tmp_path / "o.wav", "--target-speaker", "p999", "--model", model,
                       "--f0", "mapped"), "unknown speaker 'p999'", "p225")
    assert_refused(run("convert", root / "in.wav", tmp_path / "o.wav", "--target-speaker", "p225", "--model", model,
                       "--f0", "sideways"), "f0 mode", "predicted", "mapped")
