"""docs/api.md runs: every ```python block in order, in one namespace, in a fresh folder; a ```text
block right after one is its exact output."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from conftest import REPO

from harness import SliceReport

DOC = REPO / "docs" / "api.md"
OPENING = re.compile(r"```(\w*)\s*$")


def fenced(lines: list[str]) -> list[tuple[str, str, int, int]]:
    """(language, body, opening line index, closing line index) of each fenced block."""
    out, i = [], 0
    while i < len(lines):
        opening = OPENING.match(lines[i])
        if opening is None:
            i += 1
            continue
        close = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        out.append((opening.group(1), "".join(lines[i + 1 : close]), i, close))
        i = close + 1
    return out


def blocks(text: str) -> list[tuple[str, str, str | None]]:
    """(source, where it starts, expected output or None) of each python block: its output is the
    text block that follows it with nothing but blank lines between."""
    lines = text.splitlines(keepends=True)
    found = fenced(lines)
    out = []
    for i, (language, body, opening, close) in enumerate(found):
        if language != "python":
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        adjacent = after is not None and not "".join(lines[close + 1 : after[2]]).strip()
        expected = after[1] if adjacent and after[0] == "text" else None  # type: ignore[index]
        out.append((body, f"{DOC.name}:{opening + 2}", expected))
    return out


def test_every_python_block_of_the_api_page_runs_and_prints_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = blocks(DOC.read_text(encoding="utf-8"))
    assert len(found) >= 6 and sum(expected is not None for _, _, expected in found) >= 6
    namespace: dict[str, object] = {"__name__": "api_doc"}
    for source, where, expected in found:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(source, where, "exec"), namespace)  # the page's own code
        if expected is not None:
            assert printed.getvalue() == expected, where
    # what the walk-through says it made
    assert isinstance(namespace["report"], SliceReport)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "scottish" in page
    assert (tmp_path / "metrics.json").stat().st_size > 0
