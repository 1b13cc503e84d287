"""Latent prior: causality, cached path == full forward, coding real codes, code caching, prior files."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from helpers.tiny_models import tiny_prior

from vqaudio.audio import save_audio
from vqaudio.config import EncoderConfig, ModelConfig, VQConfig, WaveNetConfig
from vqaudio.data.kaldi import DataDir
from vqaudio.errors import ModelFileError, VQAudioError
from vqaudio.inference.bitstream import compress_codes, decompress_codes, ideal_bits, prior_stepper
from vqaudio.inference.prior import (
    CodeSet,
    extract_codes,
    load_codeset,
    load_prior,
    prior_nll_bits,
    save_codeset,
    save_prior,
    unigram_bits,
)
from vqaudio.models import build_vqvae
from vqaudio.models.prior import IGNORE
from vqaudio.training.prior import CodeWindows

K = 32


def tiny_model_config() -> ModelConfig:
    return ModelConfig(
        encoder=EncoderConfig(channels=8, strides=[2, 2], kernel_size=4, dilations=[1]),
        vq=VQConfig(codebook_size=K, dim=4, kmeans_init=False),
        decoder=WaveNetConfig(classes=256, layers=2, stacks=1, residual_channels=4, gate_channels=4,
                              skip_channels=4, cond_channels=4, speaker_dim=2),
    )


def test_classes_follow_codebook_and_unknown_speaker_row() -> None:
    prior = tiny_prior()
    assert prior.wavenet.classes == K
    assert prior.wavenet.speaker_embed.weight.shape[0] == 3 + 1
    assert tiny_prior(conditioned=False).speaker_ids(2, 1) is None
    assert prior.speaker_ids(None, 2).tolist() == [3, 3] and prior.speaker_ids(-1, 1).tolist() == [3]
    with pytest.raises(VQAudioError, match="outside"):
        prior.speaker_ids(7, 1)


def test_prior_is_causal() -> None:
    prior = tiny_prior()
    codes = torch.randint(0, K, (2, 30))
    changed = codes.clone()
    changed[:, 12] = (changed[:, 12] + 1) % K
    spk = torch.tensor([0, 2])
    a, b = prior(codes, spk), prior(changed, spk)
    assert a.shape == (2, K, 30)
    assert torch.equal(a[..., :13], b[..., :13])  # logits[t] predicts codes[t] from codes[:t]
    assert not torch.allclose(a[..., 13], b[..., 13])


def test_speaker_changes_predictions() -> None:
    prior = tiny_prior()
    codes = torch.randint(0, K, (1, 20))
    assert not torch.allclose(prior(codes, torch.tensor([0])), prior(codes, torch.tensor([1])))


@pytest.mark.parametrize("speaker, backend", [(1, "eager"), (None, "eager"), (1, "numba"), (None, "numba")])
def test_stepper_matches_full_forward(speaker, backend) -> None:
    prior = tiny_prior()
    codes = torch.randint(0, K, (1100 if backend == "numba" else 200,))  # numba: past its first buffer (1024)
    full = prior(codes[None], None if speaker is None else torch.tensor([speaker]))[0].T  # [N, K]
    stepper = prior_stepper(prior, speaker, backend)
    stepped = []
    for c in codes.tolist():
        stepped.append(stepper.next_logits())
        stepper.feed(c)
    torch.testing.assert_close(torch.from_numpy(np.stack(stepped)), full, rtol=1e-4, atol=1e-5)


def test_loss_ignores_padding() -> None:
    prior = tiny_prior()
    targets = torch.randint(0, K, (2, 16))
    padded = targets.clone()
    padded[1, 10:] = IGNORE
    codes = torch.where(padded == IGNORE, 0, padded)
    spk = torch.tensor([0, 1])
    manual = torch.nn.functional.cross_entropy(prior(codes, spk), padded, ignore_index=IGNORE, reduction="sum")
    assert torch.isclose(prior.loss(codes, padded, spk), manual / 26)


def _wav(seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.05
    return (0.5 * np.sin(2 * np.pi * freq * t * (1 + t)) + noise).astype(np.float32)


@dataclass
class FakeLoaded:
    """The parts of vqaudio.models.io.LoadedModel the prior library uses."""

    model: torch.nn.Module
    speakers: list[str]
    identity: str
    config: ModelConfig
    sample_rate: int = 16000
    hop_length: int = 4


def _data_dir(tmp_path) -> DataDir:
    wav_scp, utt2spk = {}, {}
    for i, (spk, freq) in enumerate([("p225", 220), ("p225", 330), ("p226", 150), ("p999", 500)]):
        utt = f"{spk}_{i:03d}"
        save_audio(tmp_path / f"{utt}.wav", _wav(0.05 + 0.01 * i, freq, i))
        wav_scp[utt], utt2spk[utt] = str(tmp_path / f"{utt}.wav"), spk
    data = DataDir(tmp_path / "train", wav_scp, utt2spk)
    data.save()
    return data


def _fake_model(identity: str = "id-1") -> FakeLoaded:
    torch.manual_seed(0)
    return FakeLoaded(build_vqvae(tiny_model_config(), 2).eval(), ["p225", "p226"], identity, tiny_model_config())


def test_extract_codes_is_cached_per_identity(tmp_path, monkeypatch) -> None:
    data = _data_dir(tmp_path)
    cache = tmp_path / "exp" / "codes" / "train.npz"
    codeset = extract_codes(_fake_model(), data.path, cache)
    assert codeset.utterances == data.utterances and cache.exists()
    assert [len(c) for c in codeset.codes] == [math.ceil(len(_wav(0.05 + 0.01 * i, 1, 0)) / 4) for i in range(4)]
    assert codeset.speakers.tolist() == [0, 0, 1, -1]  # p999 is not one of the model's speakers
    calls = []
    import vqaudio.inference.prior as lib

    monkeypatch.setattr(lib, "encode_utterance", lambda m, p: calls.append(p) or np.zeros(3, np.int64))
    again = extract_codes(_fake_model(), data.path, cache)
    assert calls == [] and all(np.array_equal(a, b) for a, b in zip(again.codes, codeset.codes, strict=True))
    other = extract_codes(_fake_model("id-2"), data.path, cache)
    assert len(calls) == 4 and other.identity == "id-2" and load_codeset(cache).identity == "id-2"


def test_real_codes_round_trip_and_size(tmp_path) -> None:
    """Codes from a tiny VQ-VAE, coded under a tiny prior: exact round trip, size ~ sum of -log2 p."""
    loaded = _fake_model()
    with torch.inference_mode():
        codes = loaded.model.encode(torch.from_numpy(_wav(0.5, 180, 5))[None])[0].numpy()
    assert len(codes) == 2000
    prior = tiny_prior(2)
    payload = compress_codes(prior, codes, 1)
    assert np.array_equal(decompress_codes(prior, payload, len(codes), 1), codes)
    eager = compress_codes(prior, codes[:300], 1, backend="eager")
    assert np.array_equal(decompress_codes(prior, eager, 300, 1, backend="eager"), codes[:300])
    with torch.no_grad():
        logits = prior(torch.from_numpy(codes)[None], torch.tensor([1]))[0].T.numpy()
    ideal = ideal_bits(logits, codes) / 8
    assert ideal * 0.99 - 4 <= len(payload) <= ideal * 1.01 + 4


def test_codeset_file_round_trip(tmp_path) -> None:
    cs = CodeSet(["a", "b"], [np.array([1, 2, 3]), np.array([4])], np.array([0, -1]), "abc")
    save_codeset(tmp_path / "c.npz", cs)
    back = load_codeset(tmp_path / "c.npz")
    assert back.utterances == ["a", "b"] and back.identity == "abc" and back.speakers.tolist() == [0, -1]
    assert [c.tolist() for c in back.codes] == [[1, 2, 3], [4]]
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert load_codeset(tmp_path / "bad.npz") is None


def test_windows_pad_short_utterances() -> None:
    cs = CodeSet(["a", "b"], [np.arange(5), np.arange(100) % K], np.array([0, 1]), "x")
    codes, targets, speaker = CodeWindows(cs, 16, 64, speaker_dropout=0.5).batch([0, 1])
    assert codes.shape == targets.shape == (64, 16) and speaker.shape == (64,)
    short = (targets == IGNORE).any(dim=1)
    assert short.any() and (targets[short, 5:] == IGNORE).all() and (codes[short, 5:] == 0).all()
    assert set(speaker.tolist()) == {-1, 0, 1}
    again = CodeWindows(cs, 16, 64, speaker_dropout=0.5).batch([0, 1])
    assert torch.equal(again[1], targets) and not torch.equal(CodeWindows(cs, 16, 64, 0.5).batch([0, 2])[1], targets)


def test_unigram_and_nll_bits() -> None:
    rng = np.random.default_rng(0)
    uniform = CodeSet(["a"], [rng.integers(0, K, 20000)], np.array([0]), "x")
    assert abs(unigram_bits(uniform, uniform, K) - math.log2(K)) < 0.01
    skewed = CodeSet(["a"], [np.zeros(1000, np.int64)], np.array([0]), "x")
    assert unigram_bits(skewed, skewed, K) < 0.1
    nll = prior_nll_bits(tiny_prior(), CodeSet(["a"], [rng.integers(0, K, 50)], np.array([0]), "x"))
    assert 0.5 * math.log2(K) < nll < 2 * math.log2(K)  # untrained: about log2 K


def test_prior_file_round_trip(tmp_path) -> None:
    prior = tiny_prior()
    identity = save_prior(tmp_path / "prior.pt", prior, ["p225", "p226", "p227"], "vqvae-id", {"step": 3})
    loaded = load_prior(tmp_path / "prior.pt")
    assert (loaded.identity, loaded.model_identity, loaded.codebook_size) == (identity, "vqvae-id", K)
    assert loaded.speakers == ["p225", "p226", "p227"] and loaded.extra == {"step": 3}
    codes = torch.randint(0, K, (1, 20))
    assert torch.equal(loaded.prior(codes, torch.tensor([1])), prior(codes, torch.tensor([1])))


def test_model_file_is_not_a_prior(tmp_path) -> None:
    from vqaudio.models.io import save_model

    cfg = tiny_model_config()
    save_model(tmp_path / "model.pt", build_vqvae(cfg, 2), cfg, ["a", "b"])
    with pytest.raises(ModelFileError, match="expected a vqaudio-prior"):
        load_prior(tmp_path / "model.pt")


@pytest.mark.parametrize("method", ["numba", "eager"])
def test_cached_sampling_matches_full_forward(method) -> None:
    """Greedy (temperature 0) cached sampling picks, at every step, the argmax of the full forward pass."""
    from vqaudio.inference.sampling import sample_codes

    prior = tiny_prior(seed=3)
    codes = sample_codes(prior, 60, 1, temperature=0.0, seed=0, method=method)
    with torch.no_grad():
        full = prior(torch.from_numpy(codes)[None], torch.tensor([1]))[0]  # [K, N]
    assert np.array_equal(full.argmax(dim=0).numpy(), codes)


def test_sampling_is_reproducible_with_a_seed() -> None:
    from vqaudio.inference.sampling import sample_codes

    prior = tiny_prior(seed=4)
    a = sample_codes(prior, 200, 0, temperature=1.0, seed=11)
    assert a.shape == (200,) and 0 <= a.min() and a.max() < K
    assert np.array_equal(a, sample_codes(prior, 200, 0, temperature=1.0, seed=11))
    assert not np.array_equal(a, sample_codes(prior, 200, 0, temperature=1.0, seed=12))
    assert np.array_equal(a, sample_codes(prior, 200, 0, temperature=1.0, seed=11, method="eager"))


def test_compressed_file_round_trip_and_refusals(tmp_path) -> None:
    from vqaudio.inference.bitstream import VQCError
    from vqaudio.inference.files import load_compressed, save_compressed

    save_prior(tmp_path / "prior.pt", tiny_prior(), ["a", "b", "c"], "vqvae-1")
    loaded = load_prior(tmp_path / "prior.pt")
    codes = np.random.default_rng(0).integers(0, K, 300)
    size = save_compressed(tmp_path / "x.vqc", loaded, codes, 2, "vqvae-1")
    assert size == (tmp_path / "x.vqc").stat().st_size and size < 300 * 5 / 8 * 1.1 + 80
    back, speaker = load_compressed(tmp_path / "x.vqc", loaded, "vqvae-1")
    assert np.array_equal(back, codes) and speaker == 2
    with pytest.raises(VQCError, match="trained for VQ-VAE vqvae-1"):
        save_compressed(tmp_path / "y.vqc", loaded, codes, 2, "vqvae-2")
    with pytest.raises(VQCError, match="made with VQ-VAE vqvae-1"):
        load_compressed(tmp_path / "x.vqc", loaded, "vqvae-2")
    save_prior(tmp_path / "other.pt", tiny_prior(seed=9), ["a", "b", "c"], "vqvae-1")
    with pytest.raises(VQCError, match="coded with prior"):
        load_compressed(tmp_path / "x.vqc", load_prior(tmp_path / "other.pt"), "vqvae-1")


def test_prior_task_learns_predictable_codes_on_the_training_loop(tmp_path) -> None:
    """The shared training loop drives PriorTask: on periodic codes the dev NLL falls far below log2 K,
    and arithmetic coding under the trained prior costs about that NLL."""
    from vqaudio.config import load_config
    from vqaudio.inference.prior import load_prior, score_prior
    from vqaudio.training.loop import train
    from vqaudio.training.prior import PriorTask

    period = np.array([3, 17, 5, 30, 8])  # each code determines the next
    utts = [np.tile(np.roll(period, i), 20) for i in range(4)]
    train_set = CodeSet(["a", "b", "c", "d"], utts, np.array([0, 1, 0, 1]), "vqvae-x")
    cfg = load_config(None, ["prior_train.threads=1", "prior_train.batch_size=8", "prior_train.max_steps=80",
                             "prior_train.lr=1e-2", "prior_train.warmup_steps=5", "prior_train.valid_every=40",
                             "prior_train.checkpoint_every=40", "prior.segment_codes=32", "prior_train.amp=false"])
    task = PriorTask(tiny_prior(2), cfg, train_set, train_set, ["s0", "s1"], codes_per_second=250.0)
    result = train(task, cfg, tmp_path / "exp", show_progress=False)
    assert result.step == 80 and result.valid["bits_per_code"] < 0.5
    scores = score_prior(task.model, train_set, train_set, 250.0)
    assert scores.nll_bits < 1.0 < scores.unigram_bits < scores.log2_k == 5.0
    loaded = load_prior(tmp_path / "exp" / "prior.pt")
    assert loaded.model_identity == "vqvae-x" and loaded.extra["codes_per_second"] == 250.0
    payload = compress_codes(loaded.prior, utts[0], 0)
    assert len(payload) * 8 <= scores.nll_bits * len(utts[0]) * 1.5 + 32
