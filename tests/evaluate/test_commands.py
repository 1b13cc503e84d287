"""`vqaudio probe` and `vqaudio evaluate` end to end on a tiny embedded corpus and an untrained tiny model."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vqaudio.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR/{train,dev,test,test_unseen} of 4 synthetic speakers x 8 utterances (3 shared sentences)."""
    from vqaudio.data.prepare import prepare
    from vqaudio.data.synth import build_corpus

    root = tmp_path_factory.mktemp("eval_data")
    build_corpus(root / "corpus", speakers=4, utterances=8, shared=3, seed=0, show_progress=False)
    prepare(root / "corpus", root / "data", show_progress=False)
    return root / "data"


@pytest.fixture(scope="module")
def model_path(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained `quick` VQ-VAE that knows the training speakers."""
    from vqaudio.config import load_config
    from vqaudio.data.kaldi import DataDir
    from vqaudio.models import build_vqvae
    from vqaudio.models.io import save_model

    torch.manual_seed(0)
    cfg = load_config("quick", ["model.decoder.layers=2", "model.decoder.residual_channels=8"])
    speakers = DataDir.load(data_root / "train").speakers
    path = tmp_path_factory.mktemp("eval_model") / "model.pt"
    save_model(path, build_vqvae(cfg.model, len(speakers)), cfg, speakers)
    return path


def _train_label_counts(data_root: Path) -> Counter:
    counts: Counter = Counter()
    for line in (data_root / "train" / "phone_ali").read_text().splitlines():
        counts.update(line.split()[1:])
    return counts


def test_probe_command_writes_json_and_confusion_plot(data_root, model_path, tmp_path):
    out = tmp_path / "probe.json"
    res = runner.invoke(app, ["probe", str(data_root), "--model", str(model_path), "--out", str(out),
                                 "--max-utts", "4", "--max-frames", "2000"])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert [s["split"] for s in rep["splits"]] == ["test", "test_unseen"]
    assert rep["model"]["code_rate"] == 250.0 and rep["model"]["codebook_size"] == 32
    top = _train_label_counts(data_root).most_common(1)[0][0]
    for s in rep["splits"]:
        maj = s["majority"]
        assert maj["chance"]["most_frequent_phone"] == top
        assert 0.0 <= maj["accuracy"] <= maj["purity"] <= 1.0  # purity is the oracle mapping on the same frames
        assert np.asarray(maj["confusion"]).sum() == maj["frames"] > 0
    assert out.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "Phoneme probe" in res.output


def test_probe_refuses_a_data_dir_without_phone_labels(data_root, model_path, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    (copy / "train" / "phone_ali").unlink()
    res = runner.invoke(app, ["probe", str(copy), "--model", str(model_path)])
    assert res.exit_code == 1
    assert "no phone_ali" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["probe", str(copy / "train"), "--model", str(model_path)])
    assert res.exit_code == 1 and "neither a test nor a test_unseen split" in res.output


@pytest.mark.slow
def test_evaluate_command_end_to_end(data_root, model_path, tmp_path):
    out = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", str(data_root), "--model", str(model_path), "--out", str(out),
                              "--max-utts", "2", "--n-targets", "1", "--abx-triplets", "50", "--plots", "1",
                              "--no-baselines"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    codec = results["codec"]
    assert len(codec["utterances"]) == 2 and codec["systems"]["vq-vae"]["bitrate"] == pytest.approx(250 * 5)
    assert 0.0 <= codec["systems"]["vq-vae"]["stoi"] <= 1.0
    assert sum(codec["usage"]["counts"]) == codec["usage"]["frames"]
    vc = results["voice_conversion"]
    assert vc["conversions"] >= 1 and 0.0 <= vc["speaker_id"]["real_test_accuracy"] <= 1.0
    assert results["abx"]["codes"]["triplets_across"] > 0
    md = (out / "results.md").read_text()
    assert "## Codec" in md and "## Voice conversion" in md and "## ABX" in md
    for rel in results["figures"]:
        assert (out / rel).stat().st_size > 0
    assert any(r.endswith(".png") for r in results["figures"]) and any(r.endswith(".wav") for r in results["figures"])


def test_evaluate_refuses_unknown_targets(data_root, model_path, tmp_path):
    res = runner.invoke(app, ["evaluate", str(data_root), "--model", str(model_path), "--out", str(tmp_path),
                              "--max-utts", "1", "--targets", "nobody", "--no-baselines", "--abx-utts", "1"])
    assert res.exit_code == 1 and "nobody" in res.output


def test_evaluate_enrollment_enrols_unseen_speakers_and_scores(data_root, model_path, tmp_path):
    from vqaudio.data.kaldi import DataDir
    from vqaudio.models.io import load_model

    out = tmp_path / "enroll"
    res = runner.invoke(app, ["evaluate-enrollment", str(data_root), "--model", str(model_path), "--out", str(out),
                              "--n-enroll", "3", "--max-utts", "2", "--steps", "3"])
    assert res.exit_code == 0, res.output
    unseen = DataDir.load(data_root / "test_unseen").speakers
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["voices"]) == unseen and results["conversions"] == 2 * len(unseen)
    for voice in results["voices"].values():
        assert voice["enrolment_utterances"] == 3 and voice["scoring_utterances"] > 0
    assert set(unseen) <= set(results["classifier_classes"])
    assert 0.0 <= results["conversion_as_target"] <= 1.0 and 0.0 <= results["probe_conversion"] <= 1.0
    enrolled = load_model(out / "enrolled.pt")
    assert enrolled.speakers[-len(unseen):] == unseen and set(enrolled.extra["enrolled"]) == set(unseen)
    assert "identified as the enrolled voice" in (out / "results.md").read_text()
    bad = runner.invoke(app, ["evaluate-enrollment", str(data_root), "--model", str(model_path), "--out",
                              str(tmp_path / "bad"), "--n-enroll", "0"])
    assert bad.exit_code == 1 and "--n-enroll must be >= 1" in bad.stderr and "Traceback" not in bad.output
