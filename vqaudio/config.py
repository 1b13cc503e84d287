"""Typed configuration: nested dataclasses, loaded from YAML, with type-checked `--set` overrides.

A config file holds any subset of the fields of `Config`; unknown keys are refused.
Presets ship inside the package (`vqaudio/configs/*.yaml`) and are named without a path:
`--config mini` reads `vqaudio/configs/mini.yaml`. A preset may start with
`base: other_preset` to overlay itself on another preset (as DAC's config variants do).

    cfg = load_config("mini", ["train.lr=5e-4", "model.vq.codebook_size=256"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vqaudio.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class EncoderConfig:
    """Dilated-convolution encoder on the raw waveform (VQ-VAE paper, section 4.3)."""

    channels: int = 128  # width of every stage when stage_channels is empty
    stage_channels: list[int] = field(default_factory=list)  # width per stage, one per stride ([] = `channels`)
    strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2, 2, 2])  # product = hop (64)
    kernel_size: int = 4  # window of each strided convolution
    dilations: list[int] = field(default_factory=lambda: [1, 3])  # residual block dilations per stage
    residual_kernel_size: int = 3
    residual_channels: int = 32  # inner width of each residual block (0 = the stage's width)
    # "batch": z_e standardised over the batch's frames before the VQ (Lancucki et al. 2020); "sliding": per
    # utterance, over a centred window of `norm_frames` frames (Kaldi's sliding CMVN on the latents, instance
    # normalisation as in Chou et al. 2019, local so chunks stay exact); "sliding-mean": the window's mean removed,
    # then the batch norm; "none"
    output_norm: str = "batch"
    norm_frames: int = 125  # odd: the window of output_norm "sliding", in frames (125 = 1 s at 125 codes/s)


@dataclass
class VQConfig:
    """Vector-quantisation bottleneck (paper eq. 3), with the options users expect."""

    codebook_size: int = 512  # K
    dim: int = 64  # D: the encoder's output and each code's dimension
    beta: float = 0.25  # commitment weight
    ema: bool = True  # EMA codebook updates instead of the codebook loss term
    ema_decay: float = 0.99
    kmeans_init: bool = True  # initialise the codebook by k-means on the first batch
    kmeans_iters: int = 10  # Lloyd iterations of the k-means init
    kmeans_seeding: str = "kmeans++"  # k-means seeding: "kmeans++" or "random" (sample batch vectors)
    dead_code_steps: int = 25  # re-seed codes unused for this many steps (0 = off)
    usage_window: int = 100  # steps over which perplexity / codes-in-use are reported
    jitter: float = 0.0  # time-jitter probability (Chorowski et al. 2019); 0 = off


@dataclass
class WaveNetConfig:
    """One WaveNet for the decoder and the latent prior (codes).

    Decoder kinds (`kind`): "wavenet" is the paper's sample-level causal decoder over mu-law samples (a softmax of
    `classes`); "vocoder" runs the same WaveNet non-causally at the vocoder's frame rate and predicts WORLD
    parameters (`ModelConfig.vocoder`; `classes` and `kernel_size` 2 do not apply: kernel_size must be odd).
    The prior is always the causal kind.
    """

    kind: str = "wavenet"  # decoder kind: "wavenet" (sample-level, mu-law) or "vocoder" (frame-level, WORLD)
    classes: int = 256  # softmax size: 256 mu-law levels for the decoder, K for the prior
    layers: int = 16  # total dilated layers
    stacks: int = 2  # dilation cycles: dilation of layer i is 2 ** (i % (layers // stacks))
    kernel_size: int = 2
    residual_channels: int = 64
    gate_channels: int = 128  # pre-gate width; the gated output has gate_channels // 2
    skip_channels: int = 128
    cond_channels: int = 128  # width of the local-conditioning network (0 = one 1x1 projection, no network)
    speaker_dim: int = 64  # speaker embedding size (0 = no global conditioning)


@dataclass
class VocoderConfig:
    """WORLD analysis and synthesis for the frame-level ("vocoder") decoder (Morise et al. 2016).

    Per frame of `frame_samples` samples: `spectral_dims` coded spectral-envelope coefficients (WORLD's
    CodeSpectralEnvelope: mel-warped cepstrum of CheapTrick's envelope), the coded band aperiodicities of D4C
    (1 band at 16 kHz), interpolated log-F0 and a voicing flag. The F0 estimator and frame period were chosen
    by measurement (egs/vctk/RESULTS.md, "WORLD analysis").
    """

    frame_samples: int = 64  # 4 ms at 16 kHz; must divide the encoder hop
    f0_method: str = "harvest"  # "harvest" (accurate) or "dio" (DIO + StoneMask: ~13x faster)
    f0_floor: float = 60.0  # Hz
    f0_ceil: float = 500.0  # Hz
    spectral_dims: int = 40
    f0_mode: str = "predicted"  # F0 of decoded speech: "predicted" by the decoder, "normalized" to the speaker's
    # statistics, or (convert) the source's "mapped" to them (vqaudio.inference.vocode); decoding only
    gv_strength: float = 0.0  # postfilter: envelope variance moved this far (0..1) toward the speaker's GV
    # (decoding only)
    gv_scale: str = "speaker"  # postfilter: its scale from the decoder's own variance for the speaker, recorded in
    # the model file after training ("speaker"; the utterance's where none is: enrolled voices), or the utterance's
    spectral_weight: float = 1.0  # training: weight of the envelope's L1 (a mean over its spectral_dims) against
    # the three one-number terms (aperiodicity, log-F0, voicing), each weighted 1
    gv_weight: float = 0.0  # training: weight of a global-variance loss (L1 of log-variances of the envelope's
    # coefficients over each window's voiced frames, prediction against target; vqaudio.models.vocoder.gv_loss)


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    input_level_db: float | None = None  # speech level (dBFS, loudest half of 20 ms frames) inputs are scaled to
    speaker_adversary: float = 0.0  # weight of a gradient-reversal speaker classifier on z_q (0 = none)
    utterance_adversary: float = 0.0  # the same on each window's pooled z_q statistics (mean, std over time)
    phone_loss: float = 0.0  # weight of a linear phone classifier on z_e, trained on the train split's phone_ali
    # (41 phones, vqaudio.models.adversary.PhoneHead; 0 = none, the codes learnt without labels as in the paper)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vq: VQConfig = field(default_factory=VQConfig)
    decoder: WaveNetConfig = field(default_factory=WaveNetConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)


@dataclass
class PriorConfig:
    """Latent WaveNet prior over code sequences (paper section 4.3)."""

    wavenet: WaveNetConfig = field(
        default_factory=lambda: WaveNetConfig(classes=512, layers=20, stacks=2, cond_channels=0)
    )
    speaker_conditioned: bool = True
    speaker_dropout: float = 0.1  # fraction of training windows shown as "unknown speaker" (coding without one)
    segment_codes: int = 256  # training window in codes (prior_train.segment_samples is not used)


@dataclass
class TrainConfig:
    batch_size: int = 8
    segment_samples: int = 8192  # training window in samples (a multiple of the hop)
    lr: float = 4e-4
    lr_min: float = 1e-5
    warmup_steps: int = 200
    max_steps: int = 20000
    max_minutes: float = 0.0  # stop after this much wall time (0 = no limit)
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    valid_every: int = 500
    valid_batches: int = 8
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    threads: int = 0  # torch CPU threads (0 = torch's default)
    aux_speakers: str = ""  # shell pattern of training speakers drawn in a fixed share of windows (e.g. "h_*")
    aux_share: float = 0.0  # that share (0 = every window by length, as for the others)


@dataclass
class PerturbConfig:
    """Training-time perturbations of the encoder's input; the decoder's targets stay the clean originals
    (`vqaudio.data.perturb`). Each share is the chance that a training window gets that kind.

    `speaker`: the input is one of `copies` WORLD resyntheses of the utterance with F0 shifted by up to
    +-`pitch_semitones` and the spectral envelope's frequency axis warped by a factor in [1/(1+w), 1+w],
    w = `formant_warp` (vocoder kind only: made once from the cached WORLD features). `channel`: the input goes
    through a random channel, each stage with its own chance: `eq` (smooth random EQ, +-`eq_db`), `bandlimit`
    (telephone 300-3400 Hz, or a low-pass at 3.4-7.5 kHz), `resample` (a round trip through 8/11.025/12 kHz),
    `noise` (white-to-brown noise at `snr_db` [lo, hi] dB), `clip` (clipped at 10-50% of the peak) and a gain of
    +-`gain_db`.
    `decoded_from` (0 = never): from this fraction of the run on, the speaker copies are remade by the model itself,
    its reconstruction and conversions to other training voices (`vqaudio.training.decoded`).
    `readings` (0 = none): parallel readings of each training utterance's transcript by that many other eSpeak NG
    voices, aligned to it and drawn like the copies (`vqaudio.data.readings`; they stay when the copies are remade).
    """

    speaker: float = 0.0
    copies: int = 4
    decoded_from: float = 0.0
    readings: int = 0
    pitch_semitones: float = 4.0
    formant_warp: float = 0.12
    channel: float = 0.0
    eq: float = 0.5
    eq_db: float = 6.0
    bandlimit: float = 0.5
    resample: float = 0.2
    noise: float = 0.4
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])
    clip: float = 0.15
    gain_db: float = 6.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    prior_train: TrainConfig = field(default_factory=lambda: TrainConfig(segment_samples=0, batch_size=16))


def hop_length(model: ModelConfig) -> int:
    """Samples per code: the product of the encoder strides (64 in the paper)."""
    hop = 1
    for s in model.encoder.strides:
        hop *= s
    return hop


# --------------------------------------------------------------------------- loading


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a `Config` from a preset name or YAML path, then apply `key=value` overrides."""
    data = _read_layered(source) if source is not None else {}
    cfg = from_dict(Config, data, "")
    for item in overrides or []:
        apply_override(cfg, item)
    return cfg


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _resolve(source: str | Path) -> Path:
    p = Path(source)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        return p
    preset = PRESET_DIR / f"{source}.yaml"
    if not preset.exists():
        raise ConfigError(f"unknown config '{source}': not a file, and not a preset ({', '.join(preset_names())})")
    return preset


def _read_layered(source: str | Path, depth: int = 0) -> dict:
    if depth > 8:
        raise ConfigError(f"{source}: 'base:' chain too deep (a cycle?)")
    path = _resolve(source)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    base_ref = base if (PRESET_DIR / f"{base}.yaml").exists() else path.parent / str(base)
    return _merge(_read_layered(base_ref, depth + 1), data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(cls: type, data: dict, where: str) -> Any:
    """Build dataclass `cls` from a mapping, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(sorted(where + k for k in unknown))}; "
                          f"known under '{where or '.'}': {', '.join(sorted(names))}")
    obj = cls()
    for k, v in data.items():
        setattr(obj, k, _coerce(hints[k], v, where + k))
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def apply_override(cfg: Config, item: str) -> None:
    """Apply one `dotted.key=value` override in place; the value is parsed as YAML, then type-checked."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=1e-3")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    obj: Any = cfg
    for depth, name in enumerate(parts):
        if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
            known = ", ".join(f.name for f in dataclasses.fields(obj)) if dataclasses.is_dataclass(obj) else "-"
            raise ConfigError(f"--set {key}: unknown key '{'.'.join(parts[:depth + 1])}' (known: {known})")
        if depth < len(parts) - 1:
            obj = getattr(obj, name)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    field_type = typing.get_type_hints(type(obj))[parts[-1]]
    if field_type is str:
        value = raw
    setattr(obj, parts[-1], _coerce(field_type, value, key))


def to_dict(cfg: Any) -> dict:
    """Plain nested dict (JSON/YAML-safe) of a config dataclass."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
