"""Encode audio to codes, decode codes to audio in a speaker's voice, and convert voices (paper section 4.3).

    loaded = load_codec()                          # --model, $VQAUDIO_MODEL, or vqaudio/pretrained/vqvae.pt
    codes = encode(loaded, wav)                    # float32 [T] at loaded.sample_rate -> int64 [ceil(T / hop)]
    [out] = synthesize(loaded, [codes], [speaker_index(loaded, "p225")], seed=0)   # -> float32 [N * hop]
    outs = convert(loaded, [wav_a, wav_b], "p225", seed=0)                          # one batch through the decoder

Long inputs run in bounded memory: the encoder reads chunks (5 s by default; 10 s chunks encoded 60 s ~1.2x
slower on a 2-core VM; probably their activations fall out of cache) with its receptive field as overlap on both
sides, so the codes equal those of one pass; the decoder generates 0.25-1 s segments, up to
32 at once as the columns of one batch (`vqaudio.inference.generate`), with 50 ms of overlap cross-faded linearly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vqaudio.errors import VQAudioError
from vqaudio.inference.codes import check_codes
from vqaudio.models.io import LoadedModel

PRETRAINED_MODEL = Path(__file__).parents[1] / "pretrained" / "vqvae.pt"
MODEL_ENV = "VQAUDIO_MODEL"

# --------------------------------------------------------------------------- models and speakers


def default_model_path() -> Path:
    """$VQAUDIO_MODEL if set, else the model shipped in the package; one clear line when there is none."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    if PRETRAINED_MODEL.exists():
        return PRETRAINED_MODEL
    raise VQAudioError(f"no --model given, ${MODEL_ENV} is not set and no default model is shipped "
                       f"({PRETRAINED_MODEL}); pass --model EXP/model.pt or train one with `vqaudio train`")


def load_codec(path: str | os.PathLike | None = None, device: str | torch.device | None = None) -> LoadedModel:
    """Load the VQ-VAE at `path` (default: `default_model_path()`) on `device` (default: CUDA if present).

    Returns a `vqaudio.models.io.LoadedModel`. Raises ModelFileError for a missing, corrupt or foreign file.
    """
    from vqaudio.models.io import load_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load_model(Path(path) if path is not None else default_model_path(), device=device)


def speaker_index(loaded: LoadedModel, speaker: str) -> int:
    """Index of speaker id `speaker` in the model; the error lists the speakers it knows."""
    if speaker in loaded.speakers:
        return loaded.speakers.index(speaker)
    known = ", ".join(loaded.speakers) if loaded.speakers else "none"
    raise VQAudioError(f"unknown speaker '{speaker}'; this model knows {len(loaded.speakers)}: {known}")


def _device(loaded: LoadedModel) -> torch.device:
    return next(loaded.model.parameters()).device


# --------------------------------------------------------------------------- encoding


def encoder_context(loaded: LoadedModel) -> int:
    """Samples of context the encoder's output frames see on either side (an upper bound), a multiple of hop.

    Each strided conv adds (window - 1) input-rate samples at its input's rate, each residual block
    (kernel - 1) * dilation at its output's rate; the total bounds the one-sided reach.
    """
    enc, hop = loaded.config.encoder, loaded.hop_length
    reach, rate = 0, 1
    for stride in enc.strides:
        reach += (max(enc.kernel_size, stride) - 1) * rate
        rate *= stride
        reach += sum((enc.residual_kernel_size - 1) * d * rate for d in enc.dilations)
    if enc.output_norm.startswith("sliding"):  # each frame's statistics reach half the window further
        reach += (enc.norm_frames // 2) * hop
    return math.ceil(reach / hop) * hop


def encoder_input(loaded: LoadedModel, wav: np.ndarray) -> np.ndarray:
    """Audio float32 [T] as the encoder hears it: DC offset removed, scaled to the model's `input_level_db`."""
    from vqaudio.audio import normalize_level

    wav = np.asarray(wav, np.float32)
    wav = wav - wav.mean(dtype=np.float64).astype(np.float32) if len(wav) else wav
    return normalize_level(wav, loaded.config.input_level_db, loaded.sample_rate)


def encode(loaded: LoadedModel, wav: np.ndarray, chunk_seconds: float = 5.0,
           on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Audio float32 [T] at loaded.sample_rate -> codes int64 [ceil(T / hop)] (zero-padded to whole frames).

    The input's DC offset is removed and it is scaled to the model's speech level (`input_level_db`, when the
    model has one), so quiet and loud recordings of the same speech give the same codes.

    Runs in chunks of `chunk_seconds` with `encoder_context` samples of overlap each side: memory stays
    bounded for any length and the codes equal one pass over the whole signal.
    on_progress(frames_done, frames_total) is called after each chunk.
    """
    hop, device = loaded.hop_length, _device(loaded)
    n_frames = max(1, math.ceil(len(wav) / hop))
    padded = np.zeros(n_frames * hop, np.float32)
    padded[:len(wav)] = encoder_input(loaded, wav)
    chunk = max(1, int(chunk_seconds * loaded.sample_rate) // hop)  # frames
    ctx = encoder_context(loaded) // hop  # frames
    codes = np.empty(n_frames, np.int64)
    with torch.inference_mode():
        for f0 in range(0, n_frames, chunk):
            f1 = min(n_frames, f0 + chunk)
            a, b = max(0, f0 - ctx), min(n_frames, f1 + ctx)
            x = torch.from_numpy(padded[a * hop:b * hop]).to(device)[None]
            codes[f0:f1] = loaded.model.encode(x)[0, f0 - a:f1 - a].cpu().numpy()
            if on_progress is not None:
                on_progress(f1, n_frames)
    return codes


# --------------------------------------------------------------------------- decoding


def plan_segments(n_frames: int, segment: int, overlap: int) -> list[tuple[int, int]]:
    """Split frames [0, n_frames) into segments [start, end): segment i starts `overlap` frames before i*segment
    (except the first) and ends at (i + 1) * segment (the last at n_frames). Needs segment > overlap."""
    if n_frames <= segment + overlap:
        return [(0, n_frames)]
    n = math.ceil(n_frames / segment)
    return [(max(0, i * segment - overlap), min(n_frames, (i + 1) * segment)) for i in range(n)]


def crossfade_weights(length: int, fade_in: int, fade_out: int) -> np.ndarray:
    """float32 [length]: linear ramp up over the first `fade_in` samples and down over the last `fade_out`;
    the ramps of neighbouring segments sum to 1 over their shared samples."""
    w = np.ones(length, np.float32)
    if fade_in:
        w[:fade_in] = (np.arange(fade_in, dtype=np.float32) + 0.5) / fade_in
    if fade_out:
        w[length - fade_out:] *= 1.0 - (np.arange(fade_out, dtype=np.float32) + 0.5) / fade_out
    return w


def _segment_cond(loaded: LoadedModel, codes: np.ndarray, start: int, end: int, length: int, speaker: int
                  ) -> torch.Tensor:
    """Decoder conditioning [1, L*G, length] for frames [start, end) of `codes`, with real neighbouring frames
    as context for the (non-causal) conditioning network, padded to `length` frames by repeating the last."""
    ctx = 4  # frames; >= the reach of the conditioning network (two kernel-3 convolutions)
    a, b = max(0, start - ctx), min(len(codes), end + ctx)
    idx = np.concatenate([np.arange(a, b), np.full(max(0, start + length - b), b - 1)])
    dev = _device(loaded)
    latent = loaded.model.codes_to_latent(torch.as_tensor(codes[idx], device=dev)[None])
    cond = loaded.model.decoder.conditioning(latent, torch.tensor([speaker], device=dev))
    return cond[:, :, start - a:start - a + length]


def auto_segment_seconds(total_seconds: float, columns: int = 32) -> float:
    """Segment length that fills `columns` columns where possible, within [0.25, 1] s. The compiled loop's cost
    per step grows far slower than its column count (the weights are read once per step for all columns), so
    cutting short inputs finer makes them faster; the price is more (cross-faded) segment starts."""
    return float(min(1.0, max(0.25, total_seconds / columns)))


def synthesize(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[int], temperature: float = 1.0,
               seed: int | None = None, method: str = "auto", segment_seconds: float | None = None,
               overlap_seconds: float = 0.05, max_columns: int | None = None,
               on_progress: Callable[[int, int], None] | None = None, sources: list[np.ndarray] | None = None,
               f0_mode: str | None = None) -> list[np.ndarray]:
    """Decode several code sequences (int [N_i] each) with speaker indices -> waveforms float32 [N_i * hop].

    Vocoder-kind models: WORLD features from the decoder, rendered by WORLD (`vqaudio.inference.vocode`; deterministic,
    the sampling and segment arguments do not apply; `sources` and `f0_mode` choose the F0, see there).
    Wavenet-kind models:
    Every utterance is cut into segments (`segment_seconds`, default `auto_segment_seconds` of the total: 1 s
    for 32 s of audio or more, 0.25 s below 8 s) overlapping by `overlap_seconds`; all segments of all
    utterances are generated as the columns of batches of at most `max_columns` (default 32 on the CPU, 512 on
    CUDA; memory stays bounded), then cross-faded linearly.
    The same seed gives the same audio for the same inputs.
    on_progress(samples_done, samples_total) counts generated samples over all columns.
    """
    from vqaudio.audio import mu_law_decode
    from vqaudio.inference.generate import generate
    from vqaudio.inference.numba_loop import extract_weights

    if temperature < 0:
        raise VQAudioError(f"temperature must be >= 0 (0 = most likely sample), got {temperature}")
    if not codes:
        return []
    if loaded.model.kind == "vocoder":
        from vqaudio.inference.vocode import synthesize_codes

        return synthesize_codes(loaded, codes, speakers, sources, f0_mode, on_progress)
    hop, sr, wavenet = loaded.hop_length, loaded.sample_rate, loaded.model.decoder
    max_columns = max_columns or (512 if _device(loaded).type == "cuda" else 32)
    if segment_seconds is None:
        segment_seconds = auto_segment_seconds(sum(len(c) for c in codes) * hop / sr, max_columns)
    overlap = max(1, round(overlap_seconds * sr / hop))
    segment = max(overlap + 1, math.ceil(segment_seconds * sr / hop))  # ceil: 4 s at 0.25 s is 16 columns, not 17
    jobs = [(u, s, e) for u, c in enumerate(codes) for s, e in plan_segments(len(c), segment, overlap)]
    length = max(e - s for _, s, e in jobs)  # frames per column
    outs = [np.zeros(len(c) * hop, np.float32) for c in codes]
    rng, weights = np.random.default_rng(seed), extract_weights(wavenet)
    total = len(jobs) * length * hop
    for g in range(0, len(jobs), max_columns):
        group = jobs[g:g + max_columns]
        with torch.inference_mode():
            cond = torch.cat([_segment_cond(loaded, codes[u], s, e, length, speakers[u]) for u, s, e in group])
        levels = generate(wavenet, cond, length * hop, temperature, rng, method, weights=weights,
                          on_progress=_columns_progress(on_progress, g * length * hop, len(group), total))
        wavs = mu_law_decode(levels.cpu(), wavenet.classes).numpy()
        _add_segments(outs, group, wavs, [len(c) for c in codes], overlap * hop, hop)
    return outs


def _columns_progress(on_progress: Callable[[int, int], None] | None, base: int, columns: int,
                      total: int) -> Callable[[int], None] | None:
    """generate's per-column sample count -> on_progress(samples done over all columns, total)."""
    if on_progress is None:
        return None
    return lambda t: on_progress(base + t * columns, total)


def _add_segments(outs: list[np.ndarray], group: list[tuple[int, int, int]], wavs: np.ndarray,
                  n_frames: list[int], fade: int, hop: int) -> None:
    """Cross-fade the generated columns wavs [B, T] into their utterances (segment (u, start, end) per column)."""
    for (u, s, e), wav in zip(group, wavs, strict=True):
        n = (e - s) * hop
        weights = crossfade_weights(n, fade if s > 0 else 0, fade if e < n_frames[u] else 0)
        outs[u][s * hop:e * hop] += wav[:n] * weights


def decode(loaded: LoadedModel, codes: np.ndarray, speaker: str, temperature: float = 1.0, seed: int | None = None,
           method: str = "auto", on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Codes int [N] -> waveform float32 [N * hop] at loaded.sample_rate in `speaker`'s voice."""
    codes = check_codes(codes, loaded.config.vq.codebook_size)
    return synthesize(loaded, [codes], [speaker_index(loaded, speaker)], temperature, seed, method,
                      on_progress=on_progress)[0]


def convert(loaded: LoadedModel, wavs: list[np.ndarray], target_speaker: str, temperature: float = 1.0,
            seed: int | None = None,
            method: str = "auto", on_progress: Callable[[int, int], None] | None = None,
            f0_mode: str | None = None) -> list[np.ndarray]:
    """Voice conversion: audio float32 [T_i] each -> the same content in `target_speaker`'s voice, [T_i] each.

    Encodes every input, then decodes all of them in one batch (their segments share the generator's loop).
    Vocoder-kind models take F0 as `f0_mode` says (default: the model's; see `vqaudio.inference.vocode`).
    """
    index = speaker_index(loaded, target_speaker)
    if f0_mode is not None and loaded.model.kind != "vocoder":
        raise VQAudioError(f"--f0 applies to vocoder-kind models; this model's decoder is the {loaded.model.kind} kind")
    codes = [encode(loaded, w) for w in wavs]
    outs = synthesize(loaded, codes, [index] * len(codes), temperature, seed, method, on_progress=on_progress,
                      sources=wavs, f0_mode=f0_mode)
    return [o[:len(w)] for o, w in zip(outs, wavs, strict=True)]
