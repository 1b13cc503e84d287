"""The Typer application and the `command` decorator every command module registers with (no commands here:
they live in the `*_cmds` modules, which import this one; `vqaudio.cli` imports them all)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from vqaudio.errors import VQAudioError

app = typer.Typer(
    name="vqaudio",
    help="VQ-VAE neural audio codec and voice conversion (van den Oord et al. 2017).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Corpora and Kaldi-style data directories.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit with `code` (for checks done in the CLI itself)."""
    from vqaudio.progress import console

    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def command(group: typer.Typer, name: str | None = None, **kwargs) -> Callable:
    """Register a command on `group`, turning VQAudioError into one line on stderr and exit 1.

    Use this instead of `@group.command()` so that Typer's CliRunner (the tests) sees the
    same clean failure as the console script.
    """

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args, **kw):
            try:
                return func(*args, **kw)
            except VQAudioError as e:
                fail(str(e))
            except KeyboardInterrupt:
                fail("interrupted", 130)

        return group.command(name=name, **kwargs)(wrapper)

    return decorate
