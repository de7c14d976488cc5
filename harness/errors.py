"""Exceptions that map to the CLI's documented exit codes.

Every user-facing error carries one line that names where the problem is and how to fix it;
the CLI prints that line and exits with ``exit_code`` instead of showing a traceback.
"""

from __future__ import annotations

from pydantic import ValidationError

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
EXIT_BACKEND_FAILURES = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


# Every character str.splitlines() breaks on, escaped: messages quote user data (ids, keys, paths,
# YAML values) that may hold line breaks, and the CLI's error must stay one line.
_LINE_BREAKS = str.maketrans(
    {"\n": "\\n", "\r": "\\r"}
    | {c: c.encode("unicode_escape").decode("ascii") for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
)


def one_line(text: str) -> str:
    """``text`` with its line breaks escaped (``\\n``), so it prints as one line."""
    return text.translate(_LINE_BREAKS)


class HarnessError(Exception):
    """Base class for errors the CLI reports as one line."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)


class InputError(HarnessError):
    """Bad manifest, config, slice definition or run directory (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class BackendUnavailable(HarnessError):
    """A backend cannot be created: unknown name, bad options, missing extra (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class Interrupted(HarnessError):
    """Ctrl-C or SIGTERM during a run: finished transcripts are cached, a rerun resumes (exit 130)."""

    exit_code = EXIT_INTERRUPTED


class TooManyFailures(HarnessError):
    """More utterances failed than the run allows; results are still written (exit 3)."""

    exit_code = EXIT_BACKEND_FAILURES


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per pydantic error: ``option 'a.b': message``, joined by '; '."""
    parts = []
    for err in exc.errors():
        loc = _yaml_path((prefix, *err["loc"]))
        message = "unknown key (check spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        message = message.removeprefix("Value error, ")  # our own validators' messages stand alone
        parts.append(f"'{loc}': {message}" if loc else message)
    return "; ".join(parts)


def _yaml_path(parts: tuple[object, ...]) -> str:
    """``conditions[1].transforms[0].snr_db``: list positions in brackets, as a reader counts them."""
    path = ""
    for part in parts:
        if part == "":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path
