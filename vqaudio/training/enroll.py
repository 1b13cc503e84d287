"""Speaker enrolment: a new target voice from a few recordings, without retraining the model.

The encoder, codebook and decoder stay frozen; only the new speaker's row of the decoder's speaker embedding is
learnt, as a convex mixture of the model's other voices' rows, by the decoder's own training loss (the vocoder
kind's WORLD-feature loss) on the given audio, whose codes the frozen encoder gives. The speaker's log-F0 mean and
standard deviation (for F0 mapping) and its envelope statistics for the postfilter come from the same audio: the
global variance of its envelope coefficients, and an output bias, the mean difference between its real envelopes
and what the decoder makes of its codes with the learnt row (what a frozen decoder's embedding cannot reach in a
voice it never produced; egs/vctk/RESULTS.md). Not from band-limited audio (an 8 kHz phone recording): its envelopes
lack the top of the band, and a bias and variance learnt from them rendered real speakers' digits unintelligible
(PocketSphinx 11% against 69% without them; egs/vctk/RESULTS.md, sixteenth session); such a voice keeps the
postfilter off (`envelope_statistics` False in its record, `band_hz` the audio's bandwidth). The postfilter scales
an enrolled voice by each utterance's own variance, not by a reference of the voice (`vocoder.gv_scale`): its decoded
speech is a mixture of the trained voices', over-smoothed about twice as much as theirs, and conversions into it
measured better so (egs/vctk/RESULTS.md, "The postfilter's scale from the voice").
The result is a new model file that knows every old speaker, unchanged, plus the new one:

    result = enroll("vqvae.pt", "alice", ["alice/"], "with_alice.pt", seed=0)
    # then: vqaudio convert in.wav out.wav --target-speaker alice --model with_alice.pt

Only the vocoder decoder kind enrols: the sample-level kind's loss needs the autoregressive decoder over every
sample, hours of CPU for a voice (egs/vctk/RESULTS.md), so it is refused with one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vqaudio.errors import AudioError, VQAudioError
from vqaudio.models.io import LoadedModel
from vqaudio.models.vocoder import envelope_statistics, lf0_statistics, unknown_envelope

MIN_SECONDS = 3.0  # of active speech
ACTIVE_DB = 40.0  # 20 ms frames within this many dB of the loudest count as speech


@dataclass
class EnrollResult:
    """What `enroll` did."""

    name: str
    files: list[str]
    seconds: float  # active speech used, seconds
    steps: int
    final_loss: float  # mean decoder loss over the last 10% of steps
    model_path: Path
    identity: str
    losses: list[float] = field(default_factory=list)
    mixture: dict[str, float] = field(default_factory=dict)  # weight of each trained voice in the new row
    band_hz: float = 0.0  # the enrolment audio's bandwidth (median over its files)
    envelope_statistics: bool = True  # False: band-limited audio, the voice's postfilter statistics not learnt

    @property
    def nearest_voice(self) -> str:
        """The trained voice with the largest weight in the mixture."""
        return nearest_voice(self.mixture)


def nearest_voice(mixture: dict[str, float]) -> str:
    """The voice with the largest weight of an enrolment's `mixture`."""
    return max(mixture, key=mixture.__getitem__)


def audio_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Files and the audio files (.wav .flac .ogg, searched recursively) of folders, in order; refuses a missing
    path or an empty folder."""
    from vqaudio.audio import AUDIO_SUFFIXES

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise VQAudioError(f"{p}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise AudioError(f"{p}: no such file")
    if not out:
        raise VQAudioError("no audio given to enrol from")
    return out


def active_seconds(wav: np.ndarray, sample_rate: int) -> float:
    """Seconds of `wav` in 20 ms frames within ACTIVE_DB of its loudest frame (0 for digital silence)."""
    from vqaudio.audio import frame_power

    if len(wav) < int(0.02 * sample_rate):
        return 0.0
    power = frame_power(wav, sample_rate)
    if power.max() <= 0:
        return 0.0
    return float((power >= power.max() * 10 ** (-ACTIVE_DB / 10)).sum() * int(0.02 * sample_rate) / sample_rate)


def _check_model(loaded: LoadedModel, name: str, replace: bool) -> None:
    if loaded.model.kind != "vocoder":
        raise VQAudioError(f"enrolment needs a vocoder-kind model (model.decoder.kind: vocoder, e.g. the mini "
                           f"preset); this model's decoder is the {loaded.model.kind} kind")
    if not name or any(c.isspace() for c in name):
        raise VQAudioError(f"speaker name {name!r}: give a non-empty name without spaces")
    if name in loaded.speakers and not replace:
        raise VQAudioError(f"speaker '{name}' is already in this model; pass --replace to enrol it again")
    if not _trained_voices(loaded, name):
        raise VQAudioError(f"enrolment mixes the model's trained voices, and this model has none besides '{name}'")


def _trained_voices(loaded: LoadedModel, name: str) -> list[str]:
    """The model's voices a new voice `name` is mixed from: every speaker but `name` and the enrolled ones."""
    enrolled = set(loaded.extra.get("enrolled") or {})
    return [s for s in loaded.speakers if s != name and s not in enrolled]


def _windows(codes: list[np.ndarray], feats: list[np.ndarray], per_code: int, length: int, count: int,
             rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random windows of `length` codes (and their frames): codes [count, length], feats [count, M, F]."""
    lengths = np.array([len(c) for c in codes], np.float64)
    picks = rng.choice(len(codes), size=count, p=lengths / lengths.sum())
    c_out = np.zeros((count, length), np.int64)
    f_out = np.zeros((count, length * per_code, feats[0].shape[1]), np.float32)
    for i, u in enumerate(picks):
        n = len(codes[u])
        start = int(rng.integers(0, n - length + 1)) if n > length else 0
        take = min(length, n)
        c_out[i, :take] = codes[u][start:start + take]
        c_out[i, take:] = codes[u][-1]
        f = feats[u][start * per_code:(start + take) * per_code]
        f_out[i, :len(f)] = f
        f_out[i, len(f):] = f[-1]
    return torch.from_numpy(c_out), torch.from_numpy(f_out)


class _Table(nn.Module):
    """Stands in for the speaker embedding while enrolling: rows of a (differentiable) table."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(index, self.table)


def _learn_row(model, codes: list[np.ndarray], feats: list[np.ndarray], row: int, mixed: list[int], steps: int,
               lr: float, seed: int, on_step: Callable[[int, float], None] | None) -> tuple[list[float], np.ndarray]:
    """Fit speaker-embedding row `row` as a convex mixture of the rows `mixed` (softmax weights, starting from their
    mean) by the decoder loss on the enrolment windows; every weight of the model frozen. Returns the losses and
    the mixture weights, in the order of `mixed` (with one row to mix, the row is a copy of it).

    A mixture, not a free row: a free row fitted the loss a little better (1.3 against 1.5) but left the decoder's
    trained voices, and the content of conversions suffered (egs/vctk/RESULTS.md, "Enrolment ... mixture").
    """
    decoder, wavenet = model.decoder, model.decoder.wavenet
    embed = wavenet.speaker_embed.weight
    for p in model.parameters():
        p.requires_grad_(False)
    known = embed.detach()[mixed].clone()
    before, after = embed.detach()[:row], embed.detach()[row + 1:]  # the rows around the new one, as they are
    logits = torch.zeros(len(known), requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    rng = np.random.default_rng(seed)
    length = max(8, min(min(len(c) for c in codes), 128))
    losses = []
    lookup = wavenet.speaker_embed
    try:
        for step in range(steps):
            c, f = _windows(codes, feats, decoder.frames_per_code, length, 8, rng)
            mix = torch.softmax(logits, 0) @ known
            wavenet.speaker_embed = _Table(torch.cat([before, mix[None], after]))
            speaker = torch.full((len(c),), row, dtype=torch.long)
            loss, _ = decoder.loss(decoder(model.codes_to_latent(c), speaker), f)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, losses[-1])
    finally:
        wavenet.speaker_embed = lookup
    weights = torch.softmax(logits.detach(), 0)
    with torch.no_grad():
        embed[row] = weights @ known
    return losses, weights.numpy()


def _with_row(loaded: LoadedModel, name: str) -> int:
    """The speaker index `name` will have, growing the speaker embedding, F0 statistics (the mean voice's) and
    envelope statistics (unknown until `_envelope_row`) by a row if new."""
    decoder = loaded.model.decoder
    if name in loaded.speakers:
        return loaded.speakers.index(name)
    wn = decoder.wavenet
    old = wn.speaker_embed.weight.data
    grown = torch.nn.Embedding(old.shape[0] + 1, old.shape[1])
    with torch.no_grad():
        grown.weight[:-1] = old
        grown.weight[-1] = old.mean(dim=0)  # the average voice, until `_learn_row` sets the fitted mixture
    wn.speaker_embed, wn.n_speakers = grown, old.shape[0] + 1
    decoder.speaker_lf0 = torch.cat([decoder.speaker_lf0, decoder.speaker_lf0.mean(dim=0, keepdim=True)])
    unknown = unknown_envelope(1, decoder.speaker_envelope.shape[-1]).to(decoder.speaker_envelope)
    decoder.speaker_envelope = torch.cat([decoder.speaker_envelope, unknown])
    loaded.speakers.append(name)
    return len(loaded.speakers) - 1


def _envelope_row(loaded: LoadedModel, codes: list[np.ndarray], feats: list[np.ndarray], row: int) -> np.ndarray:
    """The new speaker's `speaker_envelope` row [2, E]: the global variance of its real envelopes, and the mean
    difference between them and the decoder's output for its codes over the real voiced frames, per utterance, then
    averaged (energy 0). NaN GV (postfilter off for the voice) when no utterance has enough voiced frames."""
    from vqaudio.inference.vocode import decode_features

    settings = loaded.model.decoder.settings
    decoded = decode_features(loaded, codes, [row] * len(codes))
    gv, bias = [], []
    for real, made in zip(feats, decoded, strict=True):
        voiced = real[:, settings.vuv_index] >= 0.5
        r, m = envelope_statistics(real, settings), envelope_statistics(made, settings, voiced)
        if r is not None and m is not None:
            gv.append(r[1])
            bias.append(r[0] - m[0])
    out = np.zeros((2, settings.lf0_index))
    out[0] = np.mean(gv, axis=0) if gv else np.nan
    if bias:
        out[1] = np.mean(bias, axis=0)
        out[1, 0] = 0.0  # the frame energy: the input level decides it, not the voice
    return out


def enroll_voice(loaded: LoadedModel, name: str, audio: list[str | os.PathLike], steps: int = 300, lr: float = 0.1,
                 seed: int = 0, replace: bool = False, on_step: Callable[[int, float], None] | None = None
                 ) -> dict[str, Any]:
    """Enrol voice `name` from `audio` (files or folders) into the loaded model `loaded`, in place; returns the
    enrolment record (files, seconds, steps, lr, seed, final_loss, mixture: the weight of each trained voice in the
    new row; and losses), also kept in `loaded.extra` (without the losses). Enrolled voices are never mixed.

    Refuses (VQAudioError, one line): a model of the wavenet kind, a name already in the model (unless
    `replace`), a model with no trained voice besides `name`, unreadable or non-audio inputs (named), less than
    MIN_SECONDS of active speech, steps < 1.
    Deterministic for a given seed.
    """
    from vqaudio.audio import load_audio

    _check_model(loaded, name, replace)
    if steps < 1:
        raise VQAudioError(f"enrolment steps must be >= 1, got {steps}")
    files = audio_files(audio)
    wavs = [load_audio(f, loaded.sample_rate, min_samples=loaded.hop_length) for f in files]
    return enroll_wavs(loaded, name, wavs, [str(f) for f in files], steps, lr, seed, replace, on_step)


def enroll_wavs(loaded: LoadedModel, name: str, wavs: list[np.ndarray], files: list[str], steps: int = 300,
                lr: float = 0.1, seed: int = 0, replace: bool = False,
                on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """`enroll_voice` on waveforms [T] at the model's rate (`files`: what they came from, for the record)."""
    from vqaudio.audio import FULL_BAND, bandwidth_hz
    from vqaudio.data.world import WorldSettings, analyze
    from vqaudio.inference.codec import encode
    from vqaudio.inference.vocode import forget_postfilter_reference

    _check_model(loaded, name, replace)
    if steps < 1:
        raise VQAudioError(f"enrolment steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    seconds = sum(active_seconds(w, loaded.sample_rate) for w in wavs)
    if seconds < MIN_SECONDS:
        raise VQAudioError(f"only {seconds:.1f} s of usable speech in {len(files)} file(s); enrolment needs at least "
                           f"{MIN_SECONDS:g} s")
    settings = WorldSettings.from_config(loaded.config)
    hop, per_code = loaded.hop_length, loaded.model.decoder.frames_per_code
    wavs = [w[: max(hop, len(w) // hop * hop)] for w in wavs]
    codes = [encode(loaded, w) for w in wavs]
    feats = [analyze(w, settings)[: len(c) * per_code] for w, c in zip(wavs, codes, strict=True)]
    row = _with_row(loaded, name)
    model = loaded.model.eval()
    mixed = _trained_voices(loaded, name)
    losses, weights = _learn_row(model, codes, feats, row, [loaded.speakers.index(s) for s in mixed], steps, lr,
                                 seed, on_step)
    mixture = {spk: round(float(w), 4) for spk, w in zip(mixed, weights, strict=True)}
    stats = lf0_statistics(np.concatenate(feats), settings)
    if stats is not None:
        model.decoder.speaker_lf0[row] = torch.tensor(stats)
    band = float(np.median([bandwidth_hz(w, loaded.sample_rate) for w in wavs]))
    full_band = band >= FULL_BAND * loaded.sample_rate / 2
    model.decoder.speaker_envelope[row] = (
        torch.as_tensor(_envelope_row(loaded, codes, feats, row), dtype=torch.float32) if full_band
        else unknown_envelope(1, model.decoder.speaker_envelope.shape[-1])[0])
    forget_postfilter_reference(loaded, name)  # the utterance's scale for it (a --replace'd voice's record is stale)
    record = {"files": list(files), "seconds": round(seconds, 2), "steps": steps, "lr": lr,
              "seed": seed, "final_loss": float(np.mean(losses[-max(1, steps // 10):])), "mixture": mixture,
              "band_hz": round(band), "envelope_statistics": full_band}
    loaded.extra["enrolled"] = {**dict(loaded.extra.get("enrolled") or {}), name: record}
    nearest = nearest_voice(mixture)
    loaded.speaker_info[name] = (f"enrolled from {len(files)} file(s), {seconds:.0f} s of speech; nearest voice "
                                 f"{nearest} ({mixture[nearest]:.0%})")
    return {**record, "losses": losses}


def save_enrolled(loaded: LoadedModel, out_path: str | os.PathLike) -> str:
    """Write the loaded (enrolled) model to `out_path` atomically; returns its identity."""
    from vqaudio.models.io import save_model

    return save_model(out_path, loaded.model, loaded.config, loaded.speakers, loaded.speaker_info, loaded.extra)


def enroll(model_path: str | os.PathLike | None, name: str, audio: list[str | os.PathLike],
           out_path: str | os.PathLike, steps: int = 300, lr: float = 0.1, seed: int = 0, replace: bool = False,
           on_step: Callable[[int, float], None] | None = None) -> EnrollResult:
    """`vqaudio enroll`: enrol voice `name` from `audio` into the model at `model_path` (default: the codec's default
    model) and write the result to `out_path` (refused when it is the model or one of the inputs). See
    `enroll_voice` for what is refused; the new file records the enrolment in `extra["enrolled"][name]`."""
    from vqaudio.fileio import refuse_same_path
    from vqaudio.inference.codec import default_model_path, load_codec

    source = Path(model_path) if model_path is not None else default_model_path()
    refuse_same_path([source, *[Path(a) for a in audio]], Path(out_path))
    loaded = load_codec(source, device="cpu")
    record = enroll_voice(loaded, name, audio, steps, lr, seed, replace, on_step)
    identity = save_enrolled(loaded, out_path)
    return EnrollResult(name, record["files"], record["seconds"], steps, record["final_loss"], Path(out_path),
                        identity, record["losses"], record["mixture"], record["band_hz"],
                        record["envelope_statistics"])
