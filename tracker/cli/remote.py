"""``tracker remote``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage remote.", no_args_is_help=True)
