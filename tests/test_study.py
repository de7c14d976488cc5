"""asrfair study: several systems on the same utterances (issue 27), through the real pipeline with
the stub backend (planted per-slice error rates), its cache, the CLI, and study.html in Chromium."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from cli import asrfair, assert_clean_error
from conftest import accent_records
from test_report_html import CHROMIUM, CHROMIUM_FLAGS

from harness.study.analyse import analyse
from harness.study.results import SCHEMA, json_schema, to_json
from harness.study.runner import run_study
from harness.study.spec import load_study

STATS = {"min_speakers": 5, "min_words": 200}


def write_study(tmp_path, manifest, systems, **extra) -> object:
    data = {
        "version": 1,
        "name": "t",
        "output": str(tmp_path / "out"),
        "stats": STATS,
        "datasets": [{"name": "accents", "manifest": str(manifest)}],
        "systems": systems,
        **extra,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def stub(label: str, seed: int, scottish: float = 0.0, **extra) -> dict:
    rates = {"accent": {"scottish": scottish}} if scottish else {}
    return {"label": label, "backend": {"name": "stub", "default_rate": 0.05, "error_rates": rates, "seed": seed},
            **extra}


@pytest.fixture
def manifest(make_manifest):
    """3 accents × 12 speakers × 10 ten-word utterances (1,200 words per speaker group slice)."""
    return make_manifest(accent_records(12, 10))


def study(tmp_path, manifest, systems, **extra):
    path = write_study(tmp_path, manifest, systems, **extra)
    spec = load_study(path)
    runs = run_study(spec, tmp_path / "study")
    return runs, analyse(spec, runs)


def test_planted_per_slice_difference_is_recovered_and_nothing_else(tmp_path, manifest):
    """'old' makes 30 % extra word errors for Scottish speakers, 'new' does not: the study must
    claim exactly that new is better for Scottish, narrows the Scottish gap and is fairer on accent."""
    _, result = study(tmp_path, manifest, [stub("old", 0, scottish=0.3), stub("new", 1)])
    (dataset,) = result.datasets
    claims = dataset.claims
    kinds = {(c.kind, c.slice) for c in claims}
    assert ("slice-accuracy", "scottish") in kinds
    assert ("gap-narrowed", "scottish") in kinds
    assert ("fairer", None) in kinds and all(c.text.startswith("new is fairer") for c in claims if c.kind == "fairer")
    (closed,) = [c for c in claims if c.kind == "pair-narrowed"]
    assert closed.text.startswith("new narrows the accent gap between old's worst and best slices (scottish − ")
    # Welsh and general were served alike by both systems: no claim names them.
    assert not [c for c in claims if c.slice in ("welsh", "general")]
    (pair,) = dataset.pairs
    accent = next(d for d in pair.dimensions if d.name == "accent")
    scottish = next(s for s in accent.slices if s.slice == "scottish")
    assert scottish.delta.estimate < -0.2 and scottish.delta.ci[1] < 0 and scottish.delta.significant
    assert accent.gap_change.ci[1] < 0 and accent.fairer == "new"
    assert accent.worst_a == "scottish" and accent.pair_change.ci[1] < 0 and accent.pair_change.significant
    assert scottish.speaker_tests.b_better == 12 and scottish.speaker_tests.sign_p < 0.01
    # the leaderboard: new first, alone; its worst-slice and gap figures are the full run's
    top, second = dataset.leaderboard
    assert (top.system, top.rank, second.rank, top.tied_with) == ("new", 1, 2, [])
    assert next(w for w in second.worst if w.dimension == "accent").slice == "scottish"


def test_null_study_claims_nothing_and_ranks_a_tie(tmp_path, manifest):
    """Same error rates, different random streams: no claim, and the leaderboard shows one shared rank."""
    _, result = study(tmp_path, manifest, [stub("a", 0, 0.1), stub("b", 1, 0.1), stub("c", 2, 0.1)])
    (dataset,) = result.datasets
    assert dataset.claims == []
    assert [e.rank for e in dataset.leaderboard] == [1, 1, 1]
    assert all(len(e.tied_with) == 2 for e in dataset.leaderboard)
    assert all(d.fairer is None for p in dataset.pairs for d in p.dimensions)
    # Holm ran over pairs × slices: adjusted p-values are never below the raw ones
    values = [p.delta for p in dataset.pairs] + [s.delta for p in dataset.pairs for d in p.dimensions
                                                 for s in d.slices if s.ranked]
    assert all(v.p_holm >= v.p for v in values if v.p is not None)


def test_rerun_transcribes_only_what_is_new(tmp_path, manifest):
    systems = [stub("a", 0), stub("b", 1)]
    path = write_study(tmp_path, manifest, systems)
    first = run_study(load_study(path), tmp_path / "s1")
    assert (first.transcribed, first.from_cache) == (720, 0)
    again = run_study(load_study(path), tmp_path / "s2")
    assert (again.transcribed, again.from_cache) == (0, 720)
    path = write_study(tmp_path, manifest, [*systems, stub("c", 2)])  # one system added
    third = run_study(load_study(path), tmp_path / "s3")
    assert (third.transcribed, third.from_cache) == (360, 720)
    assert [r.transcribed for r in third.runs] == [0, 0, 360]


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"systems": [stub("a", 0)]}, ["study.yaml", "'systems'", "at least 2"]),
        ({"systems": [stub("a", 0), stub("a", 1)]}, ["study.yaml", "a given twice"]),
        ({"rank_by": "fastest"}, ["study.yaml", "'rank_by'"]),
        ({"systems": [stub("a", 0), {"label": "b", "backend": {"name": "no-such-engine"}}]},
         ["study.yaml", "'systems[1].backend'", "no-such-engine"]),
        ({"datasets": [{"name": "x", "manifest": "missing.jsonl"}]}, ["study.yaml", "'datasets[0].manifest'"]),
        ({"colour": "red"}, ["study.yaml", "'colour'", "unknown key"]),
        ({"dimension": "acent"}, ["study.yaml", "'dimension'", "'acent'", "'accent'"]),
    ],
)
def test_bad_study_yaml_is_one_line_exit_2(tmp_path, manifest, change, fragments):
    path = write_study(tmp_path, manifest, [stub("a", 0), stub("b", 1)])
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **change}), encoding="utf-8")
    result = asrfair("study", str(path))
    assert_clean_error(result, 2, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_json_validates_against_its_schema_and_writes_the_study_directory(tmp_path, manifest):
    path = write_study(tmp_path, manifest, [stub("old", 0, 0.3), stub("new", 1, price_per_audio_hour=0.5)])
    result = asrfair("study", str(path), "--json", "--rank-by", "gap")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == SCHEMA == "asrfair.study/1"
    jsonschema.validate(data, json_schema())
    assert data["rank_by"] == "gap" and data["datasets"][0]["leaderboard"][0]["system"] == "new"
    (root,) = (tmp_path / "out").glob("t-*")
    assert json.loads((root / "study.json").read_text()) == data
    assert "new is fairer on accent" in (root / "study.md").read_text()
    new = data["datasets"][0]["leaderboard"][0]
    assert new["cost"] == pytest.approx(0.5 * 360 * 0.5 / 3600)  # 360 half-second clips at 0.5 an hour
    assert "(720 transcribed, 0 from cache)" in result.stderr
    again = asrfair("study", str(path), "--json")
    assert "(0 transcribed, 720 from cache)" in again.stderr
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "schema": "asrfair.study/0"}, json_schema())


def test_to_json_has_no_nan(tmp_path, manifest):
    _, result = study(tmp_path, manifest, [stub("a", 0), stub("b", 1)])
    text = json.dumps(to_json(result), allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["schema"] == SCHEMA


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_study_html_in_headless_chromium(tmp_path, manifest):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency) is not installed")
    systems = [stub("old", 0, 0.3), stub("new", 1, price_per_audio_hour=0.5), stub("newer", 2, price_per_audio_hour=1)]
    path = write_study(tmp_path, manifest, systems)
    result = asrfair("study", str(path))
    assert result.returncode == 0, result.stderr
    (root,) = (tmp_path / "out").glob("t-*")
    page_path = root / "study.html"
    text = page_path.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(page_path.as_uri())
        ranks = page.eval_on_selector_all(
            "table.leaderboard tbody tr", "rows => rows.map(r => [r.dataset.system, r.cells[0].innerText, r.className])"
        )
        # new and newer were served alike: a tie, shown as 1= on shaded rows; old is third
        assert sorted(ranks[:2]) == [["new", "1=", "tie"], ["newer", "1=", "tie"]] and ranks[2] == ["old", "3", ""]
        heat = page.locator("svg.heatmap").first
        assert heat.is_visible() and heat.bounding_box()["width"] > 300
        rows = page.eval_on_selector_all("svg.heatmap text.row", "ts => ts.map(t => t.firstChild.textContent)")
        assert rows[:3] == ["old", "new", "newer"]
        scottish = page.locator("svg.heatmap rect.cell title", has_text="old × scottish").first.text_content()
        assert "old × scottish" in scottish
        pareto = page.locator("svg.pareto")
        assert pareto.count() == 2  # overall WER and cost (a stub is not timed: no speed panel)
        assert page.locator("svg.pareto circle.point.frontier").count() >= 1
        assert pareto.first.bounding_box()["height"] > 100
        claims = page.locator("ul.claims li").all_inner_texts()
        assert any("narrows the accent=scottish gap" in c for c in claims)
        # each pair's dimension heading carries the change between A's own worst and best slices, with its CI
        headings = page.eval_on_selector_all("h4", "hs => hs.map(h => h.textContent)")  # inside closed <details>
        assert any(re.search(r"A's worst − best scottish − \w+: [+-]\d+\.\d pp \[", h) for h in headings), headings
        browser.close()


def test_rtfx_counts_only_what_was_transcribed_and_latency_only_for_remote_backends():
    import pandas as pd

    from harness.transcribe.throughput import throughput

    transcripts = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "status": ["ok", "ok", "ok", "error"],
            "latency_s": [1.0, 3.0, 50.0, 9.0],
            "cached": [False, False, True, False],
        }
    )
    seconds = {"a": 10.0, "b": 20.0, "c": 30.0, "d": 5.0}
    local = throughput(transcripts, seconds, remote=False)
    assert (local.transcripts, local.audio_s, local.processing_s, local.rtfx) == (2, 30.0, 4.0, 7.5)
    assert local.latency_s is None and local.counted == "transcribed"
    recorded = throughput(transcripts, seconds, remote=True, include_cached=True)
    assert recorded.rtfx == pytest.approx(60 / 54) and recorded.latency_s["p50"] == 3.0
    assert throughput(transcripts.assign(cached=True), seconds, remote=False).rtfx is None  # all from cache


def test_every_run_records_its_throughput(tmp_path, manifest):
    runs, _ = study(tmp_path, manifest, [stub("a", 0), stub("b", 1)])
    metrics = json.loads((runs.runs[0].run_dir / "metrics.json").read_text())
    assert metrics["throughput"]["transcripts"] == 360 and metrics["throughput"]["counted"] == "transcribed"
    assert metrics["throughput"]["audio_s"] == pytest.approx(180.0)  # 360 half-second clips
    assert metrics["throughput"]["rtfx"] is None  # the stub records no time
    assert metrics["provenance"]["backend"]["remote"] is False


def test_study_pages_escape_data(tmp_path, make_manifest):
    attack = '<img src=x onerror="alert(1)">'
    records = accent_records(5, 4, accents=("north", attack))
    path = write_study(tmp_path, make_manifest(records), [stub("a", 0), stub("b", 1)], stats={"min_speakers": 3,
                                                                                               "min_words": 50})
    spec = load_study(path)
    result = analyse(spec, run_study(spec, tmp_path / "s"))
    from harness.report.study_html import render_study_html
    from harness.report.study_md import render_study_markdown

    page, md = render_study_html(result), render_study_markdown(result)
    assert attack not in page and "&lt;img src=x onerror=" in page
    assert attack not in md and "&lt;img src=x onerror=" in md
