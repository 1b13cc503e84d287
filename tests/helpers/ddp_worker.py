"""One rank of the two-process DDP test (tests/training/test_ddp.py), started by torch.multiprocessing.spawn."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def run(rank: int, world_size: int, port: int, data: str, exp: str, out: str, overrides: list[str]) -> None:
    """Train the tiny VQ-VAE as `rank` of `world_size` (Gloo on CPU), then save this rank's final state."""
    from helpers.train_fixtures import quick_config

    from vqaudio.training.loop import train
    from vqaudio.training.vqvae import vqvae_task

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = quick_config(*overrides)
    task = vqvae_task(data, cfg, show_progress=False)
    result = train(task, cfg, exp, show_progress=False)
    torch.save({"state": task.model.state_dict(), "first_batch": task.train_batch(0, rank, torch.device("cpu")).wav,
                "step": result.step, "model_path": str(result.model_path)}, Path(out) / f"rank{rank}.pt")


def run_vqvae(rank: int, world_size: int, port: int, data: str, exp: str, out: str, overrides: list[str]) -> None:
    """The same through `train_vqvae` (the two phases of `perturb.decoded_from` included)."""
    from helpers.train_fixtures import quick_config

    from vqaudio.training.vqvae import train_vqvae

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train_vqvae(data, exp, quick_config(*overrides), show_progress=False)
    torch.save({"step": result.step, "reason": result.stop_reason}, Path(out) / f"rank{rank}.pt")
