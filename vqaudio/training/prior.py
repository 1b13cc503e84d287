"""Training the latent prior with the one training loop (`vqaudio.training.loop`): the prior's task, and `train_prior`.

    report = train_prior("data", "exp/prior", "exp/vqvae/model.pt", load_config("mini"))
    print(report.scores.nll_bits, report.scores.bits_per_second)

Files in EXP_DIR: `codes/{train,dev}.npz` (code cache, see `vqaudio.inference.prior.extract_codes`), the training
loop's `config.yaml`, `log.jsonl`, `checkpoints/`, the exported `prior.pt` (a `vqaudio-prior` file recording
the VQ-VAE's identity) and `prior_scores.json` (validation NLL beside the unigram entropy and log2 K).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqaudio.config import Config
from vqaudio.errors import ConfigError, DataError
from vqaudio.fileio import atomic_write_text
from vqaudio.inference.prior import CodeSet, PriorScores, extract_codes, save_prior, score_prior
from vqaudio.models.prior import IGNORE, LatentPrior, build_prior

Batch = tuple[Tensor, Tensor, Tensor]  # codes [B, S], targets [B, S], speaker [B]


class CodeWindows:
    """Random training windows of `segment` codes, utterances drawn in proportion to their length.

    A window shorter than `segment` (short utterance) is padded: targets IGNORE, inputs 0.
    A fraction `speaker_dropout` of the windows gets speaker -1 (the prior's unknown speaker).
    """

    def __init__(self, codeset: CodeSet, segment: int, batch_size: int, speaker_dropout: float):
        if codeset.total_codes == 0:
            raise DataError("no codes to train the prior on (empty training split)")
        if segment < 1:
            raise ConfigError(f"prior.segment_codes must be >= 1, got {segment}")
        self.codeset, self.segment, self.batch_size = codeset, segment, batch_size
        self.speaker_dropout = speaker_dropout
        lengths = np.array([len(c) for c in codeset.codes], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def batch(self, seed: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch that depends on `seed` only (e.g. [cfg seed, rank, step]: a resumed run sees the same data).

        Returns (codes LongTensor [B, S], targets [B, S] (IGNORE past the end), speaker [B] (-1 = unknown)).
        """
        rng = np.random.default_rng(seed)
        B, S = self.batch_size, self.segment
        targets = np.full((B, S), IGNORE, dtype=np.int64)
        utts = rng.choice(len(self.weights), size=B, p=self.weights)
        for b, u in enumerate(utts):
            seq = self.codeset.codes[u]
            start = int(rng.integers(0, max(len(seq) - S, 0) + 1))
            window = seq[start:start + S]
            targets[b, :len(window)] = window
        speaker = self.codeset.speakers[utts].copy()
        speaker[rng.random(B) < self.speaker_dropout] = -1
        codes = np.where(targets == IGNORE, 0, targets)
        return torch.from_numpy(codes), torch.from_numpy(targets), torch.from_numpy(speaker)

class PriorTask:
    """The prior's part of training (the `vqaudio.training.loop.Task` protocol): windows of codes, NLL loss."""

    kind = "prior"
    train_section = "prior_train"
    config_sections = ("prior", "prior_train")
    export_name = "prior.pt"

    def __init__(self, prior: LatentPrior, config: Config, train: CodeSet, dev: CodeSet, speakers: list[str],
                 codes_per_second: float):
        self.model, self.config, self.speakers = prior, config, speakers
        self.model_identity, self.codes_per_second = train.identity, codes_per_second
        tc, pc = config.prior_train, config.prior
        self.train_windows = CodeWindows(train, pc.segment_codes, tc.batch_size, pc.speaker_dropout)
        # Validation windows keep the true speaker: they measure the conditional NLL.
        self.dev_windows = CodeWindows(dev, pc.segment_codes, tc.batch_size, speaker_dropout=0.0)

    def train_batch(self, step: int, rank: int, device: torch.device) -> Batch:
        """Windows drawn from a generator seeded by (seed, rank, step): pure, so resuming replays the data."""
        batch = self.train_windows.batch([self.config.prior_train.seed, rank, step])
        return tuple(t.to(device) for t in batch)  # type: ignore[return-value]

    def valid_batches(self, device: torch.device) -> list[Batch]:
        seed = self.config.prior_train.seed
        n = max(1, self.config.prior_train.valid_batches)
        return [tuple(t.to(device) for t in self.dev_windows.batch([seed, 1 << 20, i])) for i in range(n)]

    def losses(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean NLL (nats/code) of the non-padding targets; metrics in bits/code and bits/s."""
        codes, targets, speaker = batch
        loss = F.cross_entropy(model(codes, speaker).float(), targets, ignore_index=IGNORE)
        bits = loss.detach() / math.log(2)
        return loss, {"bits_per_code": bits, "bits_per_s": bits * self.codes_per_second}

    def samples_in(self, batch: Batch) -> int:
        return int((batch[1] != IGNORE).sum())

    def status(self) -> dict[str, float]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"model_identity": self.model_identity, "speakers": list(self.speakers),
                "codebook_size": self.model.codebook_size}

    def export(self, path: Path, extra: dict[str, Any]) -> None:
        save_prior(path, self.model, self.speakers, self.model_identity,
                   {**extra, "codes_per_second": self.codes_per_second})


@dataclass
class PriorReport:
    """What `train_prior` did and measured."""

    prior_path: Path
    step: int
    stop_reason: str
    scores: PriorScores  # on the dev split (the training split when there is none)
    scored_on: str  # "dev" or "train"


def train_prior(data_dir: str | os.PathLike, exp_dir: str | os.PathLike, model_path: str | os.PathLike,
                config: Config, *, force: bool = False, device: str | torch.device | None = None,
                show_progress: bool | None = None) -> PriorReport | None:
    """Extract (cached) codes with the VQ-VAE at `model_path`, train the prior on them, export and score it.

    Returns None on ranks other than 0 of a distributed run (only rank 0 scores and writes files).
    """
    from vqaudio.data.dataset import resolve_data_dir
    from vqaudio.models.io import load_model
    from vqaudio.training.loop import train

    loaded = load_model(model_path)
    exp_dir = Path(exp_dir)
    splits = resolve_data_dir(data_dir)
    train_dir, dev_dir = splits.train, splits.dev
    train_codes = extract_codes(loaded, train_dir, exp_dir / "codes" / "train.npz", "codes train")
    dev_codes = extract_codes(loaded, dev_dir, exp_dir / "codes" / "dev.npz", "codes dev") if dev_dir else None
    codes_per_second = loaded.sample_rate / loaded.hop_length
    torch.manual_seed(config.prior_train.seed)
    prior = build_prior(config.prior, loaded.config.vq.codebook_size, len(loaded.speakers))
    task = PriorTask(prior, config, train_codes, dev_codes or train_codes, loaded.speakers, codes_per_second)
    result = train(task, config, exp_dir, force=force, device=device, show_progress=show_progress)
    if result.model_path is None:
        return None
    scores = score_prior(task.model, train_codes, dev_codes or train_codes, codes_per_second)
    report = PriorReport(exp_dir / task.export_name, result.step, result.stop_reason, scores,
                         "dev" if dev_codes else "train")
    atomic_write_text(exp_dir / "prior_scores.json", json.dumps(
        {"step": report.step, "scored_on": report.scored_on, **scores.as_dict()}, indent=2) + "\n")
    return report
