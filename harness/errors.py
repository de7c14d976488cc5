"""Exceptions that map to the CLI's documented exit codes.

Every user-facing error carries one line that names where the problem is and how to fix it;
the CLI prints that line and exits with ``exit_code`` instead of showing a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

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


def format_validation_error(exc: ValidationError, prefix: str = "", model: Any = None) -> str:
    """One line per pydantic error: ``option 'a.b': message``, joined by '; '. With the validated
    ``model``, an unknown key names the nearest valid one (``did you mean 'normalizer'?``)."""
    errors = exc.errors()
    parts = []
    for err in errors:
        if _superseded(err["loc"], [e["loc"] for e in errors]):
            continue
        # a user's key is kept even where it looks like a member label
        user_key = len(err["loc"]) - 1 if err["type"] == "extra_forbidden" else -1
        loc = _yaml_path(
            (prefix, *(part for i, part in enumerate(err["loc"]) if i == user_key or not _is_member_label(part)))
        )
        if err["type"] == "extra_forbidden":
            message = unknown_key(str(err["loc"][-1]), keys_at(model, err["loc"][:-1]) if model else [])
        else:
            message = err["msg"].removeprefix("Value error, ")  # our own validators' messages stand alone
        parts.append(f"'{loc}': {message}" if loc else message)
    return "; ".join(parts)


def _is_member_label(part: object) -> bool:
    """pydantic names the union member it tried in the location: ``slices.list[SliceSpec][0]``."""
    return isinstance(part, str) and re.fullmatch(r"[a-z][\w-]*\[.+\]", part) is not None


def _superseded(loc: tuple[object, ...], locs: list[tuple[object, ...]]) -> bool:
    """A union member that did not fit at all (``slices`` is not a path) says less than the member
    whose errors go deeper into the value (``slices[0].min_speaker``): only those are shown."""
    if not loc or not _is_member_label(loc[-1]):
        return False
    return any(other[: len(loc) - 1] == loc[:-1] and len(other) > len(loc) for other in locs)


def unknown_key(key: str, valid: Sequence[str]) -> str:
    """``unknown key; did you mean 'normalizer'?``, else the keys allowed there. No key is ever
    taken for its near miss: a silent alias would hide the typo in every config copied from it."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key; valid keys here: {', '.join(valid)}" if valid else "unknown key (check spelling)"


def keys_at(model: Any, loc: Sequence[object]) -> list[str]:
    """The keys a pydantic ``model`` accepts at ``loc`` (an error's location less its last part)."""
    nodes = [model]
    for part in loc:
        stepped = [n for node in nodes for n in _step(node, part)]
        # a union's member label ('list[SliceSpec]') in the location: the members stay as they are
        nodes = stepped if stepped or not _is_member_label(part) else nodes
    keys = [key for node in nodes for m in _members(node) if _is_model(m) for key in _keys(m)]
    return list(dict.fromkeys(keys))


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A model's keys as written in YAML (a field's alias where it has one) and their types."""
    return {field.alias or name: field.annotation for name, field in model.model_fields.items()}


def _members(annotation: Any) -> list[Any]:
    """``A | B | None`` and ``Annotated[A | B, ...]`` as [A, B, None]."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _step(annotation: Any, part: object) -> list[Any]:
    """Where one location part leads from ``annotation``: a field's type, a list's item, a tagged
    union's member (pydantic names it by its tag: ``transforms[0].noise.snr_db``)."""
    out = []
    for member in _members(annotation):
        origin = get_origin(member)
        if _is_model(member) and isinstance(part, str):
            keys = _keys(member)
            if part in keys:
                out.append(keys[part])
            elif any(get_origin(kind) is Literal and part in get_args(kind) for kind in keys.values()):
                out.append(member)
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            out.append(get_args(member)[0])
        elif origin is dict and isinstance(part, str):
            out.append(get_args(member)[1])
    return out


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
