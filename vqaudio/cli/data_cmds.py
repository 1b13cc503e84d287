"""`vqaudio data ...` commands: thin wrappers over `vqaudio.data`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vqaudio.cli.app import command, data_app


@command(data_app, "synth")
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the corpus into (created; must be empty)."),
    speakers: int = typer.Option(8, "--speakers", help="Number of speakers, the first N of a fixed diverse order."),
    utterances: int = typer.Option(40, "--utterances", help="Utterances per speaker."),
    shared: int = typer.Option(5, "--shared", help="Sentences read by every speaker (utterances 001..K)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sentence generator."),
    sample_rate: int = typer.Option(16000, "--sample-rate", help="Sample rate of the written audio in Hz."),
    force: bool = typer.Option(False, "--force", help="Replace an embedded corpus already in OUT_DIR."),
) -> None:
    """Build the embedded multi-speaker English corpus (eSpeak NG voices, VCTK 0.92 layout, with alignments)."""
    from vqaudio.data.synth import build_corpus
    from vqaudio.progress import console

    start = time.perf_counter()
    summary = build_corpus(out_dir, speakers=speakers, utterances=utterances, seed=seed, shared=shared,
                           sample_rate=sample_rate, force=force)
    console.print(f"{out_dir}: {summary.speakers} speakers, {summary.utterances} utterances, "
                  f"{summary.seconds / 60:.1f} min of audio in {time.perf_counter() - start:.1f} s",
                  highlight=False)


@command(data_app, "add-voices")
def add_voices_cmd(
    data_dir: Path = typer.Argument(..., help="Folder written by `vqaudio data prepare` (its train split has text)."),
    out_dir: Path = typer.Argument(..., help="New data dir: DATA_DIR's splits, train joined by the voices."),
    utterances: int = typer.Option(50, "--utterances", help="Sentences each voice reads (from DATA_DIR's train)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sentence draw."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier add-voices output in OUT_DIR."),
) -> None:
    """Add Festival/Flite voices built from human recordings as extra training speakers (h_*; Debian packages)."""
    from vqaudio.data.voices import add_voices
    from vqaudio.progress import console

    start = time.perf_counter()
    summary = add_voices(data_dir, out_dir, utterances=utterances, seed=seed, force=force)
    if summary.failed:
        console.print(f"[yellow]warning:[/] {len(summary.failed)} rendering(s) failed and were left out "
                      f"(e.g. {', '.join(summary.failed[:3])})", highlight=False)
    console.print(f"{out_dir}: {len(summary.voices)} voices ({', '.join(summary.voices)}), {summary.utterances} "
                  f"utterances, {summary.seconds / 60:.1f} min of audio in {time.perf_counter() - start:.1f} s",
                  highlight=False, soft_wrap=True)


@command(data_app, "features")
def features_cmd(
    data_dir: Path = typer.Argument(..., help="Folder written by `vqaudio data prepare`."),
    config: str = typer.Option("mini", "--config", "-c", help="Preset name or YAML file (its model.vocoder section)."),
    overrides: list[str] = typer.Option([], "--set", help="Config override key=value (repeatable)."),
    splits: list[str] = typer.Option(["train", "dev"], "--split", help="Splits to analyse (repeatable)."),
) -> None:
    """WORLD analysis of a data dir for the vocoder decoder, cached in DATA_DIR/<split>/world/ (both cores)."""
    from vqaudio.config import load_config
    from vqaudio.data.world import WorldSettings, analyze_data_dir
    from vqaudio.progress import console

    start = time.perf_counter()
    model_cfg = load_config(config, overrides).model
    if model_cfg.decoder.kind != "vocoder":
        console.print(f"{config}: decoder kind {model_cfg.decoder.kind} trains on audio alone; no features to compute",
                      highlight=False)
        return
    settings = WorldSettings.from_config(model_cfg)
    for split, (utts, seconds) in analyze_data_dir(data_dir, settings, tuple(splits)).items():
        console.print(f"{data_dir}/{split}: WORLD features of {utts} utterances ({seconds / 60:.1f} min of audio)",
                      highlight=False)
    console.print(f"done in {time.perf_counter() - start:.1f} s ({settings.f0_method}, "
                  f"{settings.frame_period_ms:g} ms frames)", highlight=False)
