"""Decoding for the frame-level ("vocoder") decoder kind: codes -> WORLD features -> waveform.

`vqaudio.inference.codec.synthesize` hands vocoder-kind models here. All utterances of a call run through the decoder as
one padded batch (at most `max_frames` frames at a time), then each is rendered by WORLD synthesis.

F0 in conversion (`f0_mode`):
- "predicted": the decoder's own log-F0 and voicing, conditioned on the target speaker;
- "mapped": the source recording's F0 contour (DIO + StoneMask, fast) with its voicing, moved to the target
  speaker's statistics in the log domain, (lf0 - mu_src) / sd_src * sd_tgt + mu_tgt, the source statistics from
  the utterance itself and the target's from the model file (`VocoderDecoder.speaker_lf0`). Needs the source
  audio, so it applies to `convert`; decoding codes alone always uses "predicted".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vqaudio.data.world import F0_MODES, WorldSettings, estimate_f0, interpolated_log_f0, synthesize
from vqaudio.errors import VQAudioError
from vqaudio.models.io import LoadedModel


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
    lf0 = np.log(f0[voiced])
    mean, std = target_lf0
    out = feats.copy()
    out[:, settings.lf0_index] = (interpolated_log_f0(f0) - lf0.mean()) / max(lf0.std(), 1e-3) * std + mean
    out[:, settings.vuv_index] = voiced.astype(np.float32)
    return out


def synthesize_codes(loaded: LoadedModel, codes: list[np.ndarray], speakers: list[int],
                     sources: list[np.ndarray] | None = None,
                     f0_mode: str | None = None, on_progress: Callable[[int, int], None] | None = None
                     ) -> list[np.ndarray]:
    """Codes int [N_i] each, speaker indices -> waveforms float32 [N_i * hop] (WORLD synthesis).

    `sources` (the waveforms the codes came from, [T_i] with T_i <= N_i * hop) enable `f0_mode` "mapped"; without
    them F0 is the decoder's. The default mode is the model's `vocoder.f0_mode`. on_progress(utterances done, total).
    """
    decoder = loaded.model.decoder
    settings: WorldSettings = decoder.settings
    f0_mode = f0_mode or loaded.config.vocoder.f0_mode
    if f0_mode not in F0_MODES:
        raise VQAudioError(f"f0 mode must be one of {', '.join(F0_MODES)}, got {f0_mode!r}")
    feats = decode_features(loaded, codes, speakers)
    outs = []
    for i, f in enumerate(feats):
        if f0_mode == "mapped" and sources is not None:
            mean, std = decoder.speaker_lf0[speakers[i]].tolist()
            f = map_f0(f, sources[i], settings, (mean, std))
        outs.append(synthesize(f, settings, len(codes[i]) * loaded.hop_length))
        if on_progress is not None:
            on_progress(i + 1, len(feats))
    return outs
