"""Decoding for the frame-level ("vocoder") decoder kind: codes -> WORLD features -> waveform.

`vqaudio.inference.codec.synthesize` hands vocoder-kind models here. All utterances of a call run through the decoder as
one padded batch (at most `max_frames` frames at a time), then each is rendered by WORLD synthesis.

Postfilter (`vocoder.gv_strength`, 0 = no variance change): the decoder, trained with an L1 loss, predicts envelopes
smoother than speech (the over-smoothing of statistical parametric synthesis); each coefficient's spread around the
utterance's mean over its voiced frames is stretched toward the speaker's global variance (Toda & Tokuda 2007) by the
factor (GV_speaker / var) ** (strength / 2), the energy coefficient left alone, and the speaker's output bias
(enrolled voices; zero for the training speakers) added at any strength. `var` (`vocoder.gv_scale`):
- "speaker": the decoder's own variance for the speaker (the mean over its training utterances' reconstructions,
  recorded in the model file after training: `calibrate_postfilter`), so the factor is the decoder's over-smoothing
  of that voice, the same for every utterance; without the record (enrolled voices), as "utterance";
- "utterance": the decoded utterance's own variance. A short utterance's envelope varies less than the sentences
  GV is measured on, so this stretches a spoken digit about twice as far as a sentence (egs/vctk/RESULTS.md).
Chosen by measurement (egs/vctk/RESULTS.md, "Postfilter and F0", "The postfilter's scale from the voice").

F0 (`f0_mode`; in conversion and in decoding codes alike):
- "predicted": the decoder's own log-F0 and voicing, conditioned on the target speaker;
- "normalized": the decoder's contour and voicing, moved to the target speaker's log-F0 statistics,
  (lf0 - mu_utt) / sd_utt * sd_tgt + mu_tgt over the voiced frames (the usual linear log-F0 conversion applied to
  the decoder's own contour: it keeps the decoder's intonation and puts it in the target's range); works from codes
  alone;
- "mapped": the source recording's F0 contour (DIO + StoneMask, fast) with its voicing, moved to the target
  speaker's statistics in the log domain, (lf0 - mu_src) / sd_src * sd_tgt + mu_tgt, the source statistics from
  the utterance itself and the target's from the model file (`VocoderDecoder.speaker_lf0`). Needs the source
  audio, so it applies to `convert`; decoding codes alone in this mode uses "predicted".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vqaudio.data.world import F0_MODES, WorldSettings, estimate_f0, interpolated_log_f0, pool_map, synthesis_job
from vqaudio.errors import VQAudioError
from vqaudio.models.io import LoadedModel
from vqaudio.models.vocoder import MIN_VOICED, envelope_statistics


def decode_features(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[int], max_frames: int = 200_000
                    ) -> list[np.ndarray]:
    """Codes int [N_i] each and speaker indices -> WORLD features float32 [N_i * frames_per_code, F] each.

    Each sequence is extended by the decoder's reach with its first and last code on either side (what a
    neighbouring frame of the same utterance most likely held), so its output does not depend on what else is
    in the batch: decoded together or alone, the features agree to float rounding (batched matrix products).
    """
    model = loaded.model
    device = next(model.parameters()).device
    per_code, reach = model.decoder.frames_per_code, model.decoder.wavenet.local_reach
    order = sorted(range(len(codes)), key=lambda i: len(codes[i]))
    out: list[np.ndarray | None] = [None] * len(codes)
    group: list[int] = []
    for i in order + [None]:
        if i is not None and (not group or (len(group) + 1) * (len(codes[i]) + 2 * reach) * per_code <= max_frames):
            group.append(i)
            continue
        longest = max(len(codes[j]) for j in group) + reach
        batch = np.stack([np.pad(codes[j], (reach, longest - len(codes[j])), mode="edge") for j in group])
        with torch.inference_mode():
            feats = model.decode_features(torch.as_tensor(batch, device=device),
                                          torch.as_tensor([speakers[j] for j in group], device=device))
        for row, j in enumerate(group):
            out[j] = feats[row, reach * per_code:(reach + len(codes[j])) * per_code].float().cpu().numpy()
        group = [i] if i is not None else []
    return out  # type: ignore[return-value]


def postfilter(feats: np.ndarray, settings: WorldSettings, envelope: np.ndarray, strength: float,
               decoded_gv: np.ndarray | None = None) -> np.ndarray:
    """Features [M, F] with the voiced frames' envelope coefficients moved toward the speaker's global variance and
    shifted by its bias (`envelope` [2, E]: GV, bias; see `VocoderDecoder.speaker_envelope`).

    The spread is scaled by (GV / var) ** (strength / 2), `var` the decoder's own variance for the speaker
    (`decoded_gv` [E], see `calibrate_postfilter`) when given and known, else the utterance's. Unchanged when the
    speaker's statistics are unknown (NaN). The variance is moved only when the utterance has enough voiced frames
    for its mean (`envelope_statistics`); the bias is added to every voiced frame, so strength 0 applies the bias
    alone (zero for the training speakers). Only voiced frames: the statistics are theirs, and silence and unvoiced
    consonants have envelopes of their own."""
    gv, bias = np.asarray(envelope[0], np.float64), np.asarray(envelope[1], np.float64)
    if not np.isfinite(gv).all() or not np.isfinite(bias).all():
        return feats
    voiced, e = feats[:, settings.vuv_index] >= 0.5, settings.lf0_index
    x = feats[voiced, :e].astype(np.float64)
    stats = envelope_statistics(feats, settings, voiced)
    if stats is not None and strength > 0:
        mean, var = stats
        if decoded_gv is not None and np.isfinite(decoded_gv).all():
            var = np.asarray(decoded_gv, np.float64)
        scale = np.ones_like(mean)
        scale[1:] = (gv[1:] / np.maximum(var[1:], 1e-8)) ** (strength / 2)  # [0] is the frame energy: left alone
        x = mean + (x - mean) * scale
    out = feats.copy()
    out[voiced, :e] = (x + bias).astype(feats.dtype)
    return out


def normalize_f0(feats: np.ndarray, settings: WorldSettings, target_lf0: tuple[float, float]) -> np.ndarray:
    """Features [M, F] with log-F0 moved from its own statistics over the voiced frames to the target's (mean, std);
    unchanged with fewer than MIN_VOICED voiced frames (too few to say what the contour's spread is)."""
    voiced = feats[:, settings.vuv_index] >= 0.5
    if voiced.sum() < MIN_VOICED:
        return feats
    k = settings.lf0_index
    out = feats.copy()
    out[:, k] = _move_lf0(feats[:, k], feats[voiced, k].astype(np.float64), target_lf0).astype(feats.dtype)
    return out


def _move_lf0(contour: np.ndarray, voiced_lf0: np.ndarray, target_lf0: tuple[float, float]) -> np.ndarray:
    """The linear log-F0 conversion: `contour` moved from the statistics of its voiced values `voiced_lf0` to the
    target's (mean, std), (lf0 - mu) / sd * sd_target + mu_target."""
    mean, std = target_lf0
    return (contour - voiced_lf0.mean()) / max(voiced_lf0.std(), 1e-3) * std + mean


def map_f0(feats: np.ndarray, source: np.ndarray, settings: WorldSettings, target_lf0: tuple[float, float]
           ) -> np.ndarray:
    """Replace the log-F0 and voicing of `feats` [M, F] by the source waveform's F0 contour mapped to the target's
    log-F0 (mean, std); unchanged when the source has fewer than 2 voiced frames."""
    from vqaudio.audio import normalize_level

    x = np.ascontiguousarray(normalize_level(source, settings.level_db, settings.sample_rate), np.float64)
    f0, _ = estimate_f0(x, settings, method="dio")
    m = len(feats)
    f0 = np.pad(f0, (0, max(0, m - len(f0))))[:m]
    voiced = f0 > 0
    if voiced.sum() < 2:
        return feats
    out = feats.copy()
    out[:, settings.lf0_index] = _move_lf0(interpolated_log_f0(f0), np.log(f0[voiced]), target_lf0)
    out[:, settings.vuv_index] = voiced.astype(np.float32)
    return out


def synthesize_codes(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[int],
                     sources: list[np.ndarray] | None = None,
                     f0_mode: str | None = None, on_progress: Callable[[int, int], None] | None = None,
                     workers: int = 1) -> list[np.ndarray]:
    """Codes int [N_i] each, speaker indices -> waveforms float32 [N_i * hop] (WORLD synthesis).

    `sources` (the waveforms the codes came from, [T_i] with T_i <= N_i * hop) enable `f0_mode` "mapped"; without
    them "mapped" falls back to the decoder's F0 as it is ("normalized" needs no sources). The default mode is the
    model's `vocoder.f0_mode`; the postfilter's strength is the model's `vocoder.gv_strength`; F0 and voicing are
    settled first, then the postfilter runs on the final voicing. on_progress(utterances done, total).
    `workers`: WORLD synthesis in this process (1), in that many processes, or on every core (0); more than one is
    worth it for minutes of audio, not for one utterance.
    """
    decoder = loaded.model.decoder
    settings: WorldSettings = decoder.settings
    f0_mode = f0_mode or loaded.config.vocoder.f0_mode
    if f0_mode not in F0_MODES:
        raise VQAudioError(f"f0 mode must be one of {', '.join(F0_MODES)}, got {f0_mode!r}")
    feats = decode_features(loaded, codes, speakers)
    strength, decoded_gv = loaded.config.vocoder.gv_strength, postfilter_reference(loaded)
    envelopes, lf0 = decoder.speaker_envelope.detach().cpu().numpy(), decoder.speaker_lf0.detach().cpu().tolist()
    jobs = []
    for i, f in enumerate(feats):
        if f0_mode == "normalized":
            f = normalize_f0(f, settings, tuple(lf0[speakers[i]]))
        elif f0_mode == "mapped" and sources is not None:
            f = map_f0(f, sources[i], settings, tuple(lf0[speakers[i]]))
        # on the final voicing (mapped: the source's)
        f = postfilter(f, settings, envelopes[speakers[i]], strength, decoded_gv[speakers[i]])
        jobs.append((f, settings, len(codes[i]) * loaded.hop_length))
    if workers != 1:
        outs = pool_map(synthesis_job, jobs, "WORLD synthesis", workers, show_progress=False)
        if on_progress is not None:
            on_progress(len(jobs), len(jobs))
        return outs
    outs = []
    for i, job in enumerate(jobs):
        outs.append(synthesis_job(job))
        if on_progress is not None:
            on_progress(i + 1, len(jobs))
    return outs


POSTFILTER_KEY = "postfilter"  # LoadedModel.extra: {"decoded_gv": {speaker: [E]}, "utterances": {speaker: n}}
CALIBRATION_UTTERANCES = 16  # training utterances per voice decoded for its reference


def calibrate_postfilter(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[int]) -> dict[str, int]:
    """Record in `loaded.extra` each speaker's decoded GV: the variance of the envelope coefficients over the voiced
    frames the decoder makes from `codes` (int [N_i] each, e.g. the speaker's training utterances) in voice
    `speakers[i]`, averaged over that speaker's utterances; the postfilter's reference under `gv_scale: speaker`.
    Speakers not in `speakers` keep what was recorded. Returns the utterances used per speaker (those with fewer
    than MIN_VOICED voiced frames do not count)."""
    settings = loaded.model.decoder.settings
    sums: dict[int, list[np.ndarray]] = {}
    for s, f in zip(speakers, decode_features(loaded, codes, speakers) if codes else [], strict=True):
        stats = envelope_statistics(f, settings)
        if stats is not None:
            sums.setdefault(s, []).append(stats[1])
    record = dict(loaded.extra.get(POSTFILTER_KEY) or {})
    gv, count = dict(record.get("decoded_gv") or {}), dict(record.get("utterances") or {})
    for s, vs in sums.items():
        name = loaded.speakers[s]
        gv[name], count[name] = [float(v) for v in np.mean(vs, axis=0)], len(vs)
    loaded.extra[POSTFILTER_KEY] = {"decoded_gv": gv, "utterances": count}
    return {loaded.speakers[s]: len(vs) for s, vs in sums.items()}


def forget_postfilter_reference(loaded: LoadedModel, speaker: str) -> None:
    """Drop `speaker`'s record from `loaded.extra` (`calibrate_postfilter`): the postfilter then scales its speech
    by each utterance's own variance, as enrolled voices are decoded."""
    record = loaded.extra.get(POSTFILTER_KEY)
    if record:
        for table in ("decoded_gv", "utterances"):
            (record.get(table) or {}).pop(speaker, None)


def postfilter_reference(loaded: LoadedModel) -> np.ndarray:
    """The decoded GV [S, E] per speaker in the model's order (`calibrate_postfilter`); NaN rows for speakers with
    none recorded, and all NaN (the utterance's own variance throughout) under `gv_scale: utterance`."""
    e = loaded.model.decoder.settings.lf0_index
    out = np.full((len(loaded.speakers), e), np.nan)
    if loaded.config.vocoder.gv_scale != "speaker":
        return out
    recorded = (loaded.extra.get(POSTFILTER_KEY) or {}).get("decoded_gv") or {}
    for i, name in enumerate(loaded.speakers):
        row = recorded.get(name)
        if row is not None and len(row) == e:
            out[i] = row
    return out
