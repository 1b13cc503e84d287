"""Pieces of the evaluation orchestration that need no corpus: subsets, targets, the entropy-coded bitrate hook."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vqaudio.data.kaldi import DataDir
from vqaudio.errors import VQAudioError
from vqaudio.evaluate import run, splits


def test_pick_is_even_and_deterministic():
    items = [f"u{i:02d}" for i in range(10)]
    assert splits.pick(items, None) == items and splits.pick(items, 0) == items
    assert splits.pick(items, 3) == ["u00", "u04", "u09"] == splits.pick(items, 3)
    assert splits.pick(items[:2], 5) == items[:2]


def test_choose_targets_checks_names_and_spreads_by_default():
    loaded = SimpleNamespace(speakers=["p225", "p226", "p227", "p228"])
    assert splits.choose_targets(loaded, ["p225", "p226", "p228"], None, 2) == ["p225", "p228"]
    assert splits.choose_targets(loaded, loaded.speakers, ["p227"], 2) == ["p227"]
    with pytest.raises(VQAudioError, match="p999"):
        splits.choose_targets(loaded, loaded.speakers, ["p999"], 2)


def test_mfcc_frames_rate_and_centres():
    wav = np.zeros(16000, np.float32)
    wav[8000:8160] = 1.0  # a click in 10 ms frame 50 (500..510 ms)
    feats = run.mfcc_frames(wav, 16000)
    assert feats.shape[1] == 13 and abs(len(feats) - 100) <= 1
    assert int(np.argmax(feats[:, 0])) == 50  # frame n is centred at (n + 0.5) * 10 ms


def _tiny_model_and_split():
    from vqaudio.config import load_config
    from vqaudio.models import build_vqvae

    torch.manual_seed(0)
    cfg = load_config("quick")
    model = build_vqvae(cfg.model, 2).eval()
    loaded = SimpleNamespace(model=model, speakers=["a", "b"], identity="abc123", sample_rate=16000, hop_length=64,
                             config=cfg.model)
    codes = {"a_001": np.arange(50) % 32, "b_001": np.zeros(40, dtype=np.int64)}
    data = DataDir(path=Path("x"), wav_scp={u: "-" for u in codes}, utt2spk={"a_001": "a", "b_001": "b"})
    split = splits.SplitData("test", data, sorted(codes), {}, codes)
    return cfg, loaded, split


def test_entropy_bitrate_hook(tmp_path):
    from vqaudio.inference.prior import build_prior, save_prior

    cfg, loaded, split = _tiny_model_and_split()
    bps, note = run.entropy_bitrate(None, loaded, split)
    assert math.isnan(bps) and "skipped" in note
    prior = build_prior(cfg.prior, 32, 2)
    save_prior(tmp_path / "prior.pt", prior, ["a", "b"], "abc123")
    bps, note = run.entropy_bitrate(str(tmp_path / "prior.pt"), loaded, split)
    assert 0 < bps < 250 * 10 and "bits/code" in note  # an untrained prior: about log2(32) = 5 bits per code
    save_prior(tmp_path / "other.pt", prior, ["a", "b"], "not-this-model")
    with pytest.raises(VQAudioError, match="not this model"):
        run.entropy_bitrate(str(tmp_path / "other.pt"), loaded, split)


def test_decode_codes_passes_the_f0_mode_to_the_codec(monkeypatch) -> None:
    """`vqaudio evaluate --f0 mapped` reaches the codec library's synthesis (and None leaves the model's mode)."""
    import numpy as np

    from vqaudio.inference import codec

    seen = []
    monkeypatch.setattr(codec, "speaker_index", lambda loaded, s: 0)
    monkeypatch.setattr(codec, "synthesize", lambda *a, **kw: seen.append(kw.get("f0_mode")) or [np.zeros(4)])
    for mode in ("mapped", None):
        splits.decode_codes(object(), [np.zeros(2, np.int64)], ["p225"], f0_mode=mode)
    assert seen == ["mapped", None]


def test_a_bad_f0_mode_is_refused_before_any_work(tmp_path) -> None:
    import pytest

    from vqaudio.errors import DataError

    with pytest.raises(DataError, match="--f0 must be one of predicted, normalized, mapped"):
        run.run_evaluate(tmp_path / "no_data", tmp_path / "no_model.pt", tmp_path / "out",
                         run.EvaluateOptions(f0="bogus"))
