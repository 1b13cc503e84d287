"""`vqaudio probe` and `vqaudio evaluate`: thin wrappers over `vqaudio.evaluate.run`."""

from __future__ import annotations

from pathlib import Path

import typer

from vqaudio.cli import app, command


@command(app, "probe")
def probe(
    data_dir: Path = typer.Argument(..., help="Data folder with train and test splits holding phone_ali."),
    model: Path = typer.Option(..., "--model", "-m", help="VQ-VAE model file (model.pt)."),
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
