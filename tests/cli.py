"""The one way tests call the ``asrfair`` CLI (see the top of conftest.py for when to use which).

- ``asrfair(*args)``: a real ``python -m harness`` process, awaited; for what only a process shows
  (its exit status, stdout apart from stderr, plugins found on ``PYTHONPATH``, no traceback leaking).
- ``start(*args)`` / ``finish(proc)``: the same, started and awaited separately (signals, kills,
  several runs side by side).
- ``invoke(*args)``: the CLI in this interpreter through typer's ``CliRunner`` (no interpreter
  start-up); for tests about what a command computes or prints, not about the process.

Every one returns, or finishes into, a ``subprocess.CompletedProcess`` (``returncode``, ``stdout``,
``stderr``), so a test can move between them by changing one name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conftest import REPO


def environment(env: Mapping[str, str] | None = None, *, inherit: bool = True) -> dict[str, str]:
    """This process's environment (unless ``inherit`` is false) plus ``env``, always offline."""
    base = dict(os.environ) if inherit else {}
    return {**base, "HF_HUB_OFFLINE": "1", **(env or {})}


def start(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    inherit: bool = True,
    text: bool = True,
    **popen: Any,
) -> subprocess.Popen:
    """``python -m harness ARGS`` started, not awaited; stdout and stderr are pipes unless ``popen`` says
    otherwise (a process that will be killed should write to ``subprocess.DEVNULL``: nobody reads it)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        env=environment(env, inherit=inherit),
        text=text,
        **popen,
    )


def finish(
    proc: subprocess.Popen, timeout: float = 600, stdin: str | bytes | None = None
) -> subprocess.CompletedProcess:
    """Wait for ``proc`` and return what it did. ``timeout`` only catches a hang: on a loaded 2-core
    machine one run took over 120 s while 15 ran side by side."""
    stdout, stderr = proc.communicate(input=stdin, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def asrfair(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    inherit: bool = True,
    timeout: float = 600,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` in a real process, awaited."""
    return finish(start(*args, cwd=cwd, env=env, inherit=inherit, text=text), timeout=timeout)


def invoke(*args: str) -> subprocess.CompletedProcess:
    """``asrfair ARGS`` in this interpreter; an exception escaping the CLI is a bug and fails the test."""
    from typer.testing import CliRunner

    from harness.cli import app

    outcome = CliRunner().invoke(app, list(args), catch_exceptions=False, prog_name="asrfair")
    return subprocess.CompletedProcess(["asrfair", *args], outcome.exit_code, outcome.stdout, outcome.stderr)


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """``result`` exited ``code`` with no traceback, and its stderr holds every fragment."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
