"""One module per `spsbench` subcommand (registry: spsbench.cli.COMMANDS)."""

from __future__ import annotations

from typing import Any


def output_console() -> Any:
    """The console for a command's tables: the terminal's width, or wide when written to a log or pipe
    (rich would otherwise wrap every table at 80 columns)."""
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=200)
