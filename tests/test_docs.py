"""README.md and docs/*.md stay true: every relative link resolves (anchors included), and every
``asrfair`` command and option they show exists."""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import typer.main
from conftest import REPO

from harness.cli import app

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def split_fences(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The page's prose, and its fenced code blocks as (language, body)."""
    prose, blocks, fence, lang, body = [], [], None, "", []
    for line in text.splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence is None and marker:
            fence, lang, body = marker.group(1), marker.group(2), []
        elif fence is not None and line.strip() == fence:
            blocks.append((lang, "\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append(line)
    return "\n".join(prose), blocks


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text, _ = split_fences(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = github_slug(heading)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    text, _ = split_fences(page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading '#{anchor}' in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_slug_rule_matches_github():
    assert github_slug("Your model, your data: three steps") == "your-model-your-data-three-steps"
    assert github_slug("Real speech: `datasets/real-mini`") == "real-speech-datasetsreal-mini"
    assert github_slug("`asrfair serve`: any backend") == "asrfair-serve-any-backend"


def shown_commands(page: Path) -> list[str]:
    """Every ``asrfair ...`` a page shows: in code blocks (one per line) and in inline code."""
    prose, blocks = split_fences(page.read_text(encoding="utf-8"))
    found = []
    for lang, block in blocks:
        for line in block.splitlines() if lang in ("bash", "sh", "shell", "console", "") else ():
            found += re.findall(r"(?:^|[|;&(]\s*|\$ )(asrfair(?:\s[^|;&#)]*)?)", line.split("  #")[0].strip())
    found += re.findall(r"`(asrfair(?:\s[^`]*)?)`", prose)
    return [c.strip() for c in found]


CLICK = typer.main.get_command(app)


def check_command(shown: str) -> str | None:
    """What is wrong with one shown command line, or None."""
    try:
        words = shlex.split(shown.replace("[", " ").replace("]", " ").replace("(", " ").replace(")", " "))
    except ValueError:
        words = shown.split()
    command, rest = CLICK, words[1:]
    while rest and hasattr(command, "commands") and not rest[0].startswith("-"):
        if rest[0] not in command.commands:  # type: ignore[attr-defined]
            return f"no command '{rest[0]}'"
        command, rest = command.commands[rest[0]], rest[1:]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    unknown = [w.split("=")[0] for w in rest if w.startswith("-") and w.split("=")[0] not in options]
    unknown = [w for w in unknown if re.fullmatch(r"--?[a-zA-Z][\w-]*", w)]  # not '-' in prose or numbers
    return f"no option {', '.join(unknown)}" if unknown else None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_exists(page):
    commands = shown_commands(page)
    assert commands or page.name not in ("README.md", "usage.md"), f"{page.name} shows no asrfair command"
    problems = [f"{c!r}: {problem}" for c in commands if (problem := check_command(c))]
    assert not problems, "\n".join(problems)


def test_the_command_check_catches_a_wrong_command_and_option():
    assert check_command("asrfair run configs/x.yaml --output runs") is None
    assert check_command("asrfair baseline set RUN -o b.json") is None
    assert check_command("asrfair rnu configs/x.yaml") == "no command 'rnu'"
    assert check_command("asrfair run configs/x.yaml --outptu runs") == "no option --outptu"
