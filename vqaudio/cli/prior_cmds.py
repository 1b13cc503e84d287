"""`vqaudio train-prior` and `vqaudio sample`: thin commands over `vqaudio.training.prior`, `inference.sampling`."""

from __future__ import annotations

from pathlib import Path

import typer

from vqaudio.cli.app import app, command, fail
from vqaudio.progress import console


@command(app, "train-prior")
def train_prior_cmd(
    data_dir: Path = typer.Argument(..., help="Prepared data root (DATA_DIR/{train,dev}) or one data dir."),
    exp_dir: Path = typer.Argument(..., help="Experiment folder: code cache, checkpoints, log, prior.pt."),
    model: Path = typer.Option(..., "--model", help="The trained VQ-VAE (EXP/model.pt) whose codes are modelled."),
    config: str = typer.Option("mini", "--config", "-c", help="Preset (mini, paper, paper_phoneme, quick) or YAML; "
                                                              "its prior and prior_train sections are used."),
    overrides: list[str] = typer.Option([], "--set", "-s", help="Config override key=value, e.g. prior_train.lr=1e-3."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Same as --set prior_train.max_steps=N."),
    force: bool = typer.Option(False, "--force", help="Resume even though the config differs from EXP_DIR's."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train the latent WaveNet prior over the VQ-VAE's codes. Re-running the same command resumes.

    The codes of the train and dev splits are extracted once per VQ-VAE and cached in EXP_DIR/codes/.
    Writes EXP_DIR/prior.pt and EXP_DIR/prior_scores.json. Under torchrun it trains with DDP.
    """
    from vqaudio.config import load_config
    from vqaudio.training.prior import train_prior

    extra = [f"prior_train.max_steps={max_steps}"] if max_steps is not None else []
    cfg = load_config(config, list(overrides) + extra)
    report = train_prior(data_dir, exp_dir, model, cfg, force=force, show_progress=False if quiet else None)
    if report is None:  # not rank 0 of a distributed run
        return
    s = report.scores
    console.print(f"step {report.step} ({report.stop_reason}); prior on {report.scored_on} "
                  f"({s.n_codes} codes, {s.codes_per_second:g} codes/s):", highlight=False)
    console.print(f"  prior NLL   {s.nll_bits:6.3f} bits/code  {s.bits_per_second:8.1f} bits/s\n"
                  f"  unigram     {s.unigram_bits:6.3f} bits/code  {s.unigram_bits * s.codes_per_second:8.1f} bits/s\n"
                  f"  raw codes   {s.log2_k:6.3f} bits/code  {s.log2_k * s.codes_per_second:8.1f} bits/s",
                  highlight=False)
    console.print(f"wrote {report.prior_path}", highlight=False)
    if report.stop_reason == "interrupted":
        fail(f"interrupted at step {report.step}; checkpoint written, re-run the same command to resume", 130)


@command(app, "sample")
def sample_cmd(
    out: Path = typer.Argument(..., help="Output audio file (.wav, .flac)."),
    speaker: str = typer.Option(..., "--speaker", help="Speaker id of the VQ-VAE to speak with, e.g. p225."),
    seconds: float = typer.Option(4.0, "--seconds", help="Length of the sample in seconds."),
    prior: Path | None = typer.Option(None, "--prior", help="Prior file [default: vqaudio/pretrained/prior.pt]."),
    model: Path | None = typer.Option(None, "--model", help="VQ-VAE the prior was trained for [default: the "
                                                            "codec's default model]."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature of the prior (<= 0: argmax)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed: the same seed gives the same sample "
                                                          "[default: a fresh random draw]."),
    codes_out: Path | None = typer.Option(None, "--codes-out", help="Also save the sampled codes (.npy, int64 [N])."),
) -> None:
    """Generate new speech: sample codes from the latent prior, decode them in a speaker's voice."""
    from vqaudio.audio import save_audio
    from vqaudio.fileio import atomic_path
    from vqaudio.inference.sampling import sample_speech

    result = sample_speech(prior, model, speaker, seconds, temperature, seed)
    save_audio(out, result.wav, result.sample_rate)
    if codes_out is not None:
        import numpy as np

        with atomic_path(codes_out, suffix=".npy") as tmp:
            np.save(tmp, result.codes)
    console.print(f"wrote {out} ({len(result.wav) / result.sample_rate:.2f} s, {len(result.codes)} codes)",
                  highlight=False)
