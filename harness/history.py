"""Run history: every finished run appended to an embedded DuckDB database (placeholder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console


def record_run(db_path: Path, run_dir: Path, metrics: dict[str, Any]) -> None:
    """Append one finished run (its metrics.json content) to the history database."""


def show_history(
    db_path: Path, *, slices: list[str], name: str | None, last: int, plot: Path | None, as_json: bool, console: Console
) -> None:
    """Print the trend table (or JSON rows); with ``plot``, write a PNG of WER per slice over time."""
    raise NotImplementedError
