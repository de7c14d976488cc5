"""The credentials this process holds, scrubbed from every message it shows or writes.

Backends register what they read (:func:`keep`); :class:`harness.backends.base.Registry` also
registers the value of every environment variable that a ``*_env`` backend option names, so a
plugin that quotes its key in an exception is covered too. :func:`redact` is applied to failed
transcripts' messages, to HTTP error bodies before they are shortened, to the CLI's error line
and to every log record; it also masks any URL's userinfo and credential-named query parameters.

A key written into the config itself (``https://user:KEY@host``, ``?api_key=KEY``, a backend
option or ``params`` entry named like a credential) is registered when the backend is created
(:func:`keep_options`) and masked by :func:`scrub` wherever backend options or fingerprints are
written: config.yaml, metrics.json (so the reports and the history database), logs.

The registry is process-wide on purpose, the one piece of global state in the package: log
records from any library, and exceptions raised anywhere, must be scrubbed without every caller
passing the secrets along. It only grows, and holds nothing but values already in the process.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

MASK = "***"
MIN_SECRET = 8
_secrets: set[str] = set()
# A name holding one of these words (split at _, -, . and camelCase) names a credential: api_key,
# access_token, X-Amz-Signature, subscription-key; not keyterm or keywords.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth", "authorization", "signature", "sig"}
    | {"credential", "credentials", "session", "jwt", "bearer", "apitoken", "accesstoken", "subscriptionkey"}
)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;](?P<name>[A-Za-z0-9_.\-\[\]%]+)=)(?P<value>[^&;#\s\"'<>]*)")


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
    return _mask_urls(text)


def is_secret_name(name: str) -> bool:
    """Whether an option, parameter or query name names a credential (``*_env`` names a variable)."""
    if name.lower().endswith("_env"):
        return False
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", unquote(name)).lower())
    return any(word in _SECRET_WORDS for word in words) or "".join(words) in _SECRET_WORDS


def scrub(value: Any) -> Any:
    """A copy of backend options or a fingerprint with every credential masked: the values of
    credential-named keys, and in URLs the userinfo and credential-named query parameters."""
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_item(k, v) else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _mask_urls(value)
    return value


def keep_options(options: Mapping[str, Any]) -> None:
    """Register every credential written into backend options (see :func:`scrub`) and the values
    of the environment variables that ``*_env`` options name."""
    keep_env_options(options)
    for key, value in options.items():
        if _is_secret_item(key, value):
            for item in value if isinstance(value, list | tuple) else [value]:
                keep(str(item))
        elif isinstance(value, Mapping):
            keep_options(value)
        elif isinstance(value, str):
            for secret in _url_secrets(value):
                keep(secret)


def _is_secret_item(key: object, value: object) -> bool:
    return isinstance(key, str) and is_secret_name(key) and not isinstance(value, Mapping | bool) and value is not None


def _url_secrets(text: str) -> list[str]:
    found = [unquote(part) for m in _USERINFO.finditer(text) for part in m["userinfo"].split(":", 1)]
    if "://" in text:
        query = urlsplit(text).query
        found += [v for name, v in parse_qsl(query, keep_blank_values=True) if is_secret_name(name)]
    return [f for f in found if f]


def _mask_urls(text: str) -> str:
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY_PARAM.sub(lambda m: f"{m['lead']}{MASK}" if is_secret_name(m["name"]) else m[0], text)


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
