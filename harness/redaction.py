"""The credentials this process holds, scrubbed from every message it shows or writes.

Backends register what they read (:func:`keep`); :class:`harness.backends.base.Registry` also
registers the value of every environment variable that a ``*_env`` backend option names, so a
plugin that quotes its key in an exception is covered too. :func:`redact` is applied to failed
transcripts' messages, to HTTP error bodies before they are shortened, to the CLI's error line
and to every log record.

The registry is process-wide on purpose, the one piece of global state in the package: log
records from any library, and exceptions raised anywhere, must be scrubbed without every caller
passing the secrets along. It only grows, and holds nothing but values already in the process.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET = 8
_secrets: set[str] = set()


def keep(value: str | None) -> str | None:
    """Register a credential (and its URL-encoded forms, as a server may quote it back). A value
    shorter than ``MIN_SECRET`` (a local server's dummy key, ``x``) is no secret, and masking it
    would garble every message that holds the character."""
    if value and len(value) >= MIN_SECRET:
        _secrets.update({value, quote(value, safe=""), quote_plus(value)})
    return value


def keep_env_options(options: Mapping[str, Any]) -> None:
    """Register the values of the environment variables that ``*_env`` options name."""
    for key, name in options.items():
        if key.endswith("_env") and isinstance(name, str):
            keep(os.environ.get(name, "").strip())


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: a form may contain another
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a log record's message and traceback, formatted here so that no handler sees them raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call; logging reports it, as without the filter
            return True
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = record.exc_text = None
        record.msg, record.args = redact(message), None
        return True
