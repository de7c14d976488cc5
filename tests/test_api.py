"""harness.score_frame: a DataFrame scored by slice, with the CLI's numbers and the reports' words."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import pytest
import yaml
from cli import asrfair
from conftest import REPO

import harness
from harness import InputError, SliceReport, score_frame
from harness.scoring.normalisers import get_normalizer

WORDS = ["the", "birch", "canoe", "slid", "on", "the", "smooth", "planks", "of", "the", "old", "pier"]
DEMO_TAGS = ["accent", "dialect", "device", "noise", "voice", "language"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``asrfair run`` through the real CLI on configs/demo-stub.yaml (the demo corpus, stub
    backend), with a second normaliser scored beside the headline (the sensitivity view)."""
    out = tmp_path_factory.mktemp("runs")
    config = yaml.safe_load((REPO / "configs" / "demo-stub.yaml").read_text(encoding="utf-8"))
    config["dataset"] = str(REPO / "datasets" / "demo" / "manifest.jsonl")
    config["slices"] = str(REPO / "configs" / "slices" / "default.yaml")
    config["stats"]["normalizers"] = ["dialect-preserving"]
    (out / "demo-stub.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = asrfair("run", str(out / "demo-stub.yaml"), "-o", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.glob("demo-stub-*")
    return run_dir


def simulate(
    rates: dict[str, float], speakers: int = 8, per_speaker: int = 12, spread: float = 0.5, seed: int = 1
) -> pd.DataFrame:
    """Utterances of ``speakers`` speakers per accent: each speaker's own error rate is the accent's
    times a log-normal speaker effect (sd ``spread``), each word substituted with that probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for accent, rate in rates.items():
        for s in range(speakers):
            own = min(0.95, rate * float(np.exp(rng.normal(0, spread) - spread**2 / 2)))
            for u in range(per_speaker):
                ref = WORDS[u % 4 :]
                hyp = [w if rng.random() > own else "x" for w in ref]
                rows.append(
                    {
                        "reference": " ".join(ref).capitalize() + ".",
                        "hypothesis": " ".join(hyp),
                        "speaker": f"{accent}-{s}",
                        "accent": accent,
                        "device": "phone" if s % 2 else "laptop",
                    }
                )
    return pd.DataFrame(rows)


def test_numbers_equal_the_cli_run_of_the_same_utterances(demo_run: Path) -> None:
    metrics = json.loads((demo_run / "metrics.json").read_text())
    config = yaml.safe_load((demo_run / "config.yaml").read_text())  # the run's resolved settings
    table = pd.read_parquet(demo_run / "utterances.parquet")
    given = table[["id", "speaker", *DEMO_TAGS, "reference", "hypothesis", "audio_s"]]  # what a user has
    report = score_frame(
        given,
        utterance_id="id",
        duration="audio_s",
        tags=DEMO_TAGS,
        slices=config["slices"],
        normalizer=config["normalizer"],
        stats=config["stats"],
        runaway=config["runaway"],
        card=metrics["provenance"]["dataset_card"]["path"],
    )
    assert metrics["normalization"] is not None  # the sensitivity view is compared too
    ours = report.to_dict()
    assert set(ours) == set(metrics)
    for key in metrics.keys() - {"provenance", "throughput"}:  # a frame was never transcribed: no RTFx
        assert ours[key] == metrics[key], key
    for key in ("normalizer", "normalizer_definition", "scorer", "counts", "slices"):
        assert ours["provenance"][key] == metrics["provenance"][key], key
    overall = metrics["aggregates"]
    assert report.overall.pooled.wer == overall["pooled"]["overall"]["wer"]
    assert [report.overall.pooled.low, report.overall.pooled.high] == overall["pooled"]["overall"]["wer_ci"]
    assert report.overall.speaker_mean.wer == overall["speaker-mean"]["overall"]["wer"]
    assert report.overall.utterance_mean.wer == overall["utterance-mean"]["overall"]["wer"]
    for dim in metrics["dimensions"]:
        frame = report.by_slice[dim["name"]]
        assert frame["slice"].tolist() == [s["label"] for s in dim["slices"]]
        assert frame["wer"].tolist() == [s["wer"] for s in dim["slices"]]
        assert frame[["low", "high"]].values.tolist() == [s["wer_ci"] or [None, None] for s in dim["slices"]]
        assert frame["speakers"].tolist() == [s["speakers"] for s in dim["slices"]]
        assert frame["significantly_worse"].tolist() == [s["significantly_worse"] for s in dim["slices"]]
        row = report.disparity.loc[dim["name"]]
        worst = None if pd.isna(row["worst"]) else row["worst"]
        assert worst == dim["disparity"]["worst"]
        if dim["disparity"]["gap_ci"]:
            assert [row["gap_low"], row["gap_high"]] == dim["disparity"]["gap_ci"]
    # the stub plants +20 % word errors on Scottish speech: the worst slice, with the run's own verdict
    # (with 3 speakers an accent the simultaneous gap interval reaches 0: "no detectable gap")
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert report.disparity.loc["accent", "worst"] == "scottish"
    expected = "gap detected" if accent["disparity"]["detected"] else "no detectable gap"
    assert report.disparity.loc["accent", "verdict"] == expected


def test_pooled_wer_equals_jiwer_on_the_normalised_text() -> None:
    df = simulate({"a": 0.05, "b": 0.2}, speakers=4, per_speaker=6)
    df.loc[3, "hypothesis"] = "The birch, canoe!  SLID"  # case, punctuation and spacing: the normaliser's job
    df.loc[7, "hypothesis"] = ""  # nothing heard: every reference word deleted
    report = score_frame(df, normalizer="whisper-english")
    norm = get_normalizer("whisper-english")
    refs, hyps = [norm(t) for t in df["reference"]], [norm(t) for t in df["hypothesis"]]
    assert report.overall.pooled.wer == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    by_accent = report.by_slice["accent"].set_index("slice")
    for accent, rows in df.groupby("accent"):
        expected = jiwer.wer([norm(t) for t in rows["reference"]], [norm(t) for t in rows["hypothesis"]])
        assert by_accent.loc[accent, "wer"] == pytest.approx(expected, abs=1e-12)
    raw = score_frame(df, normalizer="none")
    assert raw.overall.pooled.wer == pytest.approx(jiwer.wer(df["reference"].tolist(), df["hypothesis"].tolist()))


def test_a_planted_gap_is_found_and_starred() -> None:
    report = score_frame(simulate({"general": 0.05, "welsh": 0.06, "scottish": 0.2}, seed=3), tags=["accent"])
    row = report.disparity.loc["accent"]
    assert (row["worst"], row["best"] in {"general", "welsh"}) == ("scottish", True)
    assert row["detected"] and row["gap_low"] > 0 and row["verdict"] == "gap detected"
    assert row["significant"] and row["p_holm"] < 0.05
    frame = report.by_slice["accent"].set_index("slice")
    assert frame.loc["scottish", "significantly_worse"] and not frame.loc["general", "significantly_worse"]
    assert frame.loc["scottish", "low"] < frame.loc["scottish", "wer"] < frame.loc["scottish", "high"]
    assert "Worst scottish" in row["sentence"]


def test_a_null_frame_claims_no_gap() -> None:
    """Every accent holds the very same speakers' utterances (relabelled): any gap is zero."""
    one = simulate({"a": 0.1}, speakers=8, seed=5)
    copies = [one.assign(accent=accent, speaker=one["speaker"] + accent) for accent in ("a", "b", "c")]
    report = score_frame(pd.concat(copies, ignore_index=True), tags=["accent"])
    row = report.disparity.loc["accent"]
    assert row["gap"] == 0 and row["gap_low"] == 0 and not row["detected"]
    assert row["verdict"] == "no detectable gap" and not row["significant"]
    assert not report.by_slice["accent"]["significantly_worse"].any()
    assert row["sentence"].startswith("No detectable gap")


def test_slices_as_a_list_and_the_headline_aggregate() -> None:
    df = simulate({"a": 0.05, "b": 0.2}, speakers=6)
    report = score_frame(df, slices=["accent", ("accent", "device"), {"by": "device", "reference": "laptop"}],
                         aggregate="speaker-mean", min_speakers=2, min_words=20)
    assert list(report.by_slice) == ["accent", "accent × device", "device"]
    both = report.by_slice["accent × device"]
    assert set(both.columns) >= {"accent", "device", "slice", "wer", "low", "high"}
    assert report.overall.aggregate == "speaker-mean"
    assert report.overall.headline == report.overall.speaker_mean
    assert report.by_slice["accent"]["wer"].tolist() == report.by_slice["accent"]["speaker_mean_wer"].tolist()


def test_a_null_hypothesis_is_a_failure_not_an_empty_transcript() -> None:
    df = simulate({"a": 0.1, "b": 0.1}, speakers=3, per_speaker=4)
    df.loc[0, "hypothesis"] = None
    report = score_frame(df, tags=["accent"])
    assert report.overall.failed == 1 and report.overall.utterances == len(df) - 1
    assert report.to_dict()["failures"]["count"] == 1
    assert report.by_slice["accent"].set_index("slice").loc["a", "failed"] == 1


@pytest.mark.parametrize(
    ("change", "kwargs", "fragments"),
    [
        (lambda df: df.drop(columns="reference"), {}, ["no column 'reference'", "reference='<column>'"]),
        (lambda df: df, {"hypothesis": "hyp"}, ["no column 'hyp'", "hypothesis='<column>'"]),
        (lambda df: df.drop(columns="speaker"), {}, ["no speaker column 'speaker'", "speakers are the unit"]),
        (lambda df: df.iloc[:0], {}, ["no rows"]),
        (lambda df: df.assign(speaker=None), {}, ["speaker column 'speaker' is empty", "speakers are the unit"]),
        (lambda df: df, {"tags": ["accnt"]}, ["'accnt'", "not a column"]),
        (lambda df: df, {"slices": ["acent"]}, ["'acent'", "did you mean 'accent'"]),
        (lambda df: df, {"seed": -1}, ["score_frame(stats)", "seed"]),
        (lambda df: df, {"aggregate": "median"}, ["score_frame(stats)", "aggregate"]),
        (lambda df: df, {"normalizer": "whisper-englsh"}, ["score_frame(normalizer=)", "whisper-englsh"]),
        (lambda df: df.assign(reference=[None, *df["reference"][1:]]), {}, ["row 0 has no reference"]),
        (lambda df: df.assign(status="ok"), {"tags": ["status"]}, ["tag 'status'", "rename it"]),
        (lambda df: df, {"utterance_id": "device"}, ["'laptop' appears twice", "unique"]),
    ],
)
def test_bad_input_is_one_line_naming_the_column_and_the_fix(change, kwargs, fragments) -> None:
    df = simulate({"a": 0.1, "b": 0.1}, speakers=2, per_speaker=3)
    with pytest.raises(InputError) as caught:
        score_frame(change(df), **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


class _Page(HTMLParser):
    """The page's title, table cells and open/close balance (the stdlib parser; Chromium is
    test_report_html.py's)."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "source", "col", "wbr", "area", "base", "embed"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.title = ""
        self.cells: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag in ("td", "th"):
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID:
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>"
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack[-2:] == ["head", "title"]:  # the page's, not an SVG's
            self.title += data
        if {"td", "th"} & set(self.stack):
            self.cells[-1] += data


def test_to_html_and_to_markdown_render_the_numbers(tmp_path: Path) -> None:
    report = score_frame(simulate({"general": 0.05, "scottish": 0.2}, seed=3), tags=["accent"], name="notebook")
    target = tmp_path / "out" / "report.html"
    page = report.to_html(target)
    assert target.read_text(encoding="utf-8") == page
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == []  # every element closed
    assert parser.title.strip() == "asrfair report: notebook"
    cells = [c.strip() for c in parser.cells]
    for s in report.by_slice["accent"].itertuples():  # each slice's row: label (★), WER [interval]
        assert s.significantly_worse == (f"{s.slice} ★" in cells) and (s.slice in cells or f"{s.slice} ★" in cells)
        assert f"{100 * s.wer:.1f}% [{100 * s.low:.1f}, {100 * s.high:.1f}]" in cells
    text = " ".join(parser.text)
    pooled = f"{100 * report.overall.pooled.wer:.1f}%"
    assert pooled in text and "pandas DataFrame" in text
    markdown = report.to_markdown()
    assert markdown.startswith("# asrfair report: notebook") and pooled in markdown


def test_the_same_seed_gives_the_same_result() -> None:
    df = simulate({"a": 0.05, "b": 0.15}, seed=9)
    first, second = score_frame(df, seed=7), score_frame(df, seed=7)
    for name, frame in first.by_slice.items():
        pd.testing.assert_frame_equal(frame, second.by_slice[name])
    pd.testing.assert_frame_equal(first.disparity, second.disparity)
    assert first.overall == second.overall
    one, two = first.to_dict(), second.to_dict()
    for blob in (one, two):
        del blob["provenance"]["created_utc"]
    assert one == two and one["stats"]["seed"] == 7


def test_the_result_is_typed_frozen_and_exported_lazily() -> None:
    report = score_frame(simulate({"a": 0.1, "b": 0.1}, speakers=3, per_speaker=3), tags=["accent"])
    assert isinstance(report, SliceReport) and "score_frame" in harness.__all__
    with pytest.raises(AttributeError):
        report.overall = None  # type: ignore[misc]
    fresh = subprocess.run(
        [sys.executable, "-c", "import sys, harness; print('pandas' in sys.modules, 'harness.api' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    assert fresh.stdout.split() == ["False", "False"]


def test_default_tags_are_the_other_columns_and_an_id_column_names_the_utterances() -> None:
    df = simulate({"a": 0.1, "b": 0.1}, speakers=3, per_speaker=3)
    df.insert(0, "id", [f"utt-{i}" for i in range(len(df))])
    report = score_frame(df.assign(status="done"))  # a column the table uses itself is no tag
    assert list(report.by_slice) == ["accent", "device"]
    assert report.table["id"].tolist() == df["id"].tolist()
