"""What the codec commands call: audio files in, codes or audio files out (`vqaudio encode`, `decode`, `convert`),
and `.vqc` files (arithmetic-coded codes under the latent prior, `vqaudio encode --compress`). Every output is
written atomically; every input is read (and refused with one line if bad) before any work starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqaudio.audio import AUDIO_SUFFIXES
from vqaudio.errors import VQAudioError
from vqaudio.fileio import atomic_write_bytes
from vqaudio.inference.bitstream import VQCError, decode_vqc, encode_vqc, read_vqc
from vqaudio.inference.codec import convert, decode, encode, load_codec, speaker_index
from vqaudio.inference.codes import check_codes_origin, load_codes, save_codes
from vqaudio.inference.prior import LoadedPrior, load_prior, resolve_prior_path
from vqaudio.models.io import LoadedModel

ProgressFn = Callable[[int, int], None]
WarnFn = Callable[[str], None]


def read_inputs(paths: list[str | os.PathLike], loaded: LoadedModel, on_warning: WarnFn | None,
                min_samples: int = 1) -> list[np.ndarray]:
    """Every input file read at the model's rate (float32 [T_i]; one bad file refuses them all before any work),
    then what `vqaudio.audio.input_warnings` found in them handed to `on_warning` (band-limited, clipped or
    near-silent input: warnings, not refusals)."""
    from vqaudio.audio import load_audio

    warnings: list[str] = []
    wavs = [load_audio(p, loaded.sample_rate, min_samples=min_samples, warnings=warnings) for p in paths]
    for w in warnings if on_warning is not None else []:
        on_warning(w)
    return wavs


def encode_file(input_path: Path, output_path: Path, model: Path | None = None,
                on_progress: ProgressFn | None = None, on_warning: WarnFn | None = None) -> np.ndarray:
    """Audio file -> codes file (.npy int16 [N], with a `<output>.json` sidecar naming the model); returns codes.
    `on_warning` gets each of `vqaudio.audio.input_warnings` (band-limited, clipped, near-silent input)."""
    from vqaudio.fileio import refuse_same_path

    refuse_same_path([Path(input_path)], Path(output_path))
    loaded = load_codec(model)
    [wav] = read_inputs([input_path], loaded, on_warning, loaded.hop_length)
    codes = encode(loaded, wav, on_progress=on_progress)
    save_codes(output_path, codes, loaded)
    return codes


def decode_file(codes_path: Path, output_path: Path, speaker: str | None, model: Path | None = None,
                temperature: float = 1.0, seed: int | None = None, on_progress: ProgressFn | None = None,
                prior: Path | None = None) -> np.ndarray:
    """Codes file (.npy, or arithmetic-coded .vqc read with the prior) -> audio file in `speaker`'s voice.

    For a .vqc file `speaker` may be None: the speaker recorded in the file is used.
    Returns the waveform float32 [N * hop].
    """
    from vqaudio.audio import save_audio
    from vqaudio.fileio import refuse_same_path

    refuse_same_path([Path(codes_path)], Path(output_path))
    if Path(codes_path).suffix == ".vqc":
        loaded, codes, recorded = decompress_file(codes_path, model, prior)
        speaker = speaker or recorded
    else:
        loaded = load_codec(model)
        check_codes_origin(codes_path, loaded)
        codes = load_codes(codes_path, loaded.config.vq.codebook_size)
    if speaker is None:
        raise VQAudioError(f"{codes_path}: no speaker recorded in the file; give --speaker "
                           f"(one of {', '.join(loaded.speakers)})")
    wav = decode(loaded, codes, speaker, temperature, seed, on_progress=on_progress)
    save_audio(output_path, wav, loaded.sample_rate)
    return wav


def conversion_paths(paths: list[Path], out_dir: Path | None) -> tuple[list[Path], list[Path]]:
    """Inputs and outputs of `vqaudio convert`: `IN OUT` without out_dir; else files and folders of audio
    (.wav .flac .ogg), each written as out_dir/<stem>.wav. Refuses clashes and outputs equal to inputs."""
    from vqaudio.fileio import refuse_same_path

    paths = [Path(p) for p in paths]
    if out_dir is None:
        if len(paths) != 2:
            raise VQAudioError(f"convert takes IN OUT, or inputs with --out-dir DIR; got {len(paths)} paths "
                               "and no --out-dir")
        inputs, outputs = paths[:1], paths[1:]
    else:
        inputs = []
        for p in paths:
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES) if p.is_dir() else [p]
            if p.is_dir() and not found:
                raise VQAudioError(f"{p}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            inputs.extend(found)
        outputs = [Path(out_dir) / f"{p.stem}.wav" for p in inputs]
        clash = {o for o in outputs if outputs.count(o) > 1}
        if clash:
            raise VQAudioError(f"several inputs would be written to {sorted(clash)[0]}; rename them or convert apart")
    for out in outputs:
        refuse_same_path(inputs, out)
    return inputs, outputs


def convert_files(inputs: list[Path], outputs: list[Path], target_speaker: str, model: Path | None = None,
                  temperature: float = 1.0, seed: int | None = None,
                  on_progress: ProgressFn | None = None, f0_mode: str | None = None,
                  on_warning: WarnFn | None = None) -> list[np.ndarray]:
    """Convert audio files to `target_speaker`'s voice in one batch; every input is read (and refused if bad)
    before any generation starts; `on_warning` gets what `vqaudio.audio.input_warnings` finds. Returns the
    waveforms."""
    from vqaudio.audio import save_audio

    loaded = load_codec(model)
    index = speaker_index(loaded, target_speaker)
    wavs = read_inputs(inputs, loaded, on_warning, loaded.hop_length)
    outs = convert(loaded, wavs, loaded.speakers[index], temperature, seed, on_progress=on_progress, f0_mode=f0_mode)
    for path, wav in zip(outputs, outs, strict=True):
        save_audio(path, wav, loaded.sample_rate)
    return outs


# --------------------------------------------------------------------------- compressed codes files (.vqc)


@dataclass
class CompressResult:
    n_codes: int
    n_bytes: int  # the whole .vqc file (header included)
    seconds: float  # audio duration the codes cover

    @property
    def bits_per_code(self) -> float:
        return 8 * self.n_bytes / max(self.n_codes, 1)

    @property
    def bits_per_second(self) -> float:
        return 8 * self.n_bytes / max(self.seconds, 1e-9)


def compress_file(input_path: str | os.PathLike, output_path: str | os.PathLike, model: str | os.PathLike | None = None,
                  prior: str | os.PathLike | None = None, speaker: str | None = None,
                  on_warning: WarnFn | None = None) -> CompressResult:
    """`vqaudio encode IN OUT.vqc --compress`: audio -> codes (`encode`) -> arithmetic-coded `.vqc`.

    `model` / `prior` None: the codec's default model / the shipped prior. `speaker`: a speaker id of the
    model to condition the prior on and to record in the file (None: the prior's unknown speaker). `on_warning`
    gets what `vqaudio.audio.input_warnings` finds in the input.
    """
    loaded = load_codec(model)
    loaded_prior = load_prior(resolve_prior_path(prior))
    index = speaker_index(loaded, speaker) if speaker is not None else None
    [wav] = read_inputs([input_path], loaded, on_warning)
    codes = encode(loaded, wav)
    n_bytes = save_compressed(output_path, loaded_prior, codes, index, loaded.identity)
    return CompressResult(len(codes), n_bytes, len(codes) * loaded.hop_length / loaded.sample_rate)


def decompress_file(vqc_path: str | os.PathLike, model: str | os.PathLike | None = None,
                    prior: str | os.PathLike | None = None) -> tuple[LoadedModel, np.ndarray, str | None]:
    """`vqaudio decode X.vqc`: -> (LoadedModel, codes int64 [N], speaker id recorded in the file or None).

    Refuses (VQCError, one line) a corrupt file or one made with another VQ-VAE or prior.
    """

    read_vqc(vqc_path)  # a corrupt or truncated file is refused before any model is loaded
    loaded = load_codec(model)
    codes, index = load_compressed(vqc_path, load_prior(resolve_prior_path(prior)), loaded.identity)
    speaker = loaded.speakers[index] if index is not None and 0 <= index < len(loaded.speakers) else None
    return loaded, codes, speaker


def save_compressed(path: str | os.PathLike, loaded_prior: LoadedPrior, codes: np.ndarray, speaker: int | None,
                    model_identity: str, backend: str = "numba") -> int:
    """`vqaudio encode --compress`: write codes [N] of the VQ-VAE `model_identity` as a `.vqc` file.

    `loaded_prior`: a `vqaudio.inference.prior.LoadedPrior` trained on that VQ-VAE's codes. `speaker`: the speaker
    index (in the VQ-VAE's list) to record and condition the prior on, or None. Returns the file size in bytes.
    """
    if loaded_prior.model_identity != model_identity:
        raise VQCError(f"the prior was trained for VQ-VAE {loaded_prior.model_identity}, not this model "
                       f"({model_identity})")
    data = encode_vqc(loaded_prior.prior, codes, speaker, loaded_prior.codebook_size, model_identity,
                      loaded_prior.identity, backend)
    atomic_write_bytes(path, data)
    return len(data)


def load_compressed(path: str | os.PathLike, loaded_prior: LoadedPrior, model_identity: str
                    ) -> tuple[np.ndarray, int | None]:
    """`vqaudio decode X.vqc`: (codes int64 [N], speaker index or None) of a `.vqc` file, checked against
    the VQ-VAE `model_identity` and the prior `loaded_prior` (a `vqaudio.inference.prior.LoadedPrior`)."""
    p = Path(path)
    if not p.is_file():
        raise VQCError(f"{p}: no such .vqc file")
    return decode_vqc(loaded_prior.prior, p.read_bytes(), loaded_prior.codebook_size, model_identity,
                      loaded_prior.identity, str(p))
