"""Arithmetic coding of code sequences under the latent prior, and the `.vqc` file format.

The prior (a WaveNet over codes, `vqaudio.models.prior.LatentPrior`) predicts a K-way
distribution for each code given the codes before it; an arithmetic coder spends
-log2 p(code) bits on each, so a file costs about the prior's NLL (paper section 4.3),
against log2(K) = 9 bits/code for raw codes.

Coder: a 32-bit integer arithmetic coder after Witten, Neal & Cleary (1987), with the
"bits to follow" (underflow) renormalisation, so no carry ever propagates into bytes
already written. Frequencies are integers summing to at most 2**24 (`FREQ_BITS`), each at
least 1 so that every code stays codable.

Bit-exactness: encoder and decoder must build the *same* integer frequency tables. Both
run the prior step by step through the one cached path (`prior_stepper`), batch 1,
with the same backend (numba by default; the header records it), and quantise the float32
logits with `quantise_logits` (numpy float64, one row at a time).
On one machine with one torch build this is deterministic. Across machines (another CPU
instruction set, GPU vs CPU, another torch or numpy version, or another thread count) the
logits may differ in the last bits and decoding may diverge; the header holds a CRC32 of
the codes, so such a divergence is reported as an error rather than returned as garbage.

`.vqc` layout (little endian):

    magic b"VQC1" | version u8 | stepper backend u8 (0 eager, 1 numba) | K u32 | n_codes u32
    | speaker i32 (-1: none) | codes_crc32 u32
    | len u8 + model identity (UTF-8) | len u8 + prior identity (UTF-8)
    | payload_len u32 | payload | crc32 u32 of every byte before it
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vqaudio.errors import VQAudioError
from vqaudio.fileio import atomic_write_bytes
from vqaudio.models.prior import LatentPrior, PriorStepper

MAGIC = b"VQC1"
BACKENDS = ("eager", "numba")  # how the prior is stepped; index stored in the header
VERSION = 1
FREQ_BITS = 24  # frequency tables sum to at most 2**24; must stay <= PRECISION - 2
PRECISION = 32
_FULL = (1 << PRECISION) - 1
_HALF = 1 << (PRECISION - 1)
_QUARTER = 1 << (PRECISION - 2)


class VQCError(VQAudioError):
    """A `.vqc` file is corrupt, truncated, or was made with another model or prior."""


class Stepper(Protocol):
    """The prior's cached incremental path: logits for the next code, then feed the code."""

    def next_logits(self) -> np.ndarray: ...  # float32 [K]

    def feed(self, code: int) -> None: ...


class SteppablePrior(Protocol):
    """Any other predictor that makes its own steppers (the coder's tests replay fixed logits)."""

    def stepper(self, speaker: int | None, backend: str = "numba") -> Stepper: ...


def prior_stepper(prior: LatentPrior | SteppablePrior, speaker: int | None, backend: str = "numba") -> Stepper:
    """The prior's cached incremental path for one sequence (what arithmetic coding runs on both sides). backend:
    "numba" (`numba_loop.NumbaPriorStepper`, the compiled CPU loop, ~100x faster on CPU) or "eager" (`PriorStepper`:
    `WaveNet.step` in torch, on the prior's device). The two agree to float tolerance, not bit for bit."""
    if not isinstance(prior, LatentPrior):
        return prior.stepper(speaker, backend)
    if backend == "numba":
        from vqaudio.inference.numba_loop import NumbaPriorStepper

        return NumbaPriorStepper(prior, speaker)
    if backend == "eager":
        return PriorStepper(prior, speaker)
    raise ValueError(f"unknown stepper backend {backend!r}: 'numba' or 'eager'")


# --------------------------------------------------------------------------- frequency tables


def quantise_logits(logits: np.ndarray) -> np.ndarray:
    """Integer cumulative frequencies from one row of logits.

    Args:
        logits: [K] float (the prior's output for one step).

    Returns:
        int64 [K + 1]: cum[0] = 0, cum[k+1] - cum[k] >= 1 is code k's frequency,
        cum[K] <= 2**FREQ_BITS is the total. Deterministic for identical input bits.
    """
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise VQAudioError("the prior produced non-finite logits; cannot code with it")
    p = np.exp(x - x.max())
    p /= p.sum()
    freq = np.floor(p * float((1 << FREQ_BITS) - len(x))).astype(np.int64) + 1
    cum = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(freq, out=cum[1:])
    return cum


# --------------------------------------------------------------------------- coder


class ArithmeticEncoder:
    """Witten-Neal-Cleary arithmetic encoder with 32-bit integer state."""

    def __init__(self) -> None:
        self.low, self.high, self.pending = 0, _FULL, 0
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)
        self.pending = 0

    def encode(self, cum: np.ndarray, symbol: int) -> None:
        """Code `symbol` under cumulative frequencies `cum` [K + 1] (from `quantise_logits`)."""
        total, lo, hi = int(cum[-1]), int(cum[symbol]), int(cum[symbol + 1])
        if not 0 <= lo < hi <= total <= _QUARTER:
            raise ValueError(f"symbol {symbol} has an empty or invalid frequency range")
        span = self.high - self.low + 1
        self.high = self.low + span * hi // total - 1
        self.low = self.low + span * lo // total
        while True:
            if self.high < _HALF:
                self._emit(0)
            elif self.low >= _HALF:
                self._emit(1)
                self.low -= _HALF
                self.high -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:
                self.pending += 1
                self.low -= _QUARTER
                self.high -= _QUARTER
            else:
                break
            self.low = 2 * self.low
            self.high = 2 * self.high + 1

    def finish(self) -> bytes:
        """Flush the two bits that pin the final interval; trailing zero bytes are dropped
        (the decoder reads zeros past the end)."""
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        data = np.packbits(np.asarray(self.bits, dtype=np.uint8)).tobytes()
        return data.rstrip(b"\x00")


class ArithmeticDecoder:
    """Decoder matching `ArithmeticEncoder`; reads zero bits past the end of `data`."""

    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()
        self.pos = 0
        self.low, self.high = 0, _FULL
        self.value = 0
        for _ in range(PRECISION):
            self.value = (self.value << 1) | self._next_bit()

    def _next_bit(self) -> int:
        bit = self.bits[self.pos] if self.pos < len(self.bits) else 0
        self.pos += 1
        return bit

    def decode(self, cum: np.ndarray) -> int:
        """Return the next symbol coded under cumulative frequencies `cum` [K + 1]."""
        total = int(cum[-1])
        span = self.high - self.low + 1
        count = ((self.value - self.low + 1) * total - 1) // span
        symbol = int(np.searchsorted(cum, count, side="right")) - 1
        symbol = min(max(symbol, 0), len(cum) - 2)
        lo, hi = int(cum[symbol]), int(cum[symbol + 1])
        self.high = self.low + span * hi // total - 1
        self.low = self.low + span * lo // total
        while True:
            if self.high < _HALF:
                pass
            elif self.low >= _HALF:
                self.value -= _HALF
                self.low -= _HALF
                self.high -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:
                self.value -= _QUARTER
                self.low -= _QUARTER
                self.high -= _QUARTER
            else:
                break
            self.low = 2 * self.low
            self.high = 2 * self.high + 1
            self.value = (self.value << 1) | self._next_bit()
        return symbol

    @property
    def overrun_bits(self) -> int:
        """Bits read past the end of the data (beyond the 32-bit window: a truncation hint)."""
        return max(0, self.pos - len(self.bits) - PRECISION)


# --------------------------------------------------------------------------- codes under the prior


def compress_codes(prior: LatentPrior | SteppablePrior, codes: Iterable[int] | np.ndarray, speaker: int | None,
                   backend: str = "numba") -> bytes:
    """Arithmetic-code a code sequence under the prior's step-by-step predictions.

    Args:
        prior: a `LatentPrior` in eval mode (or any `SteppablePrior`).
        codes: [N] code indices in [0, K).
        speaker: speaker index for a speaker-conditioned prior, else None.
        backend: how the prior is stepped ("numba" or "eager"); the decoder must use the same.

    Returns:
        The payload (about sum_t -log2 p(code_t | codes_<t) bits, plus at most ~2 bytes).
    """
    stepper = prior_stepper(prior, speaker, backend)
    encoder = ArithmeticEncoder()
    for code in np.asarray(codes, dtype=np.int64).reshape(-1).tolist():
        cum = quantise_logits(stepper.next_logits())
        if not 0 <= code < len(cum) - 1:
            raise VQAudioError(f"code {code} is outside the prior's codebook [0, {len(cum) - 1})")
        encoder.encode(cum, code)
        stepper.feed(code)
    return encoder.finish()


def decompress_codes(prior: LatentPrior | SteppablePrior, data: bytes, n_codes: int, speaker: int | None,
                     backend: str = "numba") -> np.ndarray:
    """Invert `compress_codes`: returns int64 [n_codes]. The prior and backend must be the encoder's."""
    stepper = prior_stepper(prior, speaker, backend)
    decoder = ArithmeticDecoder(data)
    codes = np.empty(n_codes, dtype=np.int64)
    for t in range(n_codes):
        code = decoder.decode(quantise_logits(stepper.next_logits()))
        codes[t] = code
        stepper.feed(code)
    return codes


def ideal_bits(logits: np.ndarray, codes: np.ndarray) -> float:
    """sum_t -log2 softmax(logits[t])[codes[t]]: the size an ideal coder reaches, in bits.

    Args:
        logits: [N, K] float; codes: [N] int.
    """
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(codes)), np.asarray(codes)].sum() / np.log(2))


def codes_crc32(codes: np.ndarray) -> int:
    """CRC32 of the codes as little-endian int32 (checks what the decoder reproduced)."""
    return zlib.crc32(np.asarray(codes, dtype="<i4").tobytes()) & 0xFFFFFFFF


# --------------------------------------------------------------------------- .vqc files


@dataclass
class VQCHeader:
    """What a `.vqc` file says about its codes."""

    model_identity: str  # identity of the VQ-VAE that made the codes (LoadedModel.identity)
    prior_identity: str  # identity of the prior that coded them
    codebook_size: int  # K
    n_codes: int  # N
    speaker: int  # speaker index in the VQ-VAE's speaker list; -1 when none
    codes_crc32: int  # CRC32 of the codes (codes_crc32)
    backend: str = "numba"  # how the prior was stepped (one of BACKENDS)


_FIXED = struct.Struct("<4sBBIIiI")


def pack_vqc(header: VQCHeader, payload: bytes) -> bytes:
    """Serialise a header and payload into the bytes of a `.vqc` file."""
    ids = b""
    for ident in (header.model_identity, header.prior_identity):
        raw = ident.encode("utf-8")
        if len(raw) > 255:
            raise ValueError("identity longer than 255 bytes")
        ids += bytes([len(raw)]) + raw
    fixed = _FIXED.pack(MAGIC, VERSION, BACKENDS.index(header.backend), header.codebook_size, header.n_codes,
                        header.speaker, header.codes_crc32)
    body = fixed + ids + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def unpack_vqc(data: bytes, source: str = "<bytes>") -> tuple[VQCHeader, bytes]:
    """Parse `.vqc` bytes; raises VQCError (one line naming `source`) when bad or truncated."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise VQCError(f"{source}: not a .vqc file (bad magic)")
    if len(data) < _FIXED.size + 2 + 4 + 4:
        raise VQCError(f"{source}: truncated .vqc file ({len(data)} bytes)")
    _, version, backend, k, n, speaker, crc_codes = _FIXED.unpack_from(data, 0)
    if version != VERSION:
        raise VQCError(f"{source}: .vqc version {version} is not supported (this vqaudio reads {VERSION})")
    pos, ids = _FIXED.size, []
    for _ in range(2):
        length = data[pos] if pos < len(data) else 0
        ids.append(data[pos + 1:pos + 1 + length].decode("utf-8", errors="replace"))
        pos += 1 + length
    if pos + 4 > len(data):
        raise VQCError(f"{source}: truncated .vqc file ({len(data)} bytes)")
    (n_payload,) = struct.unpack_from("<I", data, pos)
    end = pos + 4 + n_payload
    if end + 4 != len(data):
        kind = "truncated" if end + 4 > len(data) else "has trailing bytes:"
        raise VQCError(f"{source}: {kind} .vqc file ({len(data)} bytes, expected {end + 4})")
    (crc,) = struct.unpack_from("<I", data, end)
    if crc != zlib.crc32(data[:end]) & 0xFFFFFFFF:
        raise VQCError(f"{source}: corrupt .vqc file (checksum mismatch)")
    if backend >= len(BACKENDS):
        raise VQCError(f"{source}: unknown prior backend {backend} in .vqc header")
    return VQCHeader(ids[0], ids[1], k, n, speaker, crc_codes, BACKENDS[backend]), data[pos + 4:end]


def write_vqc(path: str | os.PathLike, header: VQCHeader, payload: bytes) -> None:
    """Write a `.vqc` file atomically."""
    atomic_write_bytes(path, pack_vqc(header, payload))


def read_vqc(path: str | os.PathLike) -> tuple[VQCHeader, bytes]:
    """Read and check a `.vqc` file (magic, version, length, CRC32)."""
    p = Path(path)
    if not p.is_file():
        raise VQCError(f"{p}: no such .vqc file")
    return unpack_vqc(p.read_bytes(), str(p))


def check_identities(header: VQCHeader, model_identity: str, prior_identity: str, source: str) -> None:
    """Refuse a file made with another VQ-VAE or prior (decoding it would give noise)."""
    if header.model_identity != model_identity:
        raise VQCError(f"{source}: made with VQ-VAE {header.model_identity}, not this model ({model_identity})")
    if header.prior_identity != prior_identity:
        raise VQCError(f"{source}: coded with prior {header.prior_identity}, not this prior ({prior_identity})")


def encode_vqc(prior: LatentPrior, codes: np.ndarray, speaker: int | None, codebook_size: int,
               model_identity: str, prior_identity: str, backend: str = "numba") -> bytes:
    """Codes [N] -> the bytes of a `.vqc` file (header + arithmetic-coded payload + CRC32)."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    payload = compress_codes(prior, codes, speaker, backend)
    header = VQCHeader(model_identity, prior_identity, codebook_size, len(codes),
                       -1 if speaker is None else int(speaker), codes_crc32(codes), backend)
    return pack_vqc(header, payload)


def decode_vqc(prior: LatentPrior, data: bytes, codebook_size: int, model_identity: str,
               prior_identity: str, source: str = "<bytes>") -> tuple[np.ndarray, int | None]:
    """The bytes of a `.vqc` file -> (codes int64 [N], speaker index or None).

    Raises VQCError when the file is corrupt, foreign (another VQ-VAE, prior or K), or when
    the decoded codes fail their CRC (the prior computed other probabilities here: see the
    module docstring).
    """
    header, payload = unpack_vqc(data, source)
    check_identities(header, model_identity, prior_identity, source)
    if header.codebook_size != codebook_size:
        raise VQCError(f"{source}: codebook size {header.codebook_size} differs from the model's {codebook_size}")
    speaker = None if header.speaker < 0 else header.speaker
    codes = decompress_codes(prior, payload, header.n_codes, speaker, header.backend)
    if codes_crc32(codes) != header.codes_crc32:
        raise VQCError(f"{source}: decoded codes fail their checksum (the prior's probabilities differ on this "
                       "machine from the encoder's, or the file is corrupt)")
    return codes, speaker
