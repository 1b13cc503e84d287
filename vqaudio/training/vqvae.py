"""Training the VQ-VAE with the one training loop (`vqaudio.training.loop`): the VQ-VAE's task, and `train_vqvae`.

    result = train_vqvae("data/embedded", "exp/mini", load_config("mini"))
    print(result.valid["recon"], result.model_path)   # "nll" (nats/sample) for the wavenet decoder kind

Files in EXP_DIR: the training loop's `config.yaml`, `log.jsonl`, `checkpoints/`, the exported `model.pt`
(a `vqaudio-vqvae` file, `vqaudio.models.io`) and `cache/` (the decoded training audio; with `perturb.decoded_from`,
the model's own copies of it, `vqaudio.training.decoded`). For the vocoder decoder
kind the WORLD features of the data dir's train and dev splits are analysed first (cached in DATA/<split>/world/),
and when the run ends (not interrupted) the exported model file records its postfilter's reference, the decoder's
own envelope variance for each voice (`calibrate_model_file`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from vqaudio.config import Config, hop_length
from vqaudio.data import perturb
from vqaudio.data.dataset import Batch, SegmentDataset, read_speaker_info, resolve_data_dir
from vqaudio.data.kaldi import DataDir, pick
from vqaudio.data.world import WorldSettings, check_decoding
from vqaudio.errors import ConfigError, DataError
from vqaudio.inference.vocode import CALIBRATION_UTTERANCES, POSTFILTER_KEY
from vqaudio.models.io import load_model, save_model, update_model_file
from vqaudio.training.checkpoint import latest_checkpoint
from vqaudio.training.decoded import decoded_copies, discard_decoded_copies
from vqaudio.training.loop import TrainResult, init_distributed, train


@dataclass
class VQVAETask:
    """Training the VQ-VAE: random windows of the train split, fixed windows of dev, `model.pt` export."""

    model: nn.Module  # vqaudio.models.VQVAE
    config: Config
    speakers: list[str]  # sorted training speakers: the model's speaker embedding order
    speaker_info: dict[str, str]
    train_data: SegmentDataset
    valid_data: SegmentDataset
    kind: str = "vqvae"
    train_section: str = "train"
    config_sections: tuple[str, ...] = ("model", "train", "perturb")
    export_name: str = "model.pt"

    def train_batch(self, step: int, rank: int, device: torch.device) -> Batch:
        return self.train_data.batch(step, self.config.train.batch_size, rank).to(device)

    def valid_batches(self, device: torch.device) -> list[Batch]:
        cfg = self.config.train
        return [b.to(device) for b in self.valid_data.fixed_batches(cfg.valid_batches, cfg.batch_size)]

    def losses(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        out = model(batch.wav, batch.speaker, batch.features, batch.inputs, batch.phones)
        recon = {"nll": out.recon} if self.model.kind == "wavenet" else {"recon": out.recon}
        return out.loss, {**recon, **out.parts, "vq_loss": out.vq_loss, "commitment": out.commitment,
                          "perplexity": out.perplexity}

    def samples_in(self, batch: Batch) -> int:
        return batch.wav.numel()

    def status(self) -> dict[str, float]:
        ppl, used = self.model.quantizer.usage()
        return {"usage_perplexity": ppl, "codes_used": used}

    def describe(self) -> dict[str, Any]:
        return {"speakers": list(self.speakers)}

    def export(self, path: Path, extra: dict[str, Any]) -> None:
        save_model(path, self.model, self.config.model, self.speakers, self.speaker_info, extra)


def vqvae_task(data_dir: str | os.PathLike, config: Config, show_progress: bool | None = None,
               cache: Path | None = None) -> VQVAETask:
    """Load the data (see `resolve_data_dir`; audio cached in the folder `cache` if given) and build the
    VQ-VAE (seeded by `train.seed`) for `train`."""
    from vqaudio.models import build_vqvae

    cfg = config.train
    hop = hop_length(config.model)
    if cfg.segment_samples <= 0 or cfg.segment_samples % hop:
        raise ConfigError(f"train.segment_samples must be a positive multiple of the hop ({hop}), "
                          f"got {cfg.segment_samples}")
    splits = resolve_data_dir(data_dir)
    speakers = DataDir.load(splits.train).speakers
    torch.manual_seed(cfg.seed)
    model = build_vqvae(config.model, len(speakers))  # first: a bad config is refused before any data is read
    perturb.check(config.perturb)
    aux = _aux_speakers(speakers, cfg.aux_speakers, cfg.aux_share) if cfg.aux_share != 0 else []
    if config.perturb.speaker > 0 and model.kind != "vocoder":
        raise ConfigError("perturb.speaker needs the vocoder decoder kind (its WORLD features make the copies)")
    sr = config.model.sample_rate
    world = WorldSettings.from_config(config.model) if model.kind == "vocoder" else None
    phone_hop = hop if config.model.phone_loss > 0 else 0
    train_data, valid_data = (
        SegmentDataset.from_data_dir(split, speakers, cfg.segment_samples, sr, cfg.seed, show_progress, cache,
                                     config.model.input_level_db, world, config.perturb if train else None,
                                     phone_hop if train else 0)
        if split is not None else None for split, train in ((splits.train, True), (splits.dev, False)))
    if aux:
        train_data.set_share(np.isin(train_data.speaker_index, aux), cfg.aux_share)
    if world is not None:  # normalisation and per-speaker log-F0 statistics of the training features
        feats = train_data.features
        model.decoder.set_statistics(feats.values, feats.frames, train_data.speaker_index)
    info = read_speaker_info(splits.speakers_tsv, speakers)
    return VQVAETask(model, config, speakers, info, train_data, valid_data or train_data)


def _aux_speakers(speakers: list[str], pattern: str, share: float) -> list[int]:
    """Indices of the speakers matching `pattern` (train.aux_speakers), drawn in a fixed `share` of the windows;
    refused unless they are some but not all of them and 0 < share < 1."""
    aux = [i for i, s in enumerate(speakers) if pattern and fnmatch.fnmatchcase(s, pattern)]
    if not aux or len(aux) == len(speakers) or not 0 < share < 1:
        raise ConfigError(f"train.aux_share {share} needs 0 < share < 1 and train.aux_speakers ({pattern!r}) to "
                          f"match some but not all of the {len(speakers)} training speakers")
    return aux


def train_vqvae(data_dir: str | os.PathLike, exp_dir: str | os.PathLike, config: Config, *, force: bool = False,
                device: str | torch.device | None = None, on_step: Callable[[int, dict], None] | None = None,
                show_progress: bool | None = None) -> TrainResult:
    """`vqaudio train`: the VQ-VAE on DATA_DIR's train split, validated on dev, in EXP_DIR (resuming).

    With `perturb.decoded_from` > 0 in two phases: to that fraction of the run with the WORLD speaker copies, then
    with copies the model makes itself (`vqaudio.training.decoded`)."""
    exp_dir = Path(exp_dir)
    task = vqvae_task(data_dir, config, show_progress, cache=exp_dir / "cache")
    result = _train_phases(task, config, exp_dir, dict(force=force, device=device, on_step=on_step,
                                                       show_progress=show_progress))
    ended = result.stop_reason in ("max_steps", "max_minutes") and result.model_path is not None
    if ended and task.model.kind == "vocoder" and int(os.environ.get("RANK", "0")) == 0:
        if POSTFILTER_KEY not in load_model(result.model_path).extra:  # a finished run re-run: recorded already
            try:
                calibrate_model_file(result.model_path, resolve_data_dir(data_dir).train)
            except DataError:  # a decoder that voices almost nothing yet (a few steps): the utterance's scale
                pass
    return result


def _train_phases(task: VQVAETask, config: Config, exp_dir: Path, run: dict[str, Any]) -> TrainResult:
    """`train` in one phase, or two with `perturb.decoded_from` (see `train_vqvae`)."""
    decoded_from = config.perturb.decoded_from
    if decoded_from <= 0:
        return train(task, config, exp_dir, **run)
    if latest_checkpoint(exp_dir) is None:  # a fresh run: copies left in cache/ are another run's
        discard_decoded_copies(exp_dir / "cache")
    env = init_distributed(run["device"])  # under torchrun: one group for both phases (joined here, not per call)
    try:
        first = train(task, config, exp_dir, pause_at=decoded_from, **run)
        if first.stop_reason != "paused":  # interrupted, or the whole run was done already
            return first
        task.train_data.perturbation.copies = decoded_copies(
            exp_dir / task.export_name, exp_dir / "cache", task.train_data, config.perturb.copies, config.train.seed,
            first.step, main=env.main, show_progress=run["show_progress"], device=env.device)
        return train(task, config, exp_dir, **run)
    finally:
        if env.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def calibrate_model_file(model_path: str | os.PathLike, train_dir: str | os.PathLike,
                         per_speaker: int = CALIBRATION_UTTERANCES, gv_strength: float | None = None
                         ) -> dict[str, int]:
    """Record the postfilter's reference (`vqaudio.inference.vocode.calibrate_postfilter`) in the vocoder-kind model
    file at `model_path`, from up to `per_speaker` utterances of each of its trained voices in the data folder
    `train_dir` (evenly spaced in its order), and set its `vocoder.gv_strength` when `gv_strength` is given; the file
    is rewritten atomically, its weights and identity untouched. Enrolled voices are left on the utterance's scale;
    voices the folder lacks keep what they had. Returns the utterances used per voice.

    Raises DataError, the file untouched, when no utterance of the model's voices could be measured (none in the
    folder, or none decoded with enough voiced frames)."""
    from vqaudio.audio import load_audio
    from vqaudio.inference.codec import encode
    from vqaudio.inference.vocode import calibrate_postfilter

    loaded = load_model(model_path)
    if loaded.model.kind != "vocoder":
        raise ConfigError(f"{model_path}: the postfilter belongs to the vocoder decoder kind, not {loaded.model.kind}")
    check_decoding(None, gv_strength)
    data, hop = DataDir.load(train_dir), loaded.hop_length
    spk2utt, codes, speakers = data.spk2utt(), [], []
    enrolled = set(loaded.extra.get("enrolled") or {})
    for index, speaker in enumerate(loaded.speakers):
        if speaker in enrolled:
            continue
        for utt in pick(spk2utt.get(speaker, []), per_speaker):
            wav = load_audio(data.wav_scp[utt], loaded.sample_rate)
            if len(wav) >= hop:
                codes.append(encode(loaded, wav[: len(wav) // hop * hop]))
                speakers.append(index)
    used = calibrate_postfilter(loaded, codes, speakers)
    if not used:
        raise DataError(f"{train_dir}: no utterance of the model's voices decoded with enough voiced frames to "
                        "measure; the model file is unchanged")
    if gv_strength is not None:
        loaded.config.vocoder.gv_strength = gv_strength
    update_model_file(model_path, loaded.extra, loaded.config if gv_strength is not None else None, loaded.identity)
    return used
