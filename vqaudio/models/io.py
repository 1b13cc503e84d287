"""Model files: one self-contained file per trained model, loaded without unpickling code.

A vqaudio file is `torch.save` of a dict holding only tensors and plain data (str, int, float,
bool, None, lists, tuples, dicts with str keys), tagged `{"format": "vqaudio-<kind>", "version": 1}`.
It is read with `torch.load(weights_only=True)`, so a file holding pickled objects is refused rather
than executed. Three kinds share this format: `model` (the VQ-VAE, `save_model` / `load_model`),
`prior` (the latent prior, written by the prior's code with `save_model_file`) and `checkpoint`
(training state, `vqaudio.training.checkpoint`).

    save_model("exp/model.pt", vqvae, cfg.model, speakers, speaker_info)
    loaded = load_model("exp/model.pt")   # LoadedModel: model (eval), config, speakers, identity, ...
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqaudio.config import Config, ModelConfig, from_dict, hop_length, to_dict
from vqaudio.errors import ConfigError, ModelFileError
from vqaudio.fileio import atomic_path

FORMAT_VERSION = 1
IDENTITY_CHARS = 16  # hex digits of sha256 kept as a model's identity (64 bits)
_FP16_MAX = 65504.0
# fp16 would round log-F0 (and the statistics the postfilter moves features to)
_FP32_ALWAYS = ("decoder.feature_mean", "decoder.feature_std", "decoder.speaker_lf0", "decoder.speaker_envelope")


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError unless `obj` is tensors and plain data only (what weights_only can load)."""
    if obj is None or isinstance(obj, (str, int, float, bool, torch.Tensor)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(obj).__name__} is not plain data (tensors, str, numbers, lists, dicts)")


def save_model_file(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> Path:
    """Write `payload` (tensors and plain data only) atomically as a `vqaudio-<kind>` file.

    Raises:
        TypeError: `payload` holds something `torch.load(weights_only=True)` would refuse (a bug).
    """
    data = {"format": f"vqaudio-{kind}", "version": FORMAT_VERSION, **payload}
    _check_plain(data, kind)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def load_model_file(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Read a `vqaudio-<kind>` file onto the CPU without unpickling any object.

    Raises:
        ModelFileError: missing, a directory, corrupt or truncated, holding pickled objects,
            not a vqaudio file, another kind of vqaudio file, or a newer format version.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory, not a vqaudio {kind} file")
    try:
        with warnings.catch_warnings():  # a foreign pickle makes torch warn about its protocol
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise ModelFileError(f"{p}: holds pickled Python objects; refusing to load it "
                                 "(vqaudio files hold tensors and plain data only)") from None
        raise ModelFileError(f"{p}: corrupt or not a vqaudio {kind} file") from None
    except Exception:  # truncated zips, bad headers; garbage can break the restricted unpickler anywhere (IndexError)
        raise ModelFileError(f"{p}: corrupt, truncated or not a vqaudio {kind} file") from None
    expected = f"vqaudio-{kind}"
    found = data.get("format") if isinstance(data, dict) else None
    if found != expected:
        what = f"a {found} file" if isinstance(found, str) and found.startswith("vqaudio-") else "not a vqaudio file"
        raise ModelFileError(f"{p}: {what}; expected a {expected} file")
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{p}: format version {version!r} is newer than this vqaudio reads ({FORMAT_VERSION})")
    return data


def weights_identity(state_dict: dict[str, torch.Tensor]) -> str:
    """Short sha256 (16 hex digits) of names, dtypes, shapes and bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:IDENTITY_CHARS]


def _half(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 tensors to fp16 where they fit (EMA sums and counts that would overflow stay fp32)."""
    out = {}
    for k, t in state_dict.items():
        fits = t.dtype == torch.float32 and (t.numel() == 0 or float(t.abs().max()) < _FP16_MAX)
        fits = fits and not k.startswith(_FP32_ALWAYS)
        out[k] = t.half() if fits else t
    return out


def _training_only(key: str) -> bool:
    """State of parts that only training uses (the speaker adversary, the phone head): left out of model files."""
    return key.startswith(("adversary.", "phone_head."))


@dataclass
class LoadedModel:
    """A VQ-VAE read back from a model file, ready to use (eval mode, fp32, on `device`)."""

    model: nn.Module  # vqaudio.models.VQVAE
    config: ModelConfig
    speakers: list[str]  # speaker ids in embedding order (index = speaker id given to the model)
    speaker_info: dict[str, str]  # speaker id -> free text (gender, age, accent...) from speakers.tsv
    sample_rate: int  # Hz
    hop_length: int  # samples per code
    identity: str  # short hash of the stored weights (the .vqc header records it)
    extra: dict[str, Any]  # whatever the writer added (training step, data dir...)


def save_model(path: str | os.PathLike, model: nn.Module, cfg: ModelConfig | Config, speakers: list[str],
               speaker_info: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
               half: bool = False) -> str:
    """Write the VQ-VAE `model` and all it needs to be rebuilt into one file, atomically.

    `half=True` stores fp16 weights (half the size); they load back as fp32. Returns the identity
    of the weights as stored.
    """
    model_cfg = cfg.model if isinstance(cfg, Config) else cfg
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not _training_only(k)}
    if half:
        state = _half(state)
    save_model_file(path, "model", {
        "config": to_dict(model_cfg),
        "speakers": list(speakers),
        "speaker_info": dict(speaker_info or {}),
        "sample_rate": model_cfg.sample_rate,
        "hop_length": hop_length(model_cfg),
        "state_dict": state,
        "extra": dict(extra or {}),
    })
    return weights_identity(state)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the VQ-VAE stored by `save_model` (eval mode, fp32 weights).

    Raises:
        ModelFileError: see `load_model_file`; also a config or weights that do not fit this vqaudio.
    """
    from vqaudio.models import build_vqvae

    data = load_model_file(path, "model")
    try:
        cfg = from_dict(ModelConfig, data["config"], "model.")
        speakers = [str(s) for s in data["speakers"]]
        state = {k: v for k, v in data["state_dict"].items() if not _training_only(k)}
        model = build_vqvae(cfg, len(speakers), training=False)
        model.load_state_dict(state)
    except (KeyError, TypeError, ConfigError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: model file does not fit this vqaudio version ({reason[:200]})") from None
    model.float().to(device).eval()
    return LoadedModel(
        model=model, config=cfg, speakers=speakers, speaker_info=dict(data.get("speaker_info") or {}),
        sample_rate=int(data["sample_rate"]), hop_length=int(data["hop_length"]),
        identity=weights_identity(state), extra=dict(data.get("extra") or {}),
    )


def update_model_file(path: str | os.PathLike, extra: dict[str, Any], config: ModelConfig | None = None,
                      identity: str | None = None) -> None:
    """Rewrite model file `path` atomically with `extra` as its extra record (and `config` as its config, when
    given: for settings only decoding reads); the stored weights, and so the model's identity, are untouched (fp16
    stays fp16). With `identity`, refuses (ModelFileError) a file whose weights are no longer those (rewritten
    since `extra` was measured on them)."""
    data = load_model_file(path, "model")
    stored = {k: v for k, v in data.get("state_dict", {}).items() if not _training_only(k)}
    if identity is not None and weights_identity(stored) != identity:
        raise ModelFileError(f"{path}: its weights changed while it was being calibrated (a run still exporting "
                             "to it?); nothing written")
    payload = {k: v for k, v in data.items() if k not in ("format", "version")}
    payload["extra"] = dict(extra)
    if config is not None:
        payload["config"] = to_dict(config)
    save_model_file(path, "model", payload)


def export_model(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True) -> str:
    """Rewrite model file `src` as `dst` (fp16 weights if `half`); returns the new file's identity."""
    loaded = load_model(src)
    return save_model(dst, loaded.model, loaded.config, loaded.speakers, loaded.speaker_info, loaded.extra, half)
