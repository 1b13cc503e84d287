"""`vqaudio train` (the VQ-VAE), `vqaudio calibrate` (the postfilter's reference) and `vqaudio export` (a model file
in fp16): thin calls into vqaudio.training.vqvae and vqaudio.models.io."""

from __future__ import annotations

from pathlib import Path

import typer

from vqaudio.cli.app import app, command, fail
from vqaudio.cli.codec_cmds import warn


@command(app, "train")
def train_command(
    data_dir: Path = typer.Argument(..., help="Folder from `vqaudio data prepare` (train/, dev/, speakers.tsv), "
                                    "or a single data dir (then validation windows come from it too)."),
    exp_dir: Path = typer.Argument(..., help="Experiment folder: config.yaml, log.jsonl, checkpoints/, model.pt."),
    config: str = typer.Option("mini", "--config", "-c", help="Preset (mini, paper, paper_phoneme, quick) or YAML."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Config override key=value, e.g. train.lr=1e-3."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Same as --set train.max_steps=N."),
    force: bool = typer.Option(False, "--force", help="Resume even though the config differs from EXP_DIR's."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the VQ-VAE. Re-running the same command resumes from the latest checkpoint.

    Under torchrun (e.g. `torchrun --nproc_per_node=4 -m vqaudio train ...`) it trains with DDP.
    Ctrl-C writes a checkpoint and exits with status 130.
    """
    from vqaudio.config import load_config
    from vqaudio.progress import console
    from vqaudio.training.vqvae import train_vqvae

    extra = [f"train.max_steps={max_steps}"] if max_steps is not None else []
    cfg = load_config(config, list(overrides) + extra)
    result = train_vqvae(data_dir, exp_dir, cfg, force=force, show_progress=False if quiet else None)
    if result.model_path is None:  # not rank 0 of a distributed run
        return
    losses = ", ".join(f"{k} {result.train[k]:.4f}" for k in ("loss", "nll", "recon") if k in result.train)
    valid = "".join(f"; valid {k} {result.valid[k]:.4f}" for k in ("nll", "recon") if k in result.valid)
    console.print(f"step {result.step} ({result.stop_reason}): {losses}{valid}; model {result.model_path}",
                  highlight=False, soft_wrap=True)
    if result.stop_reason == "max_minutes" and result.step < cfg.train.max_steps:  # the schedule is the steps'
        warn(f"train.max_minutes ({cfg.train.max_minutes:g}) stopped training at step {result.step} of "
             f"{cfg.train.max_steps}, before its learning-rate schedule ended: re-run with train.max_minutes raised "
             "(0: no limit) to finish it")
    if result.stop_reason == "interrupted":
        fail(f"interrupted at step {result.step}; checkpoint written, re-run the same command to resume", 130)


@command(app, "calibrate")
def calibrate_command(
    model: Path = typer.Argument(..., help="A vocoder-kind model file; rewritten in place (weights untouched)."),
    data_dir: Path = typer.Argument(..., help="Its training data: a folder with train/ or a data dir (wav.scp, "
                                    "utt2spk)."),
    per_speaker: int = typer.Option(16, "--per-speaker", min=1, help="Utterances decoded per voice."),
    gv_strength: float | None = typer.Option(None, "--gv-strength", help="Also set the model's postfilter strength "
                                             "0..1 (vocoder.gv_strength; default: keep it)."),
) -> None:
    """Record the postfilter's reference in a model file: the decoder's own envelope variance for each voice.

    Training does this when it ends; this is for model files written before it did (or a run stopped early).
    """
    from vqaudio.data.dataset import resolve_data_dir
    from vqaudio.progress import console
    from vqaudio.training.vqvae import calibrate_model_file

    used = calibrate_model_file(model, resolve_data_dir(data_dir).train, per_speaker, gv_strength)
    console.print(f"{model}: postfilter reference of {len(used)} voices from {sum(used.values())} utterances",
                  highlight=False)


@command(app, "export")
def export_command(
    model: Path = typer.Argument(..., help="A model file (EXP_DIR/model.pt)."),
    out: Path = typer.Argument(..., help="Where to write the copy."),
    half: bool = typer.Option(True, "--half/--full", help="Store fp16 weights (half the size; load back as fp32)."),
) -> None:
    """Copy a model file, by default with fp16 weights (for shipping; `encode`/`decode` read either)."""
    from vqaudio.fileio import refuse_same_path
    from vqaudio.models.io import export_model
    from vqaudio.progress import console

    refuse_same_path([model], out)
    identity = export_model(model, out, half=half)
    console.print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, identity {identity}", highlight=False)
