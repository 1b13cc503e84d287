"""The default model shipped inside the package (vqaudio/pretrained/): it loads, pairs with its prior, and the
commands use it when no model is given, as on a fresh install (`vqaudio convert in.wav out.wav
--target-speaker p225`)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.inference import codec
from vqaudio.inference.prior import PRETRAINED_PRIOR, check_pair, load_prior
from vqaudio.models.io import load_model

SR = 16000
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_model_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codec.MODEL_ENV, raising=False)


def test_shipped_files_fit_the_budget_and_pair():
    model_file, prior_file = codec.PRETRAINED_MODEL, PRETRAINED_PRIOR
    assert model_file.is_file() and prior_file.is_file()
    assert model_file.stat().st_size + prior_file.stat().st_size <= 15_000_000
    assert (model_file.parent / "MODEL_CARD.md").is_file()
    model = load_model(model_file)
    assert model.sample_rate == SR and model.hop_length == 128 and model.config.vq.codebook_size == 512
    assert model.model.kind == "vocoder"  # the frame-level decoder: WORLD synthesis
    assert "p225" in model.speakers
    # the English human-derived voices, the ones README names for real recordings
    assert {"h_kal", "h_ked", "h_rms", "h_awb", "h_slt"} <= set(model.speakers)
    envelope = model.model.decoder.speaker_envelope  # each voice's GV for the postfilter, from its training audio
    assert envelope.shape[0] == len(model.speakers) and torch.isfinite(envelope).all() and (envelope[:, 0] > 0).all()
    assert model.config.vocoder.gv_strength > 0 and model.config.vocoder.f0_mode == "predicted"
    from vqaudio.inference.vocode import postfilter_reference  # each voice's decoded GV: the postfilter's scale

    assert model.config.vocoder.gv_scale == "speaker" and np.isfinite(postfilter_reference(model)).all()
    prior = load_prior(prior_file)
    check_pair(prior, model.identity, prior_file)  # raises when the prior models another VQ-VAE's codes
    card = (model_file.parent / "MODEL_CARD.md").read_text()
    assert model.identity in card and "apt-get install festival" in card  # what remaking it needs


def _speech(seconds: float) -> np.ndarray:
    from vqaudio.data.synth import SPEAKERS, render_utterance

    return render_utterance("Please call Stella.", SPEAKERS[3], SR).audio[:int(seconds * SR)]


def test_encode_and_convert_use_the_shipped_model(tmp_path):
    wav = _speech(0.6)
    sf.write(tmp_path / "in.wav", wav, SR)
    result = runner.invoke(app, ["encode", str(tmp_path / "in.wav"), str(tmp_path / "codes.npy")])
    assert result.exit_code == 0, result.output
    codes = np.load(tmp_path / "codes.npy")
    assert codes.dtype == np.int16 and len(codes) == -(-len(wav) // 128)  # 125 codes/s, the last frame padded
    assert len(np.unique(codes)) > 5  # speech is not one code repeated
    for target in ("p225", "h_kal"):  # an eSpeak NG voice of the corpus, a voice built from human recordings
        result = runner.invoke(app, ["convert", str(tmp_path / "in.wav"), str(tmp_path / f"{target}.wav"),
                                     "--target-speaker", target, "--seed", "0"])
        assert result.exit_code == 0, result.output
        out, sr = sf.read(tmp_path / f"{target}.wav")
        assert sr == SR and abs(len(out) - len(wav)) < 64
        assert np.isfinite(out).all() and np.sqrt(np.mean(out ** 2)) > 1e-3
