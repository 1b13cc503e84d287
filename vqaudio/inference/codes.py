"""Codes files: one .npy int16 array [N] per utterance, and a `<file>.json` sidecar naming the model kind, code
rate and codebook size they belong to (so `decode` refuses codes of another kind of model). Read without
unpickling.

    save_codes("a.npy", codes, loaded)        # int64 [N] -> a.npy + a.npy.json
    codes = load_codes("a.npy", 512)           # validated int64 [N]
    check_codes_origin("a.npy", loaded)        # refuses codes of another kind of model
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vqaudio.errors import VQAudioError
from vqaudio.models.io import LoadedModel

CODES_DTYPE = np.int16  # codes files: one int16 per frame (K <= 32767)


class CodesError(VQAudioError):
    """A codes file is missing, not a .npy array, or holds the wrong dtype, shape or values."""


def check_codes(codes: np.ndarray, codebook_size: int, where: str = "codes") -> np.ndarray:
    """Validate a code sequence: 1-D, integer dtype, non-empty, values in [0, K). Returns it as int64 [N]."""
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise CodesError(f"{where}: codes must be integers, got dtype {codes.dtype}")
    if codes.ndim != 1:
        raise CodesError(f"{where}: codes must be a 1-D array [N], got shape {list(codes.shape)}")
    if codes.size == 0:
        raise CodesError(f"{where}: holds no codes")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= codebook_size:
        raise CodesError(f"{where}: codes must lie in [0, {codebook_size}) for this model, found {low}..{high}")
    return codes.astype(np.int64)


def load_codes(path: str | os.PathLike, codebook_size: int) -> np.ndarray:
    """Read a codes file (.npy, integer [N]) without unpickling; validate it. Returns int64 [N]."""
    p = Path(path)
    if not p.is_file():
        raise CodesError(f"{p}: no such file" if not p.exists() else f"{p}: is not a file")
    try:
        codes = np.load(p, allow_pickle=False)
    except Exception as e:  # ValueError (pickled / bad header), OSError, EOFError, UnicodeDecodeError...
        raise CodesError(f"{p}: not a codes file (.npy array): {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(codes, np.ndarray):
        raise CodesError(f"{p}: holds several arrays (.npz); expected one .npy array of codes")
    return check_codes(codes, codebook_size, str(p))


def save_codes(path: str | os.PathLike, codes: np.ndarray, loaded: LoadedModel | None = None) -> None:
    """Write codes atomically as a .npy int16 [N] array (numpy.save); with the model `loaded` that made them,
    also a sidecar `<path>.json` saying which kind of model, code rate and codebook size they belong to."""
    from vqaudio.fileio import atomic_path, atomic_write_text

    if codes.size and int(np.max(codes)) > np.iinfo(CODES_DTYPE).max:
        raise CodesError(f"codes up to {int(np.max(codes))} do not fit the int16 codes file")
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(codes).astype(CODES_DTYPE))
    if loaded is not None:
        atomic_write_text(_sidecar(path), json.dumps(codes_description(loaded)) + "\n")


def codes_description(loaded: LoadedModel) -> dict:
    """What a codes file's sidecar records of the model that made the codes."""
    return {"format": "vqaudio-codes", "model": loaded.identity, "decoder_kind": loaded.model.kind,
            "code_rate": loaded.sample_rate / loaded.hop_length, "codebook_size": int(loaded.config.vq.codebook_size)}


def _sidecar(path: str | os.PathLike) -> Path:
    return Path(f"{path}.json")


def check_codes_origin(path: str | os.PathLike, loaded) -> None:
    """Refuse codes whose sidecar (when there is one) says they belong to another kind of model, code rate or
    codebook size than `loaded`. Codes of another model of the same shape (an enrolled copy) are accepted."""
    side = _sidecar(path)
    if not side.exists():
        return
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        made = {"decoder_kind": str(meta["decoder_kind"]), "code_rate": float(meta["code_rate"]),
                "codebook_size": int(meta["codebook_size"])}
    except (ValueError, KeyError, TypeError, OSError):
        raise CodesError(f"{side}: not a vqaudio codes description (JSON with decoder_kind, code_rate, "
                         "codebook_size); remove it to decode the codes anyway") from None
    here = codes_description(loaded)
    if any(made[k] != here[k] for k in made):
        raise CodesError(f"{path}: codes of a {made['decoder_kind']}-kind model at {made['code_rate']:g} codes/s with "
                         f"{made['codebook_size']} codes; this model is {here['decoder_kind']}-kind at "
                         f"{here['code_rate']:g} codes/s with {here['codebook_size']}: decode them with the model that "
                         "made them")
