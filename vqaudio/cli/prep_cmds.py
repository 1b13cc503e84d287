"""`vqaudio data prepare` and `vqaudio data align`: thin commands over vqaudio.data.prepare / align."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from vqaudio.cli.app import command, data_app
from vqaudio.progress import console


@command(data_app, "prepare")
def prepare_cmd(
    corpus_dir: Path = typer.Argument(..., help="VCTK-layout corpus, or one folder of audio per speaker."),
    data_dir: Path = typer.Argument(..., help="Output: DATA_DIR/{train,dev,test,test_unseen} and speakers.tsv."),
    alignments: Path | None = typer.Option(None, help="TextGrids (MFA layout <spk>/<utt>.TextGrid, or flat); "
                                                       "default CORPUS_DIR/alignments when present."),
    heldout_speakers: int | None = typer.Option(None, help="Speakers held out for test_unseen "
                                                           "(default: about 10%, at least 1 with 4+ speakers)."),
    dev_per_speaker: int = typer.Option(2, help="Dev utterances per training speaker."),
    test_per_speaker: int = typer.Option(3, help="Test utterances per training speaker, besides the shared sentences."),
    seed: int = typer.Option(0, help="Seed of the (deterministic) split."),
) -> None:
    """Turn a corpus into Kaldi-style data dirs with deterministic train/dev/test/test_unseen splits."""
    from vqaudio.data.prepare import prepare

    summary = prepare(corpus_dir, data_dir, alignments, heldout_speakers, dev_per_speaker, test_per_speaker, seed)
    for kind, count in sorted(summary.skipped.items()):
        console.print(f"[yellow]warning:[/] {kind}: {count} (e.g. {', '.join(summary.examples[kind])})",
                      highlight=False, soft_wrap=True)
    table = Table(title=f"{data_dir} ({summary.layout} layout)")
    for col in ("split", "speakers", "utterances", "hours"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, n in summary.utterances.items():
        table.add_row(split, str(summary.speakers[split]), str(n), f"{summary.hours[split]:.3f}")
    console.print(table)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items())) or "none"
    console.print(f"aligned: {summary.aligned:.1%}   shared sentences in test: {summary.shared_sentences}   "
                  f"problems: {skipped}", highlight=False)


@command(data_app, "align")
def align_cmd(
    data_dir: Path = typer.Argument(..., help="A data dir, or a DATA root holding train/dev/test/test_unseen."),
    out: Path | None = typer.Option(None, help="Where TextGrids go (<spk>/<utt>.TextGrid) "
                                               "(default: DATA_DIR/alignments)."),
) -> None:
    """Forced-align transcripts with PocketSphinx (US English) and fill phone_ali of the data dir(s)."""
    from vqaudio.data.align import align_data_dir

    s = align_data_dir(data_dir, out)
    if s.failed:
        console.print(f"[yellow]warning:[/] no alignment for {s.failed} utterance(s) (e.g. {', '.join(s.examples)})",
                      highlight=False)
    if s.oov:
        top = ", ".join(w for w, _ in s.oov.most_common(8))
        console.print(f"[yellow]warning:[/] {len(s.oov)} word(s) not in CMUdict, letter-to-sound guesses used "
                      f"({top})", highlight=False, soft_wrap=True)
    console.print(f"aligned {s.aligned} (coarse {s.coarse}), reused {s.reused}, failed {s.failed}, "
                  f"no text {s.no_text}", highlight=False)
    for path, n in s.filled.items():
        console.print(f"{path}: phone_ali for {n} utterance(s)", highlight=False)
