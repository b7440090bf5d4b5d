"""``tracker backup`` and ``tracker restore``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Back up trials to storage targets.", no_args_is_help=True)


def restore(trial: str = typer.Argument(..., help="Trial id.")) -> None:
    """Restore a trial from a storage target."""
