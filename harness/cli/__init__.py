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

from harness.cli.common import app, stop_on_signal

__all__ = ["app", "main"]

# Each module registers its commands on `app`; this order is the order --help lists them in.
for _module in ("run", "data", "analyse", "decide", "serve"):
    importlib.import_module(f"harness.cli.{_module}")


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, stop_on_signal)  # a CI job's timeout stops a run as Ctrl-C does: exit 130, resumable
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="asrfair")
