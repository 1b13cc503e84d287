"""`vqaudio encode / decode / convert / speakers`: thin commands over `vqaudio.inference.codec`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from vqaudio.cli.app import app, command
from vqaudio.errors import VQAudioError
from vqaudio.progress import console

MODEL_HELP = "VQ-VAE model file [default: $VQAUDIO_MODEL, else the model shipped in vqaudio/pretrained/vqvae.pt]."
TEMPERATURE_HELP = "Softmax temperature of the decoder (1 = the model's distribution; 0 = most likely sample)."
PRIOR_HELP = "Latent prior file for .vqc files [default: the prior shipped in vqaudio/pretrained/prior.pt]."
SEED_HELP = "Random seed: the same seed gives the same audio [default: a fresh random draw]."


def warn(message: str) -> None:
    """One yellow `warning:` line on stderr (the command goes on)."""
    console.print(f"[bold yellow]warning:[/] {message}", markup=True, highlight=False, soft_wrap=True)


@contextmanager
def _progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (when it is a terminal); yields on_progress(done, total)."""
    from vqaudio.progress import progress

    with progress() as bar:
        task = bar.add_task(description, total=None, info="")
        yield lambda done, total: bar.update(task, completed=done, total=total)


@command(app, "encode")
def encode_cmd(
    input_path: Path = typer.Argument(..., metavar="IN", help="Audio file (WAV/FLAC/OGG, any rate, mono or stereo)."),
    output_path: Path = typer.Argument(..., metavar="CODES", help="Codes file to write (.npy, int16 [N]; .vqc with "
                                       "--compress)."),
    model: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    compress: bool = typer.Option(False, "--compress", help="Arithmetic-code the codes under the latent prior (.vqc)."),
    prior: Path | None = typer.Option(None, "--prior", help=PRIOR_HELP),
    speaker: str | None = typer.Option(None, "--speaker", help="With --compress: the input's speaker, if the model "
                                       "knows it (conditions the prior; recorded in the file)."),
) -> None:
    """Encode audio to codes: one int16 per frame (hop samples), or a compressed .vqc file."""
    from vqaudio.inference.files import encode_file

    if compress:
        from vqaudio.inference.files import compress_file

        result = compress_file(input_path, output_path, model, prior, speaker, warn)
        console.print(f"wrote {output_path} ({result.n_codes} codes, {result.n_bytes} bytes: "
                      f"{result.bits_per_code:.2f} bits/code, {result.bits_per_second:.0f} bit/s)", highlight=False)
        return
    if speaker is not None or prior is not None:
        raise VQAudioError("--speaker and --prior only apply with --compress")
    with _progress_bar("encode") as on_progress:
        codes = encode_file(input_path, output_path, model, on_progress, warn)
    console.print(f"wrote {output_path} ({len(codes)} codes)", highlight=False)


@command(app, "decode")
def decode_cmd(
    codes_path: Path = typer.Argument(..., metavar="CODES", help="Codes file from `vqaudio encode` (.npy or .vqc)."),
    output_path: Path = typer.Argument(..., metavar="OUT", help="Audio file to write (.wav, .flac, .ogg)."),
    speaker: str | None = typer.Option(None, "--speaker", help="Speaker id to decode with (see `vqaudio speakers`); "
                                       "required for .npy, default for .vqc: the speaker recorded in the file."),
    prior: Path | None = typer.Option(None, "--prior", help=PRIOR_HELP),
    model: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    temperature: float = typer.Option(1.0, "--temperature", help=TEMPERATURE_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
) -> None:
    """Decode codes to audio in a speaker's voice."""
    from vqaudio.inference.files import decode_file

    with _progress_bar("decode") as on_progress:
        wav = decode_file(codes_path, output_path, speaker, model, temperature, seed, on_progress, prior)
    console.print(f"wrote {output_path} ({len(wav)} samples)", highlight=False)


@command(app, "convert")
def convert_cmd(
    paths: list[Path] = typer.Argument(..., metavar="IN... [OUT]",
                                       help="IN OUT; or, with --out-dir, audio files and folders of audio."),
    target_speaker: str = typer.Option(..., "--target-speaker", help="Speaker id to convert to."),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Write each input as OUT_DIR/<name>.wav."),
    model: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    temperature: float = typer.Option(1.0, "--temperature", help=TEMPERATURE_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    f0: str | None = typer.Option(None, "--f0", help="Vocoder-kind models: F0 'predicted' by the decoder, the "
                                  "decoder's 'normalized' to the target's statistics, or the source's 'mapped' to "
                                  "them (default: the model's)."),
) -> None:
    """Voice conversion: encode, then decode with the target speaker (several inputs: one batch)."""
    from vqaudio.inference.files import conversion_paths, convert_files

    inputs, outputs = conversion_paths(paths, out_dir)
    with _progress_bar("convert") as on_progress:
        convert_files(inputs, outputs, target_speaker, model, temperature, seed, on_progress, f0, warn)
    for out in outputs:
        console.print(f"wrote {out}", highlight=False)


@command(app, "speakers")
def speakers_cmd(model: Path | None = typer.Option(None, "--model", help=MODEL_HELP)) -> None:
    """List the speakers a model knows, with their speaker-info text."""
    from rich.console import Console
    from rich.table import Table

    from vqaudio.inference.codec import load_codec

    loaded = load_codec(model, device="cpu")
    enrolled = dict(loaded.extra.get("enrolled") or {})
    table = Table("#", "speaker", "kind", "info", title=f"{len(loaded.speakers)} speakers")
    for i, spk in enumerate(loaded.speakers):
        table.add_row(str(i), spk, "enrolled" if spk in enrolled else "trained", loaded.speaker_info.get(spk, ""))
    Console(soft_wrap=True).print(table)


@command(app, "enroll")
def enroll_cmd(
    name: str = typer.Argument(..., help="Id of the new voice (no spaces)."),
    audio: list[Path] = typer.Argument(..., help="Recordings of the voice: audio files and folders of them."),
    out: Path = typer.Option(..., "--out", help="The new model file (every old speaker plus NAME)."),
    model: Path | None = typer.Option(None, "--model", help=MODEL_HELP),
    steps: int = typer.Option(300, "--steps", help="Optimisation steps of the new voice's mixture weights."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the same seed gives the same model)."),
    replace: bool = typer.Option(False, "--replace", help="Enrol NAME again when the model already has it."),
) -> None:
    """Enrol a new target voice from a few recordings: learns its speaker embedding (a mixture of the trained
    voices'), everything else frozen."""
    from vqaudio.training.enroll import enroll

    with _progress_bar(f"enrol {name}") as on_progress:
        result = enroll(model, name, audio, out, steps=steps, seed=seed, replace=replace,
                        on_step=lambda step, loss: on_progress(step, steps))
    nearest = result.nearest_voice
    console.print(f"wrote {out}: '{name}' enrolled from {len(result.files)} file(s), {result.seconds:.1f} s of speech, "
                  f"{result.steps} steps, final loss {result.final_loss:.4f}; nearest voice {nearest} "
                  f"({result.mixture[nearest]:.0%} of the mixture)", highlight=False)
    if not result.envelope_statistics:
        warn(f"the recordings are band-limited to ~{result.band_hz / 1000:.1f} kHz: '{name}' keeps the postfilter off "
             "(its envelope statistics need full-band speech)")
