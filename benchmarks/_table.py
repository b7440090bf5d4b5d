"""The result table every benchmark prints."""

from __future__ import annotations


def print_table(rows: list[tuple[str, str, str]], value_header: str = "median") -> None:
    """Print (measurement, value, note) rows as an aligned plain-text table."""
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  {value_header:>8}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>8}  {note}")
