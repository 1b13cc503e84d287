"""The state of an experiment folder: checkpoints, `config.yaml`, `log.jsonl`.

Checkpoints are `EXP_DIR/checkpoints/step_XXXXXXX.pt`, written atomically, the last few kept.

A checkpoint is a `vqaudio-checkpoint` file (see `vqaudio.models.io`): tensors and plain data only
(model and optimiser state dicts, RNG states as tensors, the step, the config), so resuming never
unpickles code. Each one is written to a temporary file, fsynced and renamed, and older ones are
deleted only after that, so killing the process at any moment (SIGKILL included) leaves the latest
complete checkpoint in place and loses at most the steps taken since it.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vqaudio.config import Config, dump_yaml, to_dict
from vqaudio.errors import ConfigError
from vqaudio.fileio import atomic_write_text
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


# ---------------------------------------------------------------------------------------------- config.yaml, log.jsonl

# TrainConfig keys that may change between a run and its resumption (budgets, logging, threads).
RESUMABLE_KEYS = ("max_steps", "max_minutes", "threads", "log_every", "valid_every", "valid_batches",
                  "checkpoint_every", "keep_checkpoints")
# Model keys that only decoding reads (vqaudio.inference.vocode): training is the same whatever they say, except
# for the decoded copies of `perturb.decoded_from`, made once at the pause as the model then decodes (a resumed run
# reuses them).
DECODING_KEYS = ("model.vocoder.f0_mode", "model.vocoder.gv_strength", "model.vocoder.gv_scale")


def config_differences(old: dict, new: dict, sections: tuple[str, ...], train_section: str) -> list[str]:
    """Dotted keys under `sections` whose values differ between two config dicts, except
    `train_section`.RESUMABLE_KEYS and DECODING_KEYS."""
    # a section or key an older version did not write counts as its default (e.g. `perturb`, added later)
    defaults = to_dict(Config())
    flat_old = {**_flatten({s: defaults.get(s) for s in sections if s in defaults}),
                **_flatten({s: old[s] for s in sections if s in old})}
    flat_new = _flatten({s: new.get(s) for s in sections})
    skip = {f"{train_section}.{k}" for k in RESUMABLE_KEYS} | set(DECODING_KEYS)
    keys = sorted((set(flat_old) | set(flat_new)) - skip)
    return [k for k in keys if flat_old.get(k) != flat_new.get(k)]


def write_exp_config(exp_dir: Path, config: Config, sections: tuple[str, ...], train_section: str,
                     force: bool) -> None:
    """Write EXP_DIR/config.yaml; if EXP_DIR holds checkpoints of a run whose config differs in `sections`,
    refuse with a ConfigError naming the keys (old -> new), unless `force`."""
    path = exp_dir / "config.yaml"
    if path.exists() and latest_checkpoint(exp_dir) is not None:
        try:
            old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            old = {}
        new = to_dict(config)
        diff = config_differences(old if isinstance(old, dict) else {}, new, sections, train_section)
        if diff and not force:
            shown = ", ".join(f"{k} ({_get(old, k)!r} -> {_get(new, k)!r})" for k in diff[:6])
            raise ConfigError(f"{exp_dir} holds a run with another config: {shown}"
                              f"{' ...' if len(diff) > 6 else ''}; use a new EXP_DIR, or --force to resume anyway")
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dump_yaml(config))


def truncate_log(path: Path, step: int) -> tuple[dict, dict]:
    """Drop JSON-lines records past `step` (written by a run killed after its last checkpoint) and torn lines;
    return the last `train` and `valid` records kept ({} where none)."""
    if not path.exists():
        return {}, {}
    kept = [(line, rec) for line in path.read_text(encoding="utf-8").splitlines()
            if (rec := _record(line)) is not None and rec.get("step", 0) <= step]
    atomic_write_text(path, "".join(line + "\n" for line, _ in kept))
    return _last_by_kind(rec for _, rec in kept)


def last_records(path: Path) -> tuple[dict, dict]:
    """The last `train` and `valid` records of a JSON-lines log, read only (torn lines skipped; {} where none)."""
    if not path.exists():
        return {}, {}
    return _last_by_kind(rec for line in path.read_text(encoding="utf-8").splitlines()
                         if (rec := _record(line)) is not None)


def _last_by_kind(records: Iterable[dict]) -> tuple[dict, dict]:
    last = {rec.get("kind"): rec for rec in records}
    return last.get("train", {}), last.get("valid", {})


def _record(line: str) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None  # an unreadable (half-written) line: dropped
    return rec if isinstance(rec, dict) and isinstance(rec.get("step", 0), int) else None


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _get(d: object, dotted: str) -> object:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
