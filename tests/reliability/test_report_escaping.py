"""Strings from the data cannot become markup in any report: HTML, Markdown, the terminal or JUnit XML.

Hostile strings are planted as tag values (slice labels), a tag name (a dimension), utterance and
speaker ids, reference text, transcripts (the stub's ``rewrites``) and error messages (a plugin
stub that fails some utterances quoting their tag). Two runs go through the real CLI (``asrfair
run``, ``report``, ``gate --junit``; ``coverage --md`` reads the manifest), and each output is read
the way its consumer reads it: report.html by an HTML parser (no script, event handler or
``javascript:`` URL from the data, every string visible as text), report.md, gate.md and
coverage.md by a permissive Markdown renderer (raw HTML on, any link target allowed: no active
markup, table rows keep their columns, every string visible), the terminal tables as plain text
(rich markup shown, not interpreted), the JUnit XML by an XML parser.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli import asrfair, start
from conftest import install_backend_plugin, write_config, write_jsonl
from loopback import tone_clips
from markdown_it import MarkdownIt

log = logging.getLogger(__name__)

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "](javascript:alert(1))",
    "| pipe | table breaker",
    "`tick` ``two``",
    "*bold* _under_",
    "&lt;b&gt; &amp; &#60;",
    "line\nbreak",
    "[bold red]x[/]",
    "[link=javascript:alert(1)]x[/link]",
    "back\\slash\\",
]
TAG = "<img src=y onerror=alert(2)> [bold]t[/] | `t`"  # a hostile tag name: a dimension's heading
PER_LABEL = 2


def utterances() -> list[dict]:
    n = len(HOSTILE) * PER_LABEL
    return [
        {
            "id": f"{HOSTILE[(i + 5) % len(HOSTILE)]} #{i}",
            "text": f"alpha bravo {HOSTILE[(i + 7) % len(HOSTILE)]} charlie delta echo",
            "speaker": f"{HOSTILE[(i + 3) % len(HOSTILE)]} spk{i % 4}",
            "accent": HOSTILE[i % len(HOSTILE)],
            TAG: "north" if i % 2 else HOSTILE[(i + 1) % len(HOSTILE)],
        }
        for i in range(n)
    ]


PLUGIN = '''
"""The stub, failing every fifth utterance with an error message that quotes its accent tag."""

from typing import ClassVar

from harness.backends.base import Transcript
from harness.backends.stub import StubBackend


class HostileBackend(StubBackend):
    name: ClassVar[str] = "hostile"

    def transcribe(self, batch):
        out = super().transcribe(batch)
        return [
            Transcript.failed(t.id, f"UpstreamError: refused {r.utterance.tags['accent']}")
            if int(t.id.rsplit("#", 1)[1]) % 5 == 0
            else t
            for r, t in zip(batch, out)
        ]
'''


def install_plugin(folder: Path) -> Path:
    return install_backend_plugin(folder, "hostile_plugin", textwrap.dedent(PLUGIN), "hostile", "HostileBackend")


def spaced(text: str) -> str:
    """Whitespace as a renderer shows it: a line break inside a label reads as a space."""
    return " ".join(text.split())


class Page(HTMLParser):
    """Elements, attributes and the visible text of an HTML page (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.code: list[str] = []  # each <code> element's text
        self._in = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in = tag
        if tag == "code":
            self.code.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._in = ""

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in == "script" else self.text).append(data)
        if self._in == "code":
            self.code[-1] += data

    def problems(self, own_scripts: int) -> list[str]:
        found = []
        names = [tag for tag, _ in self.tags]
        if names.count("script") != own_scripts or any("alert" in s for s in self.scripts):
            found.append(f"{names.count('script')} <script> elements, {own_scripts} expected")
        found += [f"<{tag}> from the data" for tag in ("img", "a", "iframe", "svg:script") if tag in names]
        for tag, attrs in self.tags:
            for name, value in attrs:
                if name.startswith("on"):
                    found.append(f"<{tag} {name}=...>")
                if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                    found.append(f"<{tag} {name}={value}>")
        return found

    def shows(self, text: str) -> bool:
        return spaced(text) in spaced(" ".join(self.text))


def markdown_problems(source: str, expected: list[str], where: str) -> list[str]:
    """Render as a permissive renderer would (raw HTML passes, any link target is allowed)."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True
    found = []
    tokens = md.parse(source)
    code = " ".join(c.content for t in tokens for c in t.children or () if c.type == "code_inline")
    for tag in ("<script", "<img"):  # literal inside a code span, and nowhere else
        if source.count(tag) != code.count(tag):
            found.append(f"{where}: {tag} outside code spans")
    cells: list[int] = []
    for token in tokens:
        if token.type == "tr_open":
            cells.append(0)
        elif token.type in ("th_open", "td_open"):
            cells[-1] += 1
        elif token.type == "table_close":
            if len(set(cells)) > 1:
                found.append(f"{where}: a table's rows have {sorted(set(cells))} cells")
            cells = []
        elif token.type == "html_block" or (token.children and any(c.type == "html_inline" for c in token.children)):
            found.append(f"{where}: raw HTML passes through: {token.content[:80]!r}")
    page = Page(md.renderer.render(tokens, md.options, {}))
    found += [f"{where}: {p}" for p in page.problems(own_scripts=0)]
    found += [f"{where}: does not show {text!r} as text" for text in expected if not page.shows(text)]
    return found


@pytest.mark.slow  # three runs and every renderer
def test_data_strings_are_escaped_in_every_report(tmp_path: Path) -> None:
    records = utterances()
    clips = tone_clips(tmp_path / "audio", [r["text"] for r in records])
    manifest = write_jsonl(
        tmp_path / "manifest.jsonl", [{**r, "audio": str(c)} for r, c in zip(records, clips, strict=True)]
    )
    path = os.pathsep.join(filter(None, [str(install_plugin(tmp_path / "plugin")), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path}
    rewrite = {"when": {"accent": HOSTILE[0]}, "words": {"alpha": "<script>alert(3)</script> [bold]hyp[/]"}}
    commands = {"coverage": ["coverage", str(manifest), "--no-audio", "--md", str(tmp_path / "coverage.md")]}
    for name, rate in (("base", 0.05), ("worse", 0.4)):
        backend = {"name": "hostile", "default_rate": rate, "rewrites": [rewrite]}
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name / "run.yaml", manifest, backend, name=name, max_failure_rate=1.0)
        commands[name] = ["run", str(config)]
    procs = {name: start(*args, cwd=tmp_path, env=env, stderr=None) for name, args in commands.items()}
    terminal = {name: proc.communicate(timeout=600)[0] for name, proc in procs.items()}
    assert all(proc.returncode == 0 for proc in procs.values()), terminal
    base, worse = (next((tmp_path / name / "runs").glob("*/metrics.json")).parent for name in ("base", "worse"))
    reported = asrfair("report", str(worse), env=env, cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    junit = tmp_path / "gate.xml"
    gated = asrfair("gate", str(worse), "--baseline", str(base), "--junit", str(junit), env=env, cwd=tmp_path)
    assert gated.returncode in (0, 1), gated.stderr

    labels = [*HOSTILE, TAG]
    failed = [r for r in records if int(r["id"].rsplit("#", 1)[1]) % 5 == 0]
    problems: list[str] = []

    html = (worse / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    problems += [f"report.html: {p}" for p in page.problems(own_scripts=1)]
    visible = [*labels, "<script>alert(3)</script> [bold]hyp[/]"]  # the transcript the rewrite made
    problems += [f"report.html: does not show {text!r}" for text in visible if not page.shows(text)]
    by_id = {r["id"]: r for r in records}
    listed = [by_id[c] for c in page.code if c in by_id]  # each worst utterance's <code>{{ id }}</code>
    if not listed or len(listed) != sum(1 for _, attrs in page.tags if ("class", "utt") in attrs):
        problems.append(f"report.html: {len(listed)} utterance ids shown exactly, not one per worst utterance")
    for r in listed:
        problems += [
            f"report.html: {r['id']!r} without {text!r}"
            for text in (f"speaker {r['speaker']}", f"reference: {r['text']}")
            if not page.shows(text)
        ]

    report_md = (worse / "report.md").read_text(encoding="utf-8")
    errors = [f"UpstreamError: refused {r['accent']}" for r in failed]
    problems += markdown_problems(report_md, [*labels, *(r["id"] for r in failed), *errors], "report.md")
    problems += markdown_problems((worse / "gate.md").read_text(encoding="utf-8"), [HOSTILE[0]], "gate.md")
    problems += markdown_problems((tmp_path / "coverage.md").read_text(encoding="utf-8"), labels, "coverage.md")

    for command in ("worse", "coverage"):
        shown = spaced(terminal[command])
        for text in labels:  # rich markup would have been swallowed (or raised)
            if "\n" not in text and spaced(text) not in shown:  # a line break wraps a table cell
                problems.append(f"terminal ({command}): does not show {text!r}")

    tree = ET.parse(junit)
    names = [case.get("name") or "" for case in tree.iter("testcase")]
    if not any(HOSTILE[0] in n for n in names):
        problems.append(f"junit: no test case names {HOSTILE[0]!r}: {names[:5]}")
    if re.search(r"<(script|img)\b", junit.read_text(encoding="utf-8")):
        problems.append("junit: raw markup in the XML")

    log.info(
        "escaping: %d hostile strings planted in %d utterances (labels, a tag name, ids, speakers, references, "
        "transcripts, errors); outputs checked: report.html, report.md, gate.md, coverage.md, terminal (run, "
        "coverage), JUnit; %d problems",
        len(HOSTILE) + 1,
        len(records),
        len(problems),
    )
    assert not problems, "\n".join(problems)
