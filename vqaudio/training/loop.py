"""The one training loop of vqaudio (VQ-VAE now, the latent prior too): checkpoints, resume, DDP, AMP, logs.

What is specific to a model lives in a small *task* object (`Task` below): the model, where batches come
from, the loss and metrics of a batch, windowed status (codebook usage), and how to export the trained
model. `train(task, config, exp_dir)` does the rest, the same for every model:

- AdamW (Adam when weight_decay = 0), linear warm-up then cosine decay to `lr_min` at `max_steps`,
  gradient clipping; steps whose gradient is not finite are skipped (10 in a row stop the run).
- bf16 autocast on CUDA (`amp`); CPU or CUDA picked automatically; `threads` sets torch's CPU threads.
- `EXP_DIR/config.yaml` written on the first run; re-running resumes from the latest checkpoint and refuses
  a changed config (except `vqaudio.training.checkpoint.RESUMABLE_KEYS`) unless `force=True`. A resumed run is the
  same run: model, optimiser, step (the learning-rate schedule is a function of it), RNG states, and the
  task's data, drawn per step from (seed, rank, step). One process resumes to bit-identical losses; under
  DDP ranks other than 0 reseed from (seed, rank, step). `max_minutes` counts training time over all
  resumptions; a finished run re-run does nothing more. Raising `max_steps` stretches the cosine schedule.
  `pause_at` < 1 ends a call early, at that fraction of `max_steps` or of `max_minutes` (whichever comes first),
  the schedule unchanged: a first phase, after which a task can change its data and train on by calling again.
- `EXP_DIR/log.jsonl`: one JSON record per line (`kind`: start, train, valid); on resume records after the
  checkpoint's step are dropped, so the log always describes one run.
- Checkpoints every `checkpoint_every` steps and at the end (`vqaudio.training.checkpoint`), the exported model
  rewritten with each one. Ctrl-C or SIGTERM: the step in progress finishes, a checkpoint is written and the
  result says `stop_reason == "interrupted"` (a second Ctrl-C aborts at once; the last checkpoint stays good).
- Under `torchrun` (RANK / WORLD_SIZE set) it trains with DistributedDataParallel: NCCL on CUDA, Gloo on
  CPU, every rank on its own data stream, only rank 0 writes files.

Writing a task for another model: give it the attributes and methods of `Task` (see
`vqaudio.training.vqvae.VQVAETask` and `vqaudio.training.prior.PriorTask`), then `train(MyTask(...), cfg, exp_dir)`. Its
`train_section` names the `TrainConfig` to use (`"prior_train"`) and `config_sections` the config sections
a resumed run must match (`("prior", "prior_train")`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from vqaudio.config import Config, TrainConfig, to_dict
from vqaudio.errors import ConfigError, ModelFileError, VQAudioError
from vqaudio.progress import progress
from vqaudio.training import checkpoint as ckpt

MAX_SKIPPED_STEPS = 10


class TrainingDiverged(VQAudioError):
    """The loss or gradient stayed non-finite; the last checkpoint is intact."""


class Task(Protocol):
    """The model-specific part of training. Batches are whatever the task likes (moved to `device` by it)."""

    kind: str  # "vqvae", "prior": recorded in checkpoints, a resume must match it
    model: nn.Module  # the bare model (the loop wraps it in DDP when distributed)
    train_section: str  # the TrainConfig of `Config` to use: "train" or "prior_train"
    config_sections: tuple[str, ...]  # sections of `Config` a resumed run must match
    export_name: str  # file written into EXP_DIR with each checkpoint: "model.pt", "prior.pt"

    def train_batch(self, step: int, rank: int, device: torch.device) -> Any:
        """The batch of `step` on `rank`: a pure function of its arguments, so a resumed run sees the same data."""

    def valid_batches(self, device: torch.device) -> list[Any]:
        """Fixed validation batches, the same every call."""

    def losses(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss to minimise, named scalar metrics) of one batch; `model` may be the DDP wrapper."""

    def samples_in(self, batch: Any) -> int:
        """Size of a batch in the unit throughput is reported in (audio samples, codes)."""

    def status(self) -> dict[str, float]:
        """Windowed state read after a step (e.g. codebook perplexity and codes in use)."""

    def describe(self) -> dict[str, Any]:
        """Plain data that must not change on resume (e.g. the speaker list); stored in checkpoints."""

    def export(self, path: Path, extra: dict[str, Any]) -> None:
        """Write the trained model file (`extra`: step and losses to record in it)."""


@dataclass
class TrainResult:
    """What a call to `train` did."""

    step: int  # training steps done in total (this run and those it resumed)
    stop_reason: str  # "max_steps", "max_minutes", "interrupted" or "paused" (`pause_at`)
    resumed_from: int | None  # step of the checkpoint it resumed from, None for a fresh run
    train: dict[str, Any] = field(default_factory=dict)  # the last train record
    valid: dict[str, Any] = field(default_factory=dict)  # the last validation record ({} if none)
    checkpoint: Path | None = None
    model_path: Path | None = None


@dataclass
class Distributed:
    """This process's place in a (possibly one-process) run."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # True when `train` created the process group (and must destroy it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> Distributed:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; join the process group (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
        owns = True
    return Distributed(rank, world, device, owns)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of `step` (0-based): linear warm-up to `lr`, then cosine decay to `lr_min` at `max_steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    done = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * done))


class _StopRequest:
    """SIGINT / SIGTERM set a flag the loop checks after each step; a second signal acts as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    @contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


class _Meter:
    """Running sums of a logging interval's metrics (kept as tensors: no device sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.steps, self.samples, self.start = 0, 0, time.perf_counter()

    def add(self, metrics: dict[str, Tensor], samples: int) -> None:
        for k, v in metrics.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.steps += 1
        self.samples += samples

    def record(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        out = {k: float(v) / max(self.steps, 1) for k, v in self.sums.items()}
        out["samples_per_s"] = self.samples / seconds
        self.__init__()
        return out


class _Run:
    """State of one call to `train`: the loop and the writing of logs and checkpoints."""

    def __init__(self, task: Task, config: Config, exp_dir: Path, env: Distributed, show_progress: bool | None,
                 pause_at: float = 1.0):
        self.task, self.config, self.exp_dir, self.env, self.pause_at = task, config, exp_dir, env, pause_at
        self.cfg: TrainConfig = getattr(config, task.train_section)
        self.model = task.model.to(env.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr,
                                           weight_decay=self.cfg.weight_decay)
        self.step, self.elapsed_before, self.resumed_from = 0, 0.0, None
        self.show_progress = show_progress
        self.amp = self.cfg.amp and env.device.type == "cuda"
        self.last_train: dict[str, float] = {}
        self.last_valid: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.last_saved_step = -1

    # ------------------------------------------------------------------ resume and saving
    def resume(self) -> None:
        path = ckpt.latest_checkpoint(self.exp_dir)
        if path is None:
            torch.manual_seed(self.cfg.seed * 1000 + self.env.rank)
            return
        state = ckpt.load_checkpoint(path)
        if state.get("kind") != self.task.kind:
            raise ModelFileError(f"{path}: a {state.get('kind')} checkpoint, this run trains a {self.task.kind}")
        if state.get("task") != self.task.describe():
            raise ConfigError(f"{path}: the training data changed since this run started (e.g. its speakers); "
                              "use a new EXP_DIR")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ModelFileError(f"{path}: does not fit this model ({str(e).splitlines()[0][:160]})") from None
        self.step, self.elapsed_before, self.resumed_from = int(state["step"]), float(state["elapsed"]), state["step"]
        self.last_saved_step = self.step
        ckpt.restore_rng_state(state["rng"])
        if self.env.rank > 0:  # rank 0's RNG was saved; the others continue on their own streams
            torch.manual_seed(self.cfg.seed * 1000 + self.env.rank + 7919 * self.step)

    def save(self, elapsed: float) -> None:
        if not self.env.main or self.last_saved_step == self.step:
            return
        state = {"kind": self.task.kind, "task": self.task.describe(), "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "rng": ckpt.capture_rng_state(),
                 "config": to_dict(self.config), "elapsed": elapsed, "world_size": self.env.world_size}
        self.last_checkpoint = ckpt.save_checkpoint(self.exp_dir, self.step, state, self.cfg.keep_checkpoints)
        extra = {"step": self.step, "train": self.last_train, "valid": self.last_valid}
        self.task.export(self.exp_dir / self.task.export_name, extra)
        self.last_saved_step = self.step

    def log(self, record: dict[str, Any]) -> None:
        if self.env.main:
            with open(self.exp_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ one step, validation
    def train_step(self, model: nn.Module, meter: _Meter, skipped: int) -> int:
        """One optimiser step; returns the count of consecutive skipped (non-finite) steps."""
        batch = self.task.train_batch(self.step, self.env.rank, self.env.device)
        lr = lr_at(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, metrics = self.task.losses(model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.step += 1
        if not torch.isfinite(grad_norm):  # identical on every rank: gradients were all-reduced
            self.optimizer.zero_grad(set_to_none=True)
            if skipped + 1 >= MAX_SKIPPED_STEPS:
                raise TrainingDiverged(f"non-finite gradients for {MAX_SKIPPED_STEPS} steps in a row at step "
                                       f"{self.step}; lower train.lr (the last checkpoint is intact)")
            return skipped + 1
        self.optimizer.step()
        extra = {"grad_norm": grad_norm, "lr": torch.tensor(lr)}
        meter.add({"loss": loss, **metrics, **extra}, self.task.samples_in(batch) * self.env.world_size)
        return 0

    @torch.no_grad()
    def validate(self, batches: list[Any]) -> dict[str, float]:
        self.model.eval()
        meter = _Meter()
        try:
            for batch in batches:
                with torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss, metrics = self.task.losses(self.model, batch)
                meter.add({"loss": loss, **metrics}, 0)
        finally:
            self.model.train()
        record = meter.record()
        record.pop("samples_per_s")
        return record

    # ------------------------------------------------------------------ the loop
    def should_stop(self, stop: _StopRequest, elapsed: float) -> str | None:
        cfg, pause = self.cfg, self.pause_at
        out_of_time = cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60
        paused = pause < 1 and (self.step >= pause * cfg.max_steps
                                or (cfg.max_minutes > 0 and elapsed >= pause * cfg.max_minutes * 60))
        flags = torch.tensor([float(stop.requested), float(out_of_time), float(self.step >= cfg.max_steps),
                              float(paused)])
        if self.env.world_size > 1:  # every rank stops at the same step
            flags = flags.to(self.env.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        names = ("interrupted", "max_minutes", "max_steps", "paused")
        return next((n for n, f in zip(names, flags.tolist(), strict=True) if f > 0), None)

    def loop(self, model: nn.Module, on_step: Callable[[int, dict], None] | None) -> str:
        stop, meter, skipped = _StopRequest(), _Meter(), 0
        valid_batches = self.task.valid_batches(self.env.device) if self.env.main else []
        start = time.perf_counter()
        elapsed = lambda: self.elapsed_before + time.perf_counter() - start  # noqa: E731
        hidden = not self.env.main or self.show_progress is False
        with stop.installed(), progress(disable=True if hidden else None if self.show_progress is None else False
                                        ) as bar:
            task_id = bar.add_task(self.task.kind, total=self.cfg.max_steps, completed=self.step, info="")
            while (reason := self.should_stop(stop, elapsed())) is None:
                skipped = self.train_step(model, meter, skipped)
                self.after_step(meter, valid_batches, elapsed(), on_step)
                bar.update(task_id, completed=self.step, info=_info(self.last_train))
        if meter.steps:  # the steps since the last record
            self.log_train(meter, elapsed())
        if self.env.main and valid_batches and self.last_valid.get("step") != self.step:
            self.last_valid = {"kind": "valid", "step": self.step, **self.validate(valid_batches)}
            self.log(self.last_valid)
        self.save(elapsed())
        return reason

    def log_train(self, meter: _Meter, elapsed: float) -> dict[str, Any]:
        record = {"kind": "train", "step": self.step, **meter.record(), **self.task.status(), "elapsed_s": elapsed}
        self.last_train = record
        self.log(record)
        return record

    def after_step(self, meter: _Meter, valid_batches: list[Any], elapsed: float,
                   on_step: Callable[[int, dict], None] | None) -> None:
        cfg, step = self.cfg, self.step
        record = self.log_train(meter, elapsed) if step % cfg.log_every == 0 and meter.steps else {}
        if valid_batches and step % cfg.valid_every == 0:
            self.last_valid = {"kind": "valid", "step": step, **self.validate(valid_batches)}
            self.log(self.last_valid)
        if step % cfg.checkpoint_every == 0:
            self.save(elapsed)
        if on_step is not None:
            on_step(step, record)


def _info(rec: dict[str, float]) -> str:
    if not rec:
        return ""
    parts = [f"loss {rec['loss']:.3f}"]
    parts += [f"{k} {rec[k]:.3f}" for k in ("nll", "recon", "vq_loss") if k in rec]
    if "usage_perplexity" in rec:
        parts.append(f"ppl {rec['usage_perplexity']:.0f} used {100 * rec.get('codes_used', 0):.0f}%")
    parts.append(f"{rec['samples_per_s']:.0f} samples/s")
    return "  ".join(parts)


def train(task: Task, config: Config, exp_dir: str | os.PathLike, *, force: bool = False,
          device: str | torch.device | None = None, on_step: Callable[[int, dict], None] | None = None,
          show_progress: bool | None = None, pause_at: float = 1.0) -> TrainResult:
    """Train `task.model` in `exp_dir` until `max_steps`, `max_minutes` or Ctrl-C, resuming if it can; with
    `pause_at` < 1, only until that fraction of either (the first phase of a task that changes its data).

    `on_step(step, record)` is called after every step (record: the train log record, or {} on steps
    that log nothing); tests use it to interrupt a run. See the module docstring for the files written.
    """
    env = init_distributed(device)
    exp_dir = Path(exp_dir)
    try:
        cfg: TrainConfig = getattr(config, task.train_section)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if env.main:
            ckpt.write_exp_config(exp_dir, config, task.config_sections, task.train_section, force)
            ckpt.remove_stale_temporaries(exp_dir)
        if env.world_size > 1:
            dist.barrier()
        run = _Run(task, config, exp_dir, env, show_progress, pause_at)
        run.resume()
        if env.main:
            run.last_train, run.last_valid = ckpt.truncate_log(exp_dir / "log.jsonl", run.step)
        run.log({"kind": "start", "step": run.step, "resumed": run.resumed_from is not None,
                 "world_size": env.world_size, "device": str(env.device), "threads": torch.get_num_threads()})
        model: nn.Module = run.model
        if env.world_size > 1:
            ids = [env.device.index] if env.device.type == "cuda" else None
            if env.device.type == "cuda":  # batch norm over the global batch (no CPU kernel for it)
                run.model = nn.SyncBatchNorm.convert_sync_batchnorm(run.model)
            model = nn.parallel.DistributedDataParallel(run.model, device_ids=ids)
        reason = run.loop(model, on_step)
        if env.world_size > 1:  # DDP gives every forward rank 0's buffers; leave every rank with them too
            for buffer in run.model.buffers():
                dist.broadcast(buffer, src=0)
        return TrainResult(run.step, reason, run.resumed_from, run.last_train, run.last_valid, run.last_checkpoint,
                           exp_dir / task.export_name if env.main else None)
    finally:
        if env.owns_group and dist.is_initialized():
            dist.destroy_process_group()
