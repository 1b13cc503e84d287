"""Training checkpoints: `EXP_DIR/checkpoints/step_XXXXXXX.pt`, written atomically, the last few kept.

A checkpoint is a `vqaudio-checkpoint` file (see `vqaudio.models.io`): tensors and plain data only
(model and optimiser state dicts, RNG states as tensors, the step, the config), so resuming never
unpickles code. Each one is written to a temporary file, fsynced and renamed, and older ones are
deleted only after that, so killing the process at any moment (SIGKILL included) leaves the latest
complete checkpoint in place and loses at most the steps taken since it.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.models.io import load_model_file, save_model_file

_NAME = re.compile(r"^step_(\d{7,})\.pt$")


def checkpoint_dir(exp_dir: str | os.PathLike) -> Path:
    return Path(exp_dir) / "checkpoints"


def checkpoint_path(exp_dir: str | os.PathLike, step: int) -> Path:
    """`EXP_DIR/checkpoints/step_0001234.pt` for step 1234."""
    return checkpoint_dir(exp_dir) / f"step_{step:07d}.pt"


def list_checkpoints(exp_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint files of an experiment, oldest (lowest step) first."""
    folder = checkpoint_dir(exp_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(exp_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(exp_dir)
    return found[-1] if found else None


def remove_stale_temporaries(exp_dir: str | os.PathLike) -> int:
    """Delete half-written temporaries left by a killed run (`.step_*.pt.*.tmp.pt`); returns how many."""
    folder = checkpoint_dir(exp_dir)
    stale = list(folder.glob(".step_*.tmp.pt")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def save_checkpoint(exp_dir: str | os.PathLike, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` (tensors and plain data) as the checkpoint of `step`, then keep only the last `keep`."""
    path = save_model_file(checkpoint_path(exp_dir, step), "checkpoint", {"step": step, **state})
    for old in list_checkpoints(exp_dir)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (CPU tensors). Raises ModelFileError if it is corrupt, foreign or pickled."""
    return load_model_file(path, "checkpoint")


def capture_rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (torch CPU and CUDA, numpy's global, Python's), as tensors."""
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state` (CUDA states only where this machine has as many devices)."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]
