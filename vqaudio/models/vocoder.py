"""The frame-level decoder: the one WaveNet, non-causal at the vocoder's frame rate, predicting WORLD features.

Codes (at the code rate) and a speaker go in; per frame of `frame_samples` samples come out the normalised
WORLD parameters of `vqaudio.data.world` (coded spectral envelope, coded aperiodicity, log-F0, voicing logit).
The normalisation statistics of the training features and each training speaker's log-F0 mean and standard
deviation are buffers, so they travel in the model file with the weights:

- `feature_mean`, `feature_std` [F]: per-dimension statistics over the training frames (log-F0 over voiced
  frames only; the voicing flag is not normalised: the network predicts its logit);
- `speaker_lf0` [S, 2]: per speaker, mean and standard deviation of log-F0 over voiced frames (F0 mapping);
- `speaker_envelope` [S, 2, E] over the E = spectral + aperiodicity coefficients: per speaker, (0) the global
  variance (GV: each coefficient's variance over an utterance's voiced frames, averaged over the speaker's
  utterances), the postfilter's target (`vqaudio.inference.vocode.postfilter`), and (1) an output bias, zero for
  the training speakers, set by enrolment (`vqaudio.training.enroll`). NaN GV where unknown (a model file written
  before this buffer existed loads with NaN GV, and its postfilter leaves the speakers alone).

Loss (on normalised targets): L1 on the spectral and aperiodicity coefficients, L1 on log-F0 over voiced frames,
binary cross-entropy on voicing; their sum is the reconstruction loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.data.world import WorldSettings
from vqaudio.models.wavenet import WaveNet

FEATURE_TERMS = ("spectral_l1", "aperiodicity_l1", "lf0_l1", "vuv_bce")


def feature_loss(parts: dict[str, Tensor]) -> Tensor:
    """The unweighted feature loss: the sum of the four feature terms of `VocoderDecoder.loss`'s parts (comparable
    across `spectral_weight`s and with or without the GV term)."""
    return sum(parts[k] for k in FEATURE_TERMS)


def gv_loss(pred: Tensor, target: Tensor, voiced: Tensor) -> Tensor:
    """Global-variance loss (the GV of Toda & Tokuda 2007 as a training term): L1 between the log-variances of
    prediction and target, per window and coefficient, over each window's voiced frames (pred, target [B, C, M],
    voiced [B, M] in {0, 1}); windows with fewer than MIN_VOICED voiced frames are left out (0 when none is left).
    The L1 loss alone predicts envelopes smoother than speech, which the postfilter then has to stretch."""
    n = voiced.sum(1)  # [B]
    keep = n >= MIN_VOICED
    if not bool(keep.any()):
        return pred.sum() * 0.0
    pred, target, w, n = pred[keep], target[keep], voiced[keep][:, None, :], n[keep][:, None]

    def log_var(x: Tensor) -> Tensor:
        mean = (x * w).sum(2) / n
        return torch.log(((x - mean[..., None]).square() * w).sum(2) / n + 1e-4)

    return (log_var(pred) - log_var(target)).abs().mean()


class VocoderDecoder(nn.Module):
    """Non-causal frame-level WaveNet -> WORLD features, with the feature statistics as buffers."""

    kind = "vocoder"

    def __init__(self, wavenet: WaveNet, settings: WorldSettings, n_speakers: int, spectral_weight: float = 1.0,
                 gv_weight: float = 0.0):
        super().__init__()
        if wavenet.causal or wavenet.classes != settings.dims:
            raise ValueError(f"the vocoder decoder needs a non-causal WaveNet with {settings.dims} outputs")
        self.wavenet, self.settings, self.spectral_weight = wavenet, settings, spectral_weight
        self.gv_weight = gv_weight
        self.frames_per_code = wavenet.upsample
        self.register_buffer("feature_mean", torch.zeros(settings.dims))
        self.register_buffer("feature_std", torch.ones(settings.dims))
        lf0 = torch.tensor([[np.log(120.0), 0.2]], dtype=torch.float32)  # placeholder until set_statistics
        self.register_buffer("speaker_lf0", lf0.repeat(max(n_speakers, 1), 1))
        self.register_buffer("speaker_envelope", unknown_envelope(max(n_speakers, 1), settings.lf0_index))
        self.register_load_state_dict_pre_hook(self._fill_envelope)

    def forward(self, z_q: Tensor, speaker: Tensor | None) -> Tensor:
        """Code vectors [B, D, N] and speaker ids [B] -> normalised predictions [B, F, N * frames_per_code]
        (the last channel is the voicing logit)."""
        return self.wavenet.forward_frames(z_q, speaker)

    def denormalize(self, pred: Tensor) -> Tensor:
        """Normalised predictions [B, F, M] -> WORLD features [B, M, F] (voicing as a probability)."""
        feats = pred * self.feature_std[:, None] + self.feature_mean[:, None]
        v = self.settings.vuv_index
        feats = torch.cat([feats[:, :v], torch.sigmoid(pred[:, v:v + 1])], dim=1)
        return feats.transpose(1, 2)

    def normalize(self, feats: Tensor) -> Tensor:
        """WORLD features [B, M, F] -> normalised targets [B, F, M] (voicing left as 0/1)."""
        x = feats.transpose(1, 2)
        v = self.settings.vuv_index
        norm = (x - self.feature_mean[:, None]) / self.feature_std[:, None]
        return torch.cat([norm[:, :v], x[:, v:v + 1]], dim=1)

    def loss(self, pred: Tensor, feats: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """pred [B, F, M] (from `forward`), target WORLD features [B, M, F] -> (reconstruction loss, its parts).

        The loss is the parts' sum with the envelope's term weighted by `spectral_weight`; the parts are unweighted.
        With `gv_weight` > 0 the parts also hold `gv_log_l1` (`gv_loss`), added to the loss with that weight and left
        out of the feature loss (`feature_loss`), so runs with and without it compare.
        """
        s = self.settings
        target = self.normalize(feats.float())  # fp32 targets: bf16 would round log-F0 by up to ~1.6% in F0
        pred = pred.float()
        sp, lf0, v = s.spectral_dims, s.lf0_index, s.vuv_index
        voiced = target[:, v]
        parts = {
            "spectral_l1": F.l1_loss(pred[:, :sp], target[:, :sp]),
            "aperiodicity_l1": F.l1_loss(pred[:, sp:lf0], target[:, sp:lf0]),
            "lf0_l1": ((pred[:, lf0] - target[:, lf0]).abs() * voiced).sum() / voiced.sum().clamp_min(1.0),
            "vuv_bce": F.binary_cross_entropy_with_logits(pred[:, v], voiced),
        }
        loss = feature_loss(parts) + (self.spectral_weight - 1.0) * parts["spectral_l1"]
        if self.gv_weight > 0:
            parts["gv_log_l1"] = gv_loss(pred[:, 1:sp], target[:, 1:sp], voiced)
            loss = loss + self.gv_weight * parts["gv_log_l1"]
        return loss, parts

    @staticmethod
    def _fill_envelope(module: VocoderDecoder, state_dict: dict, prefix: str, *_: object) -> None:
        """Load-state-dict pre-hook: a state from before `speaker_envelope` existed (a model file or checkpoint) keeps
        the statistics the module already holds when they fit (a resumed run's, fitted on its data), else NaN GV."""
        key, lf0 = prefix + "speaker_envelope", prefix + "speaker_lf0"
        if key in state_dict or lf0 not in state_dict:
            return
        current = module.speaker_envelope
        n = len(state_dict[lf0])
        state_dict[key] = current.clone() if len(current) == n else unknown_envelope(n, module.settings.lf0_index)

    @torch.no_grad()
    def set_statistics(self, feats: np.ndarray, frames: np.ndarray, speaker_of_utt: np.ndarray,
                       chunk: int = 1 << 18) -> None:
        """Fit the buffers to training features float [sum M_u, F] (an array or a memmap, read `chunk` frames at a
        time, so VCTK-sized caches need no float64 copy) with `frames` [U] per utterance and each utterance's
        speaker index `speaker_of_utt` [U]."""
        self._set_feature_statistics(feats, frames, speaker_of_utt, chunk)
        self._set_envelope_statistics(feats, frames, speaker_of_utt)

    def _set_feature_statistics(self, feats: np.ndarray, frames: np.ndarray, speaker_of_utt: np.ndarray,
                                chunk: int) -> None:
        """`feature_mean`, `feature_std` and `speaker_lf0` from the training features, `chunk` frames at a time."""
        s, n_spk = self.settings, self.speaker_lf0.shape[0]
        frame_speaker = np.repeat(np.asarray(speaker_of_utt), np.asarray(frames))
        total = np.zeros((3, feats.shape[1]))  # frames, sum, sum of squares (all frames)
        lf0 = np.zeros((3, n_spk))  # voiced frames, sum, sum of squares of log-F0, per speaker
        for a in range(0, len(feats), chunk):
            x = np.asarray(feats[a:a + chunk], np.float64)
            total += [np.full(x.shape[1], len(x)), x.sum(axis=0), np.square(x).sum(axis=0)]
            voiced = x[:, s.vuv_index] >= 0.5
            spk, v = frame_speaker[a:a + chunk][voiced], x[voiced, s.lf0_index]
            lf0 += [np.bincount(spk, minlength=n_spk), np.bincount(spk, v, n_spk), np.bincount(spk, v * v, n_spk)]
        mean, std = _mean_std(*total)
        if lf0[0].sum() > 1:
            mean[s.lf0_index], std[s.lf0_index] = _mean_std(*lf0.sum(axis=1))
        mean[s.vuv_index], std[s.vuv_index] = 0.0, 1.0
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(np.maximum(std, 1e-3), dtype=torch.float32))
        for k in range(n_spk):
            if lf0[0, k] > 1:
                m, sd = _mean_std(*lf0[:, k])
                self.speaker_lf0[k] = torch.tensor([m, max(sd, 1e-3)])

    def _set_envelope_statistics(self, feats: np.ndarray, frames: np.ndarray, speaker_of_utt: np.ndarray) -> None:
        """Each speaker's global variance (mean over its utterances of `envelope_statistics`' variance); bias 0."""
        n_spk, e = self.speaker_envelope.shape[0], self.settings.lf0_index
        total, count = np.zeros((n_spk, e)), np.zeros(n_spk)
        offsets = np.concatenate([[0], np.cumsum(frames)])
        for u, k in enumerate(np.asarray(speaker_of_utt)):
            stats = envelope_statistics(np.asarray(feats[offsets[u]:offsets[u + 1]], np.float64), self.settings)
            if stats is not None:
                total[k] += stats[1]
                count[k] += 1
        gv = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], np.nan)
        self.speaker_envelope[:, 0] = torch.as_tensor(gv, dtype=torch.float32)
        self.speaker_envelope[:, 1] = 0.0


def _mean_std(count, total, squares):
    """Mean and (population) standard deviation from a count, a sum and a sum of squares."""
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))


def unknown_envelope(n_speakers: int, coefficients: int) -> torch.Tensor:
    """`speaker_envelope` before statistics: GV unknown (NaN, postfilter off), bias 0: [S, 2, E]."""
    out = torch.zeros(n_speakers, 2, coefficients)
    out[:, 0] = float("nan")
    return out


MIN_VOICED = 10  # frames: fewer say too little about an utterance's envelope statistics


def envelope_statistics(feats: np.ndarray, settings: WorldSettings, voiced: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and variance [E] each of the spectral and aperiodicity coefficients of features [M, F] over their
    voiced frames, or the frames of the mask `voiced` [M] (None with fewer than MIN_VOICED such frames)."""
    if voiced is None:
        voiced = feats[:, settings.vuv_index] >= 0.5
    x = np.asarray(feats[voiced, :settings.lf0_index], np.float64)
    if len(x) < MIN_VOICED:
        return None
    return x.mean(axis=0), x.var(axis=0)


def lf0_statistics(feats: np.ndarray, settings: WorldSettings) -> list[float] | None:
    """[mean, std] of log-F0 over the voiced frames of features [M, F] (None with fewer than 2 voiced frames)."""
    lf0 = feats[feats[:, settings.vuv_index] >= 0.5, settings.lf0_index]
    if len(lf0) < 2:
        return None
    return [float(lf0.mean()), max(float(lf0.std()), 1e-3)]
