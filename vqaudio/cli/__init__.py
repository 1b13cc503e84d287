"""The `vqaudio` command line: thin Typer commands over library functions; the top of the package.

Each command group lives in its own module (`codec_cmds`, `data_cmds`, ...) and registers itself on `app`
(`vqaudio.cli.app`). Errors a user can cause (`VQAudioError`) print one red line on stderr and exit 1; Ctrl-C
exits 130. May import every stage below it (evaluate, training, inference, models, nn, data, the foundations); the
commands hold no logic a test cannot reach through the library.
"""

from __future__ import annotations

import sys

from vqaudio.cli import codec_cmds, data_cmds, eval_cmds, prep_cmds, prior_cmds, train_cmds  # noqa: F401 (register)
from vqaudio.cli.app import app, command, data_app, fail
from vqaudio.errors import VQAudioError

__all__ = ["app", "command", "data_app", "fail", "main"]


def main() -> None:
    """Console-script entry point."""
    from vqaudio.progress import console

    try:
        app()
    except VQAudioError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
