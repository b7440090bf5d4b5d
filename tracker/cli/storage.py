"""``tracker storage``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage storage.", no_args_is_help=True)
