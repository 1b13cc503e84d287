"""`vqaudio probe`, `evaluate`, `evaluate-enrollment` and `evaluate-real`: thin wrappers over `vqaudio.evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer

from vqaudio.cli.app import app, command
from vqaudio.cli.codec_cmds import warn

MODEL_HELP = "VQ-VAE model file (default: $VQAUDIO_MODEL, else the model shipped in vqaudio/pretrained/vqvae.pt)."


@command(app, "probe")
def probe(
    data_dir: Path = typer.Argument(..., help="Data folder with train and test splits holding phone_ali."),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    split: list[str] = typer.Option(None, "--split", help="Evaluation split(s); default: test and test_unseen."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the figures as JSON here (and a confusion PNG beside)."),
    max_utts: int = typer.Option(0, "--max-utts", help="Use at most N utterances per split (0 = all)."),
    context: int = typer.Option(2, "--context", help="Code frames either side for the linear probe."),
    max_frames: int = typer.Option(20000, "--max-frames", help="Training frames for the linear probe (subsampled)."),
) -> None:
    """Phoneme probe: map each code to its most frequent training phone and score frame accuracy."""
    from vqaudio.evaluate import plots, report
    from vqaudio.evaluate.probe import probe_tables
    from vqaudio.evaluate.run import run_probe

    result = run_probe(data_dir, model, split or None, max_utts or None, context, max_frames)
    report.print_tables(probe_tables(result))
    if out is not None:
        report.write_json(out, result)
        first = result.splits[0]
        png = out.with_suffix(".confusion.png")
        plots.confusion_matrix(png, first.majority.confusion, f"Phone confusion, code→phone probe ({first.split})")
        typer.echo(f"wrote {out} and {png}")


@command(app, "evaluate")
def evaluate(
    data_dir: Path = typer.Argument(..., help="Data folder with train and test splits (test_unseen optional)."),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: eval/ beside --model, else ./eval)."),
    max_utts: int = typer.Option(10, "--max-utts", help="Test utterances to reconstruct and convert."),
    targets: str = typer.Option("", "--targets", help="Conversion targets, e.g. p225,p226 (default: spread)."),
    n_targets: int = typer.Option(2, "--n-targets", help="Number of targets when --targets is not given."),
    train_per_speaker: int = typer.Option(10, "--train-per-speaker",
                                          help="Train utterances per speaker for the probe and speaker id."),
    abx_utts: int = typer.Option(60, "--abx-utts", help="Test utterances for ABX and the probe."),
    abx_triplets: int = typer.Option(1000, "--abx-triplets", help="ABX triplets per condition."),
    temperature: float = typer.Option(1.0, "--temperature", help="Decoder sampling temperature."),
    seed: int = typer.Option(0, "--seed", help="Seed of decoding and of every subsample."),
    prior: Path = typer.Option(None, "--prior", help="Latent prior file, for the entropy-coded bitrate."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Run Codec2/Opus when installed."),
    plots: int = typer.Option(2, "--plots", help="Utterances with spectrograms and audio samples written."),
    f0: str | None = typer.Option(None, "--f0", help="Vocoder kind: conversions' F0 'predicted', 'normalized' or "
                                  "'mapped' (default: the model's)."),
    gv_strength: float | None = typer.Option(None, "--gv-strength", help="Vocoder kind: postfilter strength "
                                             "0..1 (default: the model's vocoder.gv_strength)."),
    gv_scale: str | None = typer.Option(None, "--gv-scale", help="Vocoder kind: postfilter scale from the "
                                        "'speaker' reference the model file records or the 'utterance' (default: "
                                        "the model's vocoder.gv_scale)."),
) -> None:
    """Codec quality, voice conversion, phoneme probe and ABX: results.json, results.md and plots."""
    from vqaudio.evaluate.report import print_tables
    from vqaudio.evaluate.run import EvaluateOptions, run_evaluate
    from vqaudio.evaluate.tables import evaluation_tables

    opts = EvaluateOptions(
        max_utts=max_utts, targets=[t.strip() for t in targets.split(",") if t.strip()] or None, n_targets=n_targets,
        train_per_speaker=train_per_speaker, abx_utts=abx_utts, abx_triplets=abx_triplets, temperature=temperature,
        seed=seed, prior=str(prior) if prior else None, baselines=baselines, plots=plots, f0=f0,
        gv_strength=gv_strength, gv_scale=gv_scale,
    )
    out_dir = out if out is not None else (model.parent / "eval" if model is not None else Path("eval"))
    results = run_evaluate(data_dir, model, out_dir, opts)
    print_tables(evaluation_tables(results))
    typer.echo(f"wrote {out_dir}/results.json, results.md and {len(results['figures'])} figures and samples")


@command(app, "evaluate-enrollment")
def evaluate_enrollment(
    data_dir: Path = typer.Argument(..., help="Data folder with train, test and test_unseen splits."),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    out: Path = typer.Option(Path("eval_enroll"), "--out", "-o", help="Output folder (enrolled.pt, results)."),
    n_enroll: int = typer.Option(10, "--n-enroll", help="Utterances of each held-out speaker used to enrol it."),
    max_utts: int = typer.Option(12, "--max-utts", help="Training speakers' test utterances converted to each voice."),
    steps: int = typer.Option(300, "--steps", help="Enrolment steps per voice."),
    seed: int = typer.Option(0, "--seed", help="Seed of enrolment and subsampling."),
) -> None:
    """Enrol every held-out (test_unseen) speaker from a few utterances and score conversions to them."""
    from vqaudio.evaluate.enrollment import run_enrollment_eval

    results = run_enrollment_eval(data_dir, model, out, n_enroll, max_utts, steps, seed=seed)
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}/results.json, results.md and {results['enrolled_model']}")


@command(app, "evaluate-real")
def evaluate_real(
    real_dir: Path = typer.Argument(..., help="Real recordings: REAL_DIR/<speaker>/<name>.wav with <name>.txt."),
    data_dir: Path = typer.Argument(..., help="The model's data folder (its voices' train utterances)."),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    out: Path = typer.Option(Path("eval_real"), "--out", "-o", help="Output folder (real.json, real.md)."),
    convert_per_speaker: int = typer.Option(8, "--convert-per-speaker",
                                            help="Real utterances per speaker reconstructed, converted, recognised."),
    id_per_speaker: int = typer.Option(30, "--id-per-speaker", help="Other real utterances per speaker, for the "
                                       "speaker-ID only."),
    targets: str = typer.Option("", "--targets", help="Model voices to convert to, e.g. p225,p226 (default: spread)."),
    n_targets: int = typer.Option(3, "--n-targets", help="Number of targets when --targets is not given."),
    seed: int = typer.Option(0, "--seed", help="Seed of decoding."),
    f0: str | None = typer.Option(None, "--f0", help="Vocoder kind: reconstructions' and conversions' F0 "
                                  "'predicted', 'normalized' or 'mapped' (default: the model's)."),
    gv_strength: float | None = typer.Option(None, "--gv-strength", help="Vocoder kind: postfilter strength "
                                             "0..1 (default: the model's vocoder.gv_strength)."),
    gv_scale: str | None = typer.Option(None, "--gv-scale", help="Vocoder kind: postfilter scale from the "
                                        "'speaker' reference the model file records or the 'utterance' (default: "
                                        "the model's vocoder.gv_scale)."),
    adapt_seconds: float = typer.Option(30.0, "--adapt-seconds", help="Also recognise with each speaker's own MLLR "
                                        "transform of PocketSphinx's model, from this much of its unscored speech "
                                        "(needs Debian's sphinxtrain, pocketsphinx, sphinxbase-utils; 0: off)."),
) -> None:
    """Real recordings in: conversions scored by speaker-ID, content by PocketSphinx word accuracy and the probe."""
    from vqaudio.evaluate.real import RealOptions, real_tables, run_real_evaluation
    from vqaudio.evaluate.report import print_tables

    opts = RealOptions(convert_per_speaker=convert_per_speaker, id_per_speaker=id_per_speaker,
                       targets=[t.strip() for t in targets.split(",") if t.strip()] or None, n_targets=n_targets,
                       seed=seed, f0=f0, gv_strength=gv_strength, gv_scale=gv_scale, adapt_seconds=adapt_seconds)
    results = run_real_evaluation(real_dir, data_dir, model, out, opts)
    adaptation = results["adaptation"]
    if adapt_seconds > 0 and "skipped" in adaptation:
        warn(f"speaker-adapted recognition skipped: {adaptation['skipped']}")
    for name, made in adaptation.get("speakers", {}).items():
        if "error" in made:
            warn(f"{name} heard unadapted: {made['error']}")
    print_tables(real_tables(results))
    typer.echo(f"wrote {out}/real.json and real.md")
