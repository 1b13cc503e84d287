"""Arithmetic coder and .vqc format, with a stand-in prior that replays fixed logits."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from vqaudio.inference import bitstream as entropy
from vqaudio.inference.bitstream import (
    FREQ_BITS,
    ArithmeticDecoder,
    ArithmeticEncoder,
    VQCError,
    compress_codes,
    decode_vqc,
    decompress_codes,
    encode_vqc,
    ideal_bits,
    quantise_logits,
    read_vqc,
    write_vqc,
)


class _ReplayStepper:
    def __init__(self, logits: np.ndarray) -> None:
        self.logits, self.t = logits, 0

    def next_logits(self) -> np.ndarray:
        return self.logits[self.t]

    def feed(self, code: int) -> None:
        self.t += 1


class ReplayPrior:
    """Predicts row t of a fixed [N, K] logits matrix at step t (ignores the codes)."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits.astype(np.float32)

    def stepper(self, speaker: int | None, backend: str = "numba") -> _ReplayStepper:
        return _ReplayStepper(self.logits)


def _sample(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((len(p), 1))
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)


def _random_logits(n: int, k: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal((n, k)) * scale).astype(np.float32)


def _peaked_logits(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    logits = np.zeros((n, k), dtype=np.float32)
    logits[np.arange(n), rng.integers(0, k, n)] = 10.0  # p(top) ~ 0.98 with K = 512
    return logits


@pytest.mark.parametrize("kind", ["random", "peaked"])
def test_round_trip_and_size_near_ideal(kind: str) -> None:
    rng = np.random.default_rng(0)
    n, k = 6000, 512
    logits = _random_logits(n, k, 2.0, rng) if kind == "random" else _peaked_logits(n, k, rng)
    codes = _sample(logits, rng)
    prior = ReplayPrior(logits)
    payload = compress_codes(prior, codes, None)
    assert np.array_equal(decompress_codes(prior, payload, n, None), codes)
    ideal = ideal_bits(logits, codes) / 8
    assert len(payload) <= ideal * 1.01 + 4, (len(payload), ideal)
    assert len(payload) >= ideal * 0.99 - 4  # cannot beat the entropy bound (by more than rounding)


def test_unlikely_codes_round_trip() -> None:
    """Codes the prior gives ~zero probability still code (the frequency floor) and decode."""
    rng = np.random.default_rng(1)
    n, k = 300, 64
    logits = np.zeros((n, k), dtype=np.float32)
    logits[:, 0] = 60.0  # p(other codes) ~ e^-60: quantised to the floor of 1 / 2^24
    codes = rng.integers(1, k, n)
    prior = ReplayPrior(logits)
    payload = compress_codes(prior, codes, None)
    assert np.array_equal(decompress_codes(prior, payload, n, None), codes)
    assert len(payload) * 8 <= n * (FREQ_BITS + 1)  # about 24 bits per floor-probability code


def test_quantised_table_is_valid() -> None:
    rng = np.random.default_rng(2)
    for logits in (rng.standard_normal(512) * 30, np.zeros(512), np.array([100.0, -100.0, 0.0])):
        cum = quantise_logits(logits)
        freq = np.diff(cum)
        assert cum[0] == 0 and freq.min() >= 1 and cum[-1] <= 1 << FREQ_BITS
        assert np.array_equal(cum, quantise_logits(logits.copy()))


def test_non_finite_logits_refused() -> None:
    with pytest.raises(entropy.VQAudioError, match="non-finite"):
        quantise_logits(np.array([0.0, np.nan]))


def test_coder_on_uniform_distribution_is_log2k() -> None:
    n, k = 4000, 512
    cum = quantise_logits(np.zeros(k))
    codes = np.random.default_rng(3).integers(0, k, n)
    enc = ArithmeticEncoder()
    for c in codes:
        enc.encode(cum, int(c))
    data = enc.finish()
    assert abs(len(data) - n * 9 / 8) <= 4
    dec = ArithmeticDecoder(data)
    assert [dec.decode(cum) for _ in range(n)] == codes.tolist()


def _file(tmp_path, n: int = 200):
    rng = np.random.default_rng(4)
    logits = _random_logits(n, 32, 1.5, rng)
    codes = _sample(logits, rng)
    prior = ReplayPrior(logits)
    data = encode_vqc(prior, codes, 3, 32, "model-abc", "prior-xyz")
    path = tmp_path / "x.vqc"
    path.write_bytes(data)
    return prior, codes, data, path


def test_vqc_round_trip(tmp_path) -> None:
    prior, codes, data, path = _file(tmp_path)
    decoded, speaker = decode_vqc(prior, path.read_bytes(), 32, "model-abc", "prior-xyz")
    assert np.array_equal(decoded, codes) and speaker == 3
    header, payload = read_vqc(path)
    assert (header.n_codes, header.codebook_size, header.speaker) == (len(codes), 32, 3)
    write_vqc(tmp_path / "y.vqc", header, payload)
    assert (tmp_path / "y.vqc").read_bytes() == data


def _recrc(d: bytes) -> bytes:
    body = d[:-4]
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"RIFF" + d[4:], "bad magic"),
        (lambda d: d[:-7], "truncated"),
        (lambda d: d[:10], "truncated"),
        (lambda d: d + b"\x00", "trailing"),
        (lambda d: d[:-8] + bytes([d[-8] ^ 0x10]) + d[-7:], "checksum"),
        (lambda d: d[:4] + b"\x07" + d[5:], "version 7"),
        (lambda d: _recrc(d[:5] + b"\x09" + d[6:]), "unknown prior backend 9"),
    ],
)
def test_corrupt_vqc_refused(tmp_path, mutate, message) -> None:
    prior, _, data, _ = _file(tmp_path)
    with pytest.raises(VQCError, match=message):
        decode_vqc(prior, mutate(data), 32, "model-abc", "prior-xyz", source="x.vqc")


def test_missing_vqc_refused(tmp_path) -> None:
    with pytest.raises(VQCError, match="no such"):
        read_vqc(tmp_path / "none.vqc")


@pytest.mark.parametrize(
    "k, model, prior_id, message",
    [(32, "model-other", "prior-xyz", "VQ-VAE model-abc"), (32, "model-abc", "prior-2", "prior prior-xyz"),
     (64, "model-abc", "prior-xyz", "codebook size")],
)
def test_foreign_vqc_refused(tmp_path, k, model, prior_id, message) -> None:
    prior, _, data, _ = _file(tmp_path)
    with pytest.raises(VQCError, match=message):
        decode_vqc(prior, data, k, model, prior_id, source="x.vqc")


def test_other_probabilities_detected_by_codes_crc(tmp_path) -> None:
    """A decoder whose prior predicts differently (e.g. another machine) fails loudly."""
    _, _, data, _ = _file(tmp_path)
    other = ReplayPrior(_random_logits(200, 32, 1.5, np.random.default_rng(99)))
    with pytest.raises(VQCError, match="fail their checksum"):
        decode_vqc(other, data, 32, "model-abc", "prior-xyz")
