"""report.html: self-contained, escaped, and checked as a person sees it in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from cli import asrfair, assert_clean_error
from conftest import write_config

from harness.config import load_config
from harness.pipeline import prepare, report, run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ATTACK = "<script>alert(1)</script>"
LINK_ATTACK = "](javascript:alert(1))"
TAG_ATTACK = '<img src=x onerror="alert(2)">'


@pytest.fixture
def html_run(tmp_path, make_manifest):
    words = "alpha bravo charlie delta echo foxtrot golf hotel"
    records = [
        {"id": f"{a}-{s}-{n}", "text": words, "speaker": f"{a}{s}", "accent": a, "device": ("phone", "laptop")[s % 2]}
        for a in ("north", "south", "west")
        for s in range(6)
        for n in range(5)
    ]
    # Hostile text and tag values: the utterance is its own (error-laden) slice, so it is listed
    # among the worst utterances with its raw reference and transcript.
    records[0] = {**records[0], "text": f"{ATTACK} said the {LINK_ATTACK} man", "accent": TAG_ATTACK}
    backend = {"name": "stub", "default_rate": 0.1, "error_rates": {"accent": {"south": 0.2, TAG_ATTACK: 0.9}}}
    stats = {"min_speakers": 3, "min_words": 50, "bootstrap": 200, "permutations": 200}
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend, stats=stats)
    return run(prepare(load_config(config)))


def test_every_run_writes_a_self_contained_escaped_report(html_run):
    page = (html_run.paths.root / "report.html").read_text(encoding="utf-8")
    assert page.count("<script>") == 1  # the sorting script, nothing from the data
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and ATTACK not in page
    assert "&lt;img src=x onerror=" in page and TAG_ATTACK not in page
    assert "](javascript:alert(1))" in page and 'href="javascript' not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing to fetch: opens offline
    assert "<svg" in page and 'class="sortable slices"' in page and "How to read this" in page
    assert "Worst utterances per slice" in page and 'class="pair substitute"' in page
    assert 'src="../../tone.wav"' in page  # the clip beside the manifest, relative to runs/<run>/


def test_report_command_writes_elsewhere_and_compares(html_run, tmp_path):
    other = tmp_path / "other-run"
    shutil.copytree(html_run.paths.root, other)
    out = tmp_path / "out" / "page.html"
    result = asrfair("report", str(html_run.paths.root), "--compare", str(other), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "Compared with" in page and "change [CI]" in page
    assert 'src="../tone.wav"' in page  # audio links are relative to where the report was written
    assert_clean_error(asrfair("report", str(tmp_path / "nope")), 2, "nope")


def test_the_report_shows_conditions_and_the_normaliser_view(tmp_path, make_manifest):
    records = [
        {"id": f"{a}-{s}-{n}", "text": "i am going to see the doctor", "speaker": f"{a}{s}", "accent": a}
        for a in ("north", "south")
        for s in range(4)
        for n in range(3)
    ]
    backend = {
        "name": "stub",
        "default_rate": 0.05,
        "error_rules": [{"when": {"accent": "south", "condition": "phone"}, "rate": 0.3}],
        "rewrites": [{"when": {"accent": "south"}, "words": {"going to": "gonna"}}],
    }
    conditions = [{"name": "clean"}, {"name": "phone", "transforms": [{"type": "telephone"}]}]
    stats = {"min_speakers": 2, "min_words": 20, "bootstrap": 100, "permutations": 100, "normalizers": ["basic"]}
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend, conditions=conditions, stats=stats)
    page = report(run(prepare(load_config(config))).paths.root).read_text(encoding="utf-8")
    assert "Simulated conditions (paired, against clean)" in page and "ΔWER per condition" in page
    assert "Normaliser sensitivity" in page and "basic@1" in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_the_report_in_headless_chromium(html_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency) is not installed")
    page_file = html_run.paths.root / "report.html"
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(page_file.as_uri())

            charts = page.locator("svg.chart")
            assert charts.count() >= 2 and charts.first.is_visible()
            assert page.locator("svg.heatmap").count() >= 1
            table = page.locator("table.sortable.slices").first
            assert table.is_visible()
            assert page.get_by_text(ATTACK, exact=False).count() >= 1  # shown as text, never run

            def column(index: int) -> list[str]:
                return [c.strip() for c in table.locator(f"tbody tr td:nth-child({index})").all_inner_texts()]

            def wers() -> list[float]:
                return [float(text.split("%")[0]) for text in column(2)]

            table.locator("thead th").nth(1).click()  # WER: highest first
            assert wers() == sorted(wers(), reverse=True)
            table.locator("thead th").nth(1).click()  # again: lowest first
            assert wers() == sorted(wers())
            table.locator("thead th").nth(0).click()  # slice names, then reversed
            first = column(1)
            table.locator("thead th").nth(0).click()
            assert column(1) == list(reversed(first))

            page.locator("details.worst summary").first.click()
            assert page.locator(".utt .pair.substitute").first.is_visible()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert (tmp_path / "report.png").stat().st_size > 20_000
