"""Atomic file writing: a crash or Ctrl-C leaves either the old file or a complete new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
