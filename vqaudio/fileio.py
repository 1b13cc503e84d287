"""Atomic file writing: a crash or Ctrl-C leaves either the old file or a complete new one; array caches."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    The temporary file keeps `path`'s suffix (or `suffix`) so that writers which pick a
    format from the extension (soundfile, numpy) still do the right thing. On any
    exception, KeyboardInterrupt included, the temporary file is removed and `path`
    is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + (suffix if suffix is not None else path.suffix),
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        mask = os.umask(0)  # mkstemp creates 0600; give the file the usual permissions
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def refuse_same_path(inputs: list[Path], output: Path) -> None:
    """Raise if `output` is one of `inputs` (writing would destroy the input)."""
    from vqaudio.errors import VQAudioError

    out = output.resolve()
    for p in inputs:
        if p.resolve() == out:
            raise VQAudioError(f"{output}: output path is the same as an input path; refusing to overwrite it")


# --------------------------------------------------------------------------- array caches (decoded audio, features)


def files_digest(paths: Iterable[str], salt: str = "") -> str:
    """16 hex digits of sha256 over `salt` and each file's path, size and modification time (a changed, added,
    removed or missing file changes it)."""
    h = hashlib.sha256(salt.encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]


def load_array_pair(values_path: Path, index_path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A cache written by `save_array_pair`: (values memory-mapped read-only, index), or None when incomplete."""
    if values_path.exists() and index_path.exists():
        return np.load(values_path, mmap_mode="r"), np.load(index_path)
    return None


def save_array_pair(values_path: Path, index_path: Path, values: np.ndarray | None, index: np.ndarray,
                    stale: Iterable[Path] = ()) -> None:
    """Remove the `stale` cache files (those not of this pair), then write `values` and `index` atomically, the
    index last: its presence marks a complete cache. `values` None: already written to `values_path` (a large array
    filled in place, e.g. through `numpy.lib.format.open_memmap` under `atomic_path`)."""
    values_path.parent.mkdir(parents=True, exist_ok=True)
    for old in stale:
        if old not in (values_path, index_path):
            old.unlink(missing_ok=True)
    if values is not None:
        with atomic_path(values_path) as tmp:
            np.save(tmp, values)
    with atomic_path(index_path) as tmp:
        np.save(tmp, index)
