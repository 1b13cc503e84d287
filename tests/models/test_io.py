"""Model files: round trip, fp16 storage, identity, and refusal of missing, corrupt, pickled or foreign files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from vqaudio.config import load_config
from vqaudio.errors import ModelFileError
from vqaudio.models import build_vqvae
from vqaudio.models.io import (
    export_model,
    load_model,
    load_model_file,
    save_model,
    save_model_file,
    weights_identity,
)

SPEAKERS = ["p225", "p226"]


class Marker:
    """Unpickling this would create the file named by `path`: a stand-in for malicious code in a model file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def trained_model():
    """A quick VQ-VAE whose buffers hold non-trivial state (k-means init, EMA, usage) after two training passes."""
    cfg = load_config("quick", ["model.decoder.kind=wavenet", "model.decoder.kernel_size=2"])
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, len(SPEAKERS))
    wav = 0.3 * torch.randn(2, 1024)
    for _ in range(2):
        model(wav, torch.tensor([0, 1])).loss.backward()
    return model.eval(), cfg, wav


def outputs(model, wav):
    codes = model.encode(wav)
    return codes, model.decoder_logits(codes, torch.tensor([1, 0]), torch.randint(0, 256, (2, 1024),
                                       generator=torch.Generator().manual_seed(1)))


def test_round_trip_gives_the_same_model(tmp_path, trained_model):
    model, cfg, wav = trained_model
    path = tmp_path / "model.pt"
    identity = save_model(path, model, cfg, SPEAKERS, {"p225": "F  23"}, extra={"step": 7})
    loaded = load_model(path)
    assert not loaded.model.training
    assert loaded.config == cfg.model and loaded.speakers == SPEAKERS and loaded.speaker_info == {"p225": "F  23"}
    assert (loaded.sample_rate, loaded.hop_length, loaded.extra) == (16000, 64, {"step": 7})
    assert loaded.identity == identity == weights_identity(model.state_dict()) and len(identity) == 16
    with torch.no_grad():
        (c1, l1), (c2, l2) = outputs(model, wav), outputs(loaded.model, wav)
    assert torch.equal(c1, c2) and torch.equal(l1, l2)
    for name, t in model.state_dict().items():
        assert torch.equal(t, loaded.model.state_dict()[name]), name


def test_identity_changes_with_any_weight(trained_model):
    state = {k: v.clone() for k, v in trained_model[0].state_dict().items()}
    before = weights_identity(state)
    state["quantizer.codebook"][3, 1] += 1e-6
    assert weights_identity(state) != before


def test_half_stores_fp16_and_loads_fp32(tmp_path, trained_model):
    model, cfg, wav = trained_model
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_model(full, model, cfg, SPEAKERS)
    save_model(half, model, cfg, SPEAKERS, half=True)
    assert half.stat().st_size < 0.65 * full.stat().st_size
    stored = load_model_file(half, "model")["state_dict"]
    assert stored["decoder.out2.weight"].dtype == torch.float16
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert loaded.identity != load_model(full).identity
    with torch.no_grad():
        (_, l1), (_, l2) = outputs(model, wav), outputs(loaded.model, wav)
    assert torch.allclose(l1, l2, atol=0.05)
    exported_identity = export_model(full, tmp_path / "exported.pt")  # fp16 by default, like `vqaudio export`
    assert exported_identity == load_model(tmp_path / "exported.pt").identity == loaded.identity


def test_missing_directory_corrupt_and_truncated_files_are_refused(tmp_path, trained_model):
    model, cfg, _ = trained_model
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)
    garbage = tmp_path / "garbage.pt"
    rng = np.random.default_rng(0)
    for _ in range(200):  # random bytes once broke torch's restricted unpickler with an IndexError
        garbage.write_bytes(rng.bytes(3000))
        with pytest.raises(ModelFileError, match="corrupt"):
            load_model(garbage)
    good = tmp_path / "good.pt"
    save_model(good, model, cfg, SPEAKERS)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="corrupt, truncated"):
        load_model(truncated)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_pickled_objects_are_refused_and_never_run(tmp_path, how):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    payload = {"format": "vqaudio-model", "version": 1, "config": Marker(str(marker))}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        load_model(path)
    assert not marker.exists()


def test_foreign_and_wrong_kind_files_are_refused(tmp_path, trained_model):
    model, cfg, _ = trained_model
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": model.state_dict()}, foreign)
    with pytest.raises(ModelFileError, match="not a vqaudio file"):
        load_model(foreign)
    prior = save_model_file(tmp_path / "prior.pt", "prior", {"state_dict": {}})
    with pytest.raises(ModelFileError, match="a vqaudio-prior file; expected a vqaudio-model file"):
        load_model(prior)
    future = save_model_file(tmp_path / "future.pt", "model", {})
    data = torch.load(future, weights_only=True)
    torch.save({**data, "version": 99}, future)
    with pytest.raises(ModelFileError, match="newer"):
        load_model(future)


def test_a_file_that_does_not_fit_the_code_is_refused(tmp_path, trained_model):
    model, cfg, _ = trained_model
    path = tmp_path / "model.pt"
    save_model(path, model, cfg, SPEAKERS)
    data = torch.load(path, weights_only=True)
    data["speakers"] = ["p225", "p226", "p227"]  # the speaker embedding no longer fits
    torch.save(data, path)
    with pytest.raises(ModelFileError, match="does not fit"):
        load_model(path)


def test_save_refuses_what_could_not_be_loaded_safely(tmp_path):
    with pytest.raises(TypeError, match="not plain data"):
        save_model_file(tmp_path / "x.pt", "prior", {"bad": Marker("x")})
    assert not (tmp_path / "x.pt").exists()
