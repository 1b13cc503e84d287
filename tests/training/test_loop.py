"""The training loop: learning, exact resume, checkpoints, refusals, and `vqaudio train` end to end."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.train_fixtures import make_data_root, quick_config
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.config import load_config
from vqaudio.data.kaldi import DataDir
from vqaudio.errors import ConfigError, ModelFileError
from vqaudio.models.io import load_model, update_model_file
from vqaudio.training import checkpoint as ckpt
from vqaudio.training.loop import lr_at
from vqaudio.training.vqvae import train_vqvae

LOSS_KEYS = ("loss", "recon", "spectral_l1", "lf0_l1", "vq_loss", "commitment", "perplexity", "grad_norm", "lr",
             "codes_used")  # the quick preset's vocoder decoder


class Crash(Exception):
    """Stands in for the process dying between checkpoints."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data_root(tmp_path_factory.mktemp("train") / "data")


def records(exp: Path, kind: str = "train") -> list[dict]:
    lines = (exp / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def losses(exp: Path) -> list[tuple]:
    return [(r["step"], *(r[k] for k in LOSS_KEYS)) for r in records(exp)]


def test_lr_warms_up_then_decays_to_lr_min():
    cfg = load_config("quick", ["train.lr=1e-3", "train.lr_min=1e-5", "train.warmup_steps=10", "train.max_steps=110"])
    lrs = [lr_at(s, cfg.train) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2) and lrs[110] == pytest.approx(1e-5)


def test_training_drives_the_loss_down(tmp_path):
    """One speaker, one periodic utterance: the decoder learns to predict it well within 120 steps (~3 s)."""
    t = np.arange(8000) / 16000
    wav = 0.5 * np.sin(2 * np.pi * 250 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(tmp_path / "a.wav", wav.astype(np.float32), 16000)
    DataDir(tmp_path / "d", {"s1_001": str(tmp_path / "a.wav")}, {"s1_001": "s1"}).save()
    cfg = quick_config("train.max_steps=120", "train.lr=3e-2", "train.warmup_steps=10", "train.log_every=20",
                       "model.decoder.kind=wavenet", "model.decoder.kernel_size=2")
    result = train_vqvae(tmp_path / "d", tmp_path / "exp", cfg, show_progress=False)
    nll = [r["nll"] for r in records(tmp_path / "exp")]
    assert nll[0] > 4.5  # ln 256 = 5.55 at the start
    assert result.train["nll"] < 2.5 and result.valid["nll"] < 2.5, nll


def test_vocoder_training_drives_the_feature_loss_down(tmp_path):
    """The frame-level decoder fits the WORLD features of one short utterance within 150 steps."""
    t = np.arange(8000) / 16000
    f0 = 150 + 50 * np.sin(2 * np.pi * 2 * t)
    wav = 0.4 * np.sin(2 * np.pi * np.cumsum(f0) / 16000) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(tmp_path / "a.wav", wav.astype(np.float32), 16000)
    DataDir(tmp_path / "d", {"s1_001": str(tmp_path / "a.wav")}, {"s1_001": "s1"}).save()
    cfg = quick_config("train.max_steps=150", "train.lr=3e-3", "train.warmup_steps=10", "train.log_every=10",
                       "train.segment_samples=2048")
    result = train_vqvae(tmp_path / "d", tmp_path / "exp", cfg, show_progress=False)
    recon = [r["recon"] for r in records(tmp_path / "exp")]
    assert all(np.isfinite(recon)) and result.train["recon"] < 0.5 * recon[0], recon


def test_resume_after_a_crash_continues_the_same_run(tmp_path, data):
    cfg = quick_config("train.max_steps=8", "train.checkpoint_every=4")
    whole = train_vqvae(data, tmp_path / "whole", cfg, show_progress=False)

    def crash(step: int, record: dict) -> None:
        if step == 6:
            raise Crash

    with pytest.raises(Crash):
        train_vqvae(data, tmp_path / "split", cfg, on_step=crash, show_progress=False)
    assert [r["step"] for r in records(tmp_path / "split")][-1] == 6
    resumed = train_vqvae(data, tmp_path / "split", cfg, show_progress=False)
    assert resumed.resumed_from == 4 and resumed.step == whole.step == 8
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")  # steps 5, 6 were dropped and redone
    assert records(tmp_path / "split", "valid") == records(tmp_path / "whole", "valid")
    a, b = torch.load(whole.checkpoint, weights_only=True), torch.load(resumed.checkpoint, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_ctrl_c_saves_a_checkpoint_and_resumes_exactly(tmp_path, data):
    cfg = quick_config("train.max_steps=6", "train.checkpoint_every=100")
    train_vqvae(data, tmp_path / "whole", cfg, show_progress=False)

    def interrupt(step: int, record: dict) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; the loop finishes the step and saves

    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    first = train_vqvae(data, tmp_path / "split", cfg, on_step=interrupt, show_progress=False)
    assert (first.stop_reason, first.step) == ("interrupted", 3)
    assert ckpt.latest_checkpoint(tmp_path / "split").name == "step_0000003.pt"
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored
    second = train_vqvae(data, tmp_path / "split", cfg, show_progress=False)
    assert (second.stop_reason, second.resumed_from, second.step) == ("max_steps", 3, 6)
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")


def test_checkpoints_rotate_and_model_is_exported(tmp_path, data):
    cfg = quick_config("train.max_steps=7", "train.checkpoint_every=2", "train.keep_checkpoints=2")
    result = train_vqvae(data, tmp_path / "exp", cfg, show_progress=False)
    names = sorted(p.name for p in (tmp_path / "exp" / "checkpoints").iterdir())
    assert names == ["step_0000006.pt", "step_0000007.pt"]
    loaded = load_model(tmp_path / "exp" / "model.pt")
    assert loaded.speakers == ["p225", "p226"] and loaded.speaker_info["p226"] == "F  test speaker p226"
    assert loaded.extra["step"] == 7 and loaded.config == cfg.model
    state = ckpt.load_checkpoint(result.checkpoint)["model"]
    assert all(torch.equal(state[k], v) for k, v in loaded.model.state_dict().items())
    reference = loaded.extra["postfilter"]  # recorded when the run ended: each voice's decoded GV
    assert set(reference["decoded_gv"]) == {"p225", "p226"} and min(reference["utterances"].values()) >= 1
    assert all(np.isfinite(v).all() and min(v) > 0 for v in reference["decoded_gv"].values())
    again = train_vqvae(data, tmp_path / "exp", cfg, show_progress=False)  # finished: nothing more to do
    assert again.step == 7 and len(records(tmp_path / "exp")) == 7 and len(records(tmp_path / "exp", "valid")) == 1
    assert again.train == result.train and again.valid == result.valid  # read back from the log


def test_an_interrupted_run_records_no_postfilter_reference_and_calibrate_adds_it(tmp_path, data):
    """Ctrl-C: the model file is the last checkpoint's export, without the reference (the postfilter then measures
    each utterance); `vqaudio calibrate` records it afterwards, weights and identity untouched; bad input: one line."""
    def interrupt(step: int, record: dict) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop finishes the step, saves and stops

    exp = tmp_path / "exp"
    result = train_vqvae(data, exp, quick_config("train.max_steps=9", "train.checkpoint_every=3"),
                         on_step=interrupt, show_progress=False)
    assert result.stop_reason == "interrupted" and "postfilter" not in load_model(exp / "model.pt").extra
    before = load_model(exp / "model.pt")
    runner = CliRunner()
    done = runner.invoke(app, ["calibrate", str(exp / "model.pt"), str(data), "--per-speaker", "2",
                               "--gv-strength", "0.25"])
    assert done.exit_code == 0, done.output
    assert "postfilter reference of 2 voices from 4 utterances" in done.output
    after = load_model(exp / "model.pt")
    assert after.identity == before.identity and after.extra["step"] == before.extra["step"]
    assert after.extra["postfilter"]["utterances"] == {"p225": 2, "p226": 2}
    assert after.config.vocoder.gv_strength == 0.25 and before.config.vocoder.gv_strength != 0.25
    others = make_data_root(tmp_path / "others", speakers=("p300",), dev=False)  # none of the model's voices
    for args, message in (([str(tmp_path / "none.pt"), str(data)], "no such file"),
                          ([str(exp / "model.pt"), str(tmp_path / "nowhere")], "no such data directory"),
                          ([str(exp / "model.pt"), str(data), "--gv-strength", "2"], "must be in [0, 1]"),
                          ([str(exp / "model.pt"), str(others)], "no utterance of the model's voices")):
        written = (exp / "model.pt").read_bytes()
        bad = runner.invoke(app, ["calibrate", *args])
        assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1 and message in bad.output
        assert (exp / "model.pt").read_bytes() == written  # refused before anything was written
    with pytest.raises(ModelFileError, match="weights changed"):  # measured on weights the file no longer holds
        update_model_file(exp / "model.pt", after.extra, identity="0" * 16)


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, data, monkeypatch):
    cfg = quick_config("train.max_steps=4", "train.checkpoint_every=2")

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    def fail_at_4(step: int, record: dict) -> None:
        if step == 3:
            monkeypatch.setattr(torch, "save", failing_save)

    with pytest.raises(OSError, match="disk full"):
        train_vqvae(data, tmp_path / "exp", cfg, on_step=fail_at_4, show_progress=False)
    monkeypatch.undo()
    files = sorted(p.name for p in (tmp_path / "exp" / "checkpoints").iterdir())
    assert files == ["step_0000002.pt"]  # no temporary left behind, the previous checkpoint untouched
    assert ckpt.load_checkpoint(tmp_path / "exp" / "checkpoints" / files[0])["step"] == 2


class Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_tampered_checkpoint_is_refused(tmp_path, data):
    cfg = quick_config("train.max_steps=2")
    result = train_vqvae(data, tmp_path / "exp", cfg, show_progress=False)
    state = torch.load(result.checkpoint, weights_only=True)
    state["rng"] = Marker(str(tmp_path / "pwned"))
    result.checkpoint.write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(ModelFileError, match="step_0000002.pt: holds pickled Python objects"):
        train_vqvae(data, tmp_path / "exp", quick_config("train.max_steps=4"), show_progress=False)
    assert not (tmp_path / "pwned").exists()


def test_resume_with_another_config_is_refused_unless_forced(tmp_path, data):
    train_vqvae(data, tmp_path / "exp", quick_config("train.max_steps=2"), show_progress=False)
    changed = quick_config("train.max_steps=3", "train.lr=1e-2", "model.vq.beta=0.5")
    with pytest.raises(ConfigError, match=r"model.vq.beta \(0.25 -> 0.5\), train.lr \(0.002 -> 0.01\)"):
        train_vqvae(data, tmp_path / "exp", changed, show_progress=False)
    longer = train_vqvae(data, tmp_path / "exp", quick_config("train.max_steps=3"), show_progress=False)
    assert (longer.resumed_from, longer.step) == (2, 3)  # max_steps may change
    forced = train_vqvae(data, tmp_path / "exp", quick_config("train.max_steps=4", "train.lr=1e-2"), force=True,
                         show_progress=False)
    assert forced.step == 4 and "lr: 0.01" in (tmp_path / "exp" / "config.yaml").read_text()


def test_cli_train_and_bad_data_dir(tmp_path, data):
    runner = CliRunner()
    args = ["train", str(data), str(tmp_path / "exp"), "--config", "quick", "--set", "train.threads=1",
            "--set", "train.segment_samples=512", "--set", "train.batch_size=2", "--max-steps", "3", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step 3 (max_steps)" in result.output and (tmp_path / "exp" / "model.pt").exists()
    assert (tmp_path / "exp" / "config.yaml").exists() and [r["step"] for r in records(tmp_path / "exp")] == [3]
    bad = runner.invoke(app, ["train", str(tmp_path / "nowhere"), str(tmp_path / "exp2"), "--config", "quick"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: no such data directory"]
    unknown = runner.invoke(app, ["train", str(data), str(tmp_path / "exp3"), "-c", "quick", "--set", "train.nope=1"])
    assert unknown.exit_code == 1 and "unknown key" in unknown.output


def wait_for(predicate, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_real_ctrl_c_and_sigkill_of_the_command(tmp_path, data):
    """The console command under real signals: SIGINT exits 130 with a checkpoint; SIGKILL loses nothing saved."""
    import subprocess

    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "vqaudio", "train", str(data), str(exp), "-c", "quick", "--set", "train.threads=1",
           "--set", "train.checkpoint_every=3", "--set", "train.max_minutes=0", "--max-steps", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: latest_step(exp) >= 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "re-run the same command to resume" in err
    interrupted_at = ckpt.load_checkpoint(ckpt.latest_checkpoint(exp))["step"]
    assert interrupted_at == records(exp)[-1]["step"]  # saved where it stopped, not at the last multiple of 3

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: latest_step(exp) >= interrupted_at + 6)
    proc.kill()  # SIGKILL, possibly in the middle of writing a checkpoint
    proc.communicate(timeout=60)
    latest = ckpt.load_checkpoint(ckpt.latest_checkpoint(exp))["step"]
    assert latest >= interrupted_at + 6
    resumed = train_vqvae(data, exp, quick_config("train.max_steps=100000", "train.checkpoint_every=3",
                                                  "train.log_every=5", "train.segment_samples=1024",
                                                  "train.batch_size=4"), on_step=_stop_now, show_progress=False)
    assert resumed.resumed_from == latest and resumed.step == latest + 1
    assert [r["step"] for r in records(exp, "start")] == [0, interrupted_at, latest]


def latest_step(exp: Path) -> int:
    path = ckpt.latest_checkpoint(exp)
    try:
        return ckpt.load_checkpoint(path)["step"] if path is not None else -1
    except ModelFileError:  # listed, then rotated away before it was read
        return -1


def _stop_now(step: int, record: dict) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_truncate_log_drops_later_and_torn_records(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"kind": "train", "step": 1, "loss": 3}\n{"kind": "valid", "step": 2, "loss": 2}\n'
                   '{"kind": "train", "step": 2, "loss": 1}\n{"kind": "train", "step": 3, "loss": 0}\n{"kind": "tr')
    last_train, last_valid = ckpt.truncate_log(log, 2)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 2]
    assert last_train == {"kind": "train", "step": 2, "loss": 1} and last_valid["loss"] == 2


def test_last_records_reads_without_changing_the_log(tmp_path):
    log = tmp_path / "log.jsonl"
    text = '{"kind": "valid", "step": 2, "loss": 2}\n{"kind": "train", "step": 3, "loss": 0}\n{"kind": "tr'
    log.write_text(text)
    assert ckpt.last_records(log) == ({"kind": "train", "step": 3, "loss": 0}, {"kind": "valid", "step": 2, "loss": 2})
    assert log.read_text() == text
    assert ckpt.last_records(tmp_path / "none.jsonl") == ({}, {})


@pytest.mark.gpu
def test_cuda_bf16_training_and_cpu_loading(tmp_path, data):
    """On a GPU: bf16 autocast steps stay finite, and the exported model loads on a CPU-only reader."""
    cfg = quick_config("train.max_steps=4", "train.amp=true")
    result = train_vqvae(data, tmp_path / "exp", cfg, show_progress=False)
    start = records(tmp_path / "exp", "start")[0]
    assert start["device"].startswith("cuda")
    assert all(np.isfinite(r["loss"]) for r in records(tmp_path / "exp"))
    assert result.valid and np.isfinite(result.valid["nll"])
    assert next(load_model(tmp_path / "exp" / "model.pt").model.parameters()).device.type == "cpu"


def test_a_run_from_before_a_config_section_existed_still_resumes() -> None:
    """An older config.yaml has no `perturb` section: it counts as that section's defaults, not as a change."""
    from vqaudio.config import Config, to_dict

    new = to_dict(Config())
    old = {k: v for k, v in new.items() if k != "perturb"}
    assert ckpt.config_differences(old, new, ("model", "train", "perturb"), "train") == []
    changed = to_dict(Config())
    changed["perturb"]["speaker"] = 0.5
    assert ckpt.config_differences(old, changed, ("model", "train", "perturb"), "train") == ["perturb.speaker"]


def test_a_run_from_before_a_config_key_existed_still_resumes() -> None:
    """An older config.yaml lacks `model.vocoder.gv_strength`: the key counts as its default; and the keys only
    decoding reads (F0 mode, postfilter strength) may change between a run and its resumption."""
    from vqaudio.config import Config, to_dict

    new = to_dict(Config())
    old = to_dict(Config())
    del old["model"]["vocoder"]["gv_strength"]
    assert ckpt.config_differences(old, new, ("model", "train"), "train") == []
    new["model"]["vocoder"].update(gv_strength=0.5, f0_mode="normalized")
    assert ckpt.config_differences(old, new, ("model", "train"), "train") == []
    new["model"]["vocoder"]["spectral_dims"] = 24
    assert ckpt.config_differences(old, new, ("model", "train"), "train") == ["model.vocoder.spectral_dims"]


def test_training_with_the_phone_head_logs_it_and_exports_a_model_without_it(tmp_path):
    """model.phone_loss trains on the train split's phone_ali (the dev split needs none) and logs the head's
    cross-entropy and accuracy; the exported model file has no head and encodes; no labels: one line, no traceback."""
    root = make_data_root(tmp_path / "data")
    data = DataDir.load(root / "train")
    data.phone_ali = {u: ["sil"] * 5 + ["AA"] * 30 + ["S"] * 30 for u in data.utterances}
    data.save()
    cfg = quick_config("train.max_steps=3", "model.phone_loss=1.0")
    result = train_vqvae(root, tmp_path / "exp", cfg, show_progress=False)
    rec = records(tmp_path / "exp")
    assert all(np.isfinite(r["phone_ce"]) and 0.0 <= r["phone_accuracy"] <= 1.0 for r in rec) and len(rec) == 3
    loaded = load_model(result.model_path)
    assert not hasattr(loaded.model, "phone_head") and loaded.config.phone_loss == 1.0
    bare = make_data_root(tmp_path / "bare")
    out = CliRunner().invoke(app, ["train", str(bare), str(tmp_path / "exp2"), "--config", "quick",
                                   "--set", "model.phone_loss=1.0", "--set", "train.max_steps=1"])
    assert out.exit_code != 0 and "no phone labels" in out.output and "Traceback" not in out.output
