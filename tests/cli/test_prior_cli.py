"""`vqaudio train-prior` and `vqaudio sample` end to end on a tiny data dir (CliRunner, a few steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.train_fixtures import make_data_root
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.config import load_config
from vqaudio.inference.prior import load_prior
from vqaudio.models import build_vqvae
from vqaudio.models.io import load_model, save_model

SETS = ["--set", "prior_train.threads=1", "--set", "prior_train.batch_size=2", "--set", "prior.segment_codes=16",
        "--set", "prior_train.log_every=1", "--set", "prior_train.max_minutes=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A data root, an (untrained) quick VQ-VAE file and a prior trained 3 steps on its codes."""
    root = tmp_path_factory.mktemp("prior_cli")
    data = make_data_root(root / "data", utts=2, seconds=0.3)
    torch.manual_seed(0)
    cfg = load_config("quick")
    model_path = root / "model.pt"
    save_model(model_path, build_vqvae(cfg.model, 2).eval(), cfg.model, ["p225", "p226"])
    exp = root / "exp"
    result = CliRunner().invoke(app, ["train-prior", str(data), str(exp), "--model", str(model_path),
                                      "--config", "quick", *SETS, "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    return {"data": data, "model": model_path, "exp": exp, "stdout": result.output}


def test_train_prior_exports_prior_and_scores(trained) -> None:
    exp = trained["exp"]
    prior = load_prior(exp / "prior.pt")
    assert prior.model_identity == load_model(trained["model"]).identity
    assert prior.codebook_size == 32 and prior.speakers == ["p225", "p226"] and prior.extra["step"] == 3
    scores = json.loads((exp / "prior_scores.json").read_text())
    assert scores["scored_on"] == "dev" and scores["log2_k"] == 5.0
    assert 0 < scores["nll_bits_per_code"] < 10 and scores["nll_bits_per_second"] == pytest.approx(
        scores["nll_bits_per_code"] * 250)
    assert "bits/code" in trained["stdout"] and "unigram" in trained["stdout"]
    assert (exp / "codes" / "train.npz").exists() and (exp / "codes" / "dev.npz").exists()
    records = [json.loads(line) for line in (exp / "log.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "valid" and "bits_per_code" in r for r in records)


def test_train_prior_resumes_without_reextracting(trained) -> None:
    exp = trained["exp"]
    cache_mtime = (exp / "codes" / "train.npz").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["train-prior", str(trained["data"]), str(exp), "--model",
                                      str(trained["model"]), "--config", "quick", *SETS, "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "step 4" in result.output and load_prior(exp / "prior.pt").extra["step"] == 4
    assert (exp / "codes" / "train.npz").stat().st_mtime_ns == cache_mtime
    starts = [json.loads(x) for x in (exp / "log.jsonl").read_text().splitlines() if '"start"' in x]
    assert starts[-1]["resumed"] is True


def test_sample_end_to_end_and_reproducible(trained, tmp_path) -> None:
    args = ["--speaker", "p226", "--seconds", "0.05", "--prior", str(trained["exp"] / "prior.pt"),
            "--model", str(trained["model"]), "--seed", "7"]
    runner = CliRunner()
    out = runner.invoke(app, ["sample", str(tmp_path / "a.wav"), *args, "--codes-out", str(tmp_path / "a.npy")])
    assert out.exit_code == 0, out.output
    wav, sr = sf.read(tmp_path / "a.wav")
    assert sr == 16000 and len(wav) == 800
    codes = np.load(tmp_path / "a.npy")
    assert codes.shape == (13,) and codes.min() >= 0 and codes.max() < 32  # ceil(800 / 64)
    again = runner.invoke(app, ["sample", str(tmp_path / "b.wav"), *args, "--codes-out", str(tmp_path / "b.npy")])
    assert again.exit_code == 0 and np.array_equal(np.load(tmp_path / "b.npy"), codes)
    assert np.array_equal(sf.read(tmp_path / "b.wav")[0], wav)


def test_sample_refuses_unknown_speaker_and_foreign_prior(trained, tmp_path) -> None:
    runner = CliRunner()
    common = ["--prior", str(trained["exp"] / "prior.pt"), "--seconds", "0.05"]
    bad = runner.invoke(app, ["sample", str(tmp_path / "x.wav"), "--speaker", "p999", "--model",
                              str(trained["model"]), *common])
    assert bad.exit_code == 1 and "unknown speaker 'p999'" in bad.output and "Traceback" not in bad.output
    cfg = load_config("quick")
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_model(other, build_vqvae(cfg.model, 2), cfg.model, ["p225", "p226"])
    foreign = runner.invoke(app, ["sample", str(tmp_path / "x.wav"), "--speaker", "p225", "--model", str(other),
                                  *common])
    assert foreign.exit_code == 1 and "trained for VQ-VAE" in foreign.output
    assert not (tmp_path / "x.wav").exists()


def test_train_prior_refuses_missing_model(tmp_path) -> None:
    result = CliRunner().invoke(app, ["train-prior", str(tmp_path), str(tmp_path / "exp"), "--model",
                                      str(tmp_path / "none.pt"), "--config", "quick"])
    assert result.exit_code == 1 and "no such file" in result.output


def test_compress_file_round_trip(trained, tmp_path) -> None:
    from vqaudio.audio import load_audio
    from vqaudio.inference.bitstream import VQCError
    from vqaudio.inference.codec import encode, load_codec
    from vqaudio.inference.files import compress_file, decompress_file

    wav_path = sorted((trained["data"] / "audio").glob("p226_dev*.flac"))[0]
    prior = trained["exp"] / "prior.pt"
    result = compress_file(wav_path, tmp_path / "x.vqc", trained["model"], prior, speaker="p226")
    loaded = load_codec(trained["model"])
    codes = encode(loaded, load_audio(wav_path, 16000))
    assert result.n_codes == len(codes) and result.n_bytes == (tmp_path / "x.vqc").stat().st_size
    assert result.bits_per_second == pytest.approx(result.bits_per_code * 250, rel=0.01)
    _, back, speaker = decompress_file(tmp_path / "x.vqc", trained["model"], prior)
    assert np.array_equal(back, codes) and speaker == "p226"
    (tmp_path / "bad.vqc").write_bytes((tmp_path / "x.vqc").read_bytes()[:-3])
    with pytest.raises(VQCError, match="truncated"):
        decompress_file(tmp_path / "bad.vqc", trained["model"], prior)


def test_sample_without_prior_says_how_to_get_one(trained, tmp_path, monkeypatch) -> None:
    import vqaudio.inference.sampling

    monkeypatch.setattr(vqaudio.inference.prior, "PRETRAINED_PRIOR", tmp_path / "none.pt")
    result = CliRunner().invoke(app, ["sample", str(tmp_path / "x.wav"), "--speaker", "p225", "--model",
                                      str(trained["model"])])
    assert result.exit_code == 1 and "no --prior given" in result.output and "train-prior" in result.output


def test_encode_compress_and_decode_vqc_through_the_cli(trained, tmp_path) -> None:
    """`vqaudio encode --compress` then `vqaudio decode X.vqc` give the same audio as the plain .npy path."""
    runner = CliRunner()
    wav_path = sorted((trained["data"] / "audio").glob("p226_dev*.flac"))[0]
    model, prior = str(trained["model"]), str(trained["exp"] / "prior.pt")
    vqc, npy = tmp_path / "x.vqc", tmp_path / "x.npy"
    done = runner.invoke(app, ["encode", str(wav_path), str(vqc), "--compress", "--model", model, "--prior", prior,
                               "--speaker", "p226"])
    assert done.exit_code == 0, done.output
    assert "bits/code" in done.output and vqc.stat().st_size > 0
    assert runner.invoke(app, ["encode", str(wav_path), str(npy), "--model", model]).exit_code == 0
    outs = {}
    for name, codes, extra in (("vqc", vqc, []), ("npy", npy, ["--speaker", "p226"])):
        outs[name] = tmp_path / f"{name}.wav"
        done = runner.invoke(app, ["decode", str(codes), str(outs[name]), "--model", model, "--prior", prior,
                                   "--seed", "3", *extra])
        assert done.exit_code == 0, done.output
    a, b = sf.read(outs["vqc"])[0], sf.read(outs["npy"])[0]
    assert np.array_equal(a, b)  # same codes, speaker recorded in the .vqc, same seed: same audio
    refused = runner.invoke(app, ["encode", str(wav_path), str(npy), "--speaker", "p226", "--model", model])
    assert refused.exit_code == 1 and "only apply with --compress" in refused.output
