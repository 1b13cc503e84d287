"""DistributedDataParallel on two CPU processes (Gloo): replicas end identical, only rank 0 writes files."""

from __future__ import annotations

import json
import socket

import torch
import torch.multiprocessing as mp
from helpers import ddp_worker
from helpers.train_fixtures import make_data_root, quick_config

from vqaudio.models import build_vqvae


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_ranks_train_in_sync(tmp_path):
    data = make_data_root(tmp_path / "data", utts=2, seconds=0.3)
    exp = tmp_path / "exp"
    overrides = ["train.max_steps=4", "train.checkpoint_every=2"]
    mp.spawn(ddp_worker.run, args=(2, free_port(), str(data), str(exp), str(tmp_path), overrides), nprocs=2,
             join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["step"] == r1["step"] == 4
    assert not torch.equal(r0["first_batch"], r1["first_batch"])  # each rank its own data stream
    assert r0["state"].keys() == r1["state"].keys()
    for name, t in r0["state"].items():  # parameters, codebook, EMA and usage buffers
        assert torch.equal(t, r1["state"][name]), name
    torch.manual_seed(0)
    initial = build_vqvae(quick_config().model, 2).state_dict()
    assert not torch.equal(initial["quantizer.codebook"], r0["state"]["quantizer.codebook"])
    assert not torch.equal(initial["decoder.wavenet.out2.weight"], r0["state"]["decoder.wavenet.out2.weight"])
    # Only rank 0 wrote: one start record, the model file, checkpoints.
    log = [json.loads(line) for line in (exp / "log.jsonl").read_text().splitlines()]
    starts = [r for r in log if r["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4]
    assert r0["model_path"] == str(exp / "model.pt") and r1["model_path"] == "None"
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]


def test_two_cpu_ranks_train_both_phases_of_decoded_copies(tmp_path):
    """Rank 0 makes the decoded copies at the pause, rank 1 waits for them; both train the second phase to the end."""
    data = make_data_root(tmp_path / "data", utts=2, seconds=0.3)
    exp = tmp_path / "exp"
    overrides = ["train.max_steps=4", "train.checkpoint_every=2", "perturb.speaker=1.0", "perturb.copies=2",
                 "perturb.decoded_from=0.5"]
    mp.spawn(ddp_worker.run_vqvae, args=(2, free_port(), str(data), str(exp), str(tmp_path), overrides), nprocs=2,
             join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["step"], r0["reason"]) == (r1["step"], r1["reason"]) == (4, "max_steps")
    assert json.loads((exp / "cache" / "decoded-copies.json").read_text())["step"] == 2
    log = [json.loads(line) for line in (exp / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "start"] == [0, 2]
    assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4]
