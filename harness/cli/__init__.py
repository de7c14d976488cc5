"""``asrfair`` command line: thin commands over the library.

Results go to stdout (a table, or JSON with ``--json``); progress and logs go to stderr.
Exit codes: 0 ok · 1 regression (gate) or a finding that does not hold (verify) · 2 bad input or
config · 3 backend failures beyond ``max_failure_rate`` · 4 internal error (a bug) · 130
interrupted (transcripts so far are cached; rerun resumes).
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Sequence

import typer

from harness.cli.common import WordsCommand, WordsGroup, app, stop_on_signal

__all__ = ["app", "main"]

# --help's panels, in this order, and the commands in each: a new user reads "Start here" top to bottom.
PANELS = {
    "Start here": ("import", "validate", "run", "report"),
    "Decide": ("gate", "baseline", "compare", "history"),
    "Compare systems": ("study",),
    "Look deeper": ("score", "discover", "verify", "model", "plan", "audition"),
    "Inputs & plugins": ("coverage", "importers", "backends", "normalizers"),
    "Serve": ("serve",),
}

# Each module registers its commands on `app`.
for _module in ("run", "data", "analyse", "decide", "study", "serve"):
    importlib.import_module(f"harness.cli.{_module}")


def _arrange(typer_app: typer.Typer) -> None:
    """Every command in its panel, in PANELS' order, rendered by WordsCommand (types as words)."""
    order = [name for names in PANELS.values() for name in names]
    panel = {name: title for title, names in PANELS.items() for name in names}
    typer_app.registered_commands.sort(key=lambda info: order.index(info.name or ""))
    for info in typer_app.registered_commands:
        info.rich_help_panel, info.cls = panel[info.name or ""], WordsCommand
    for group in typer_app.registered_groups:
        group.rich_help_panel, group.cls = panel[group.name or ""], WordsGroup
        for info in group.typer_instance.registered_commands if group.typer_instance else ():
            info.cls = WordsCommand


_arrange(app)


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)  # a CI job's timeout stops a run as Ctrl-C does: exit 130, resumable
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="asrfair")
