"""The regression gate: planted regressions fail it, noise does not (false alarms ≤ α over seeds),
unfair comparisons are flagged, and the CLI writes gate.md / gate.json with documented exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xmlschema
from cli import asrfair, assert_clean_error
from conftest import write_config

from harness.config import GateConfig, RunConfig
from harness.decide.gate import CheckId, CheckKind, RunSide, Status, Untestable, load_side, run_gate, save_baseline
from harness.pipeline import prepare, run
from harness.report.gate import print_gate, render_markdown, write_junit

JUNIT_XSD = Path(__file__).parent / "data" / "junit.xsd"  # the Jenkins xUnit plugin's schema; source in its header

ACCENTS = ("north", "south", "east", "west")
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
NO_THRESHOLDS = GateConfig(
    wer_increase=0.0, slice_wer_increase=0.0, gap_increase=0.0, failure_rate_increase=None, bootstrap=0
)


def synthetic_pair(seed: int, planted: dict[str, float] | None = None, speakers: int = 8) -> tuple[RunSide, RunSide]:
    """Two runs of one model family on the same utterances: utterance difficulty varies by accent and
    speaker; each run draws its errors independently (decoding noise), plus ``planted`` extra error
    probability per accent in the candidate."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, accent in enumerate(ACCENTS):
        for s in range(speakers):
            speaker_p = np.clip(0.08 + 0.02 * a + rng.normal(0, 0.03), 0.01, 0.5)
            for u in range(15):
                p = np.clip(speaker_p + rng.normal(0, 0.03), 0.0, 0.9)
                rows.append({"id": f"{accent}-{s}-{u}", "speaker": f"{accent}{s}", "accent": accent, "p": p})
    base = pd.DataFrame(rows).assign(status="ok", ref_words=12)
    extra = base["accent"].map(planted or {}).fillna(0.0)
    sides = []
    for label, p in (("baseline", base["p"]), ("candidate", np.clip(base["p"] + extra, 0, 1))):
        table = base.drop(columns="p").assign(errors=rng.binomial(12, p))
        config = RunConfig(name=label, dataset=Path("m.jsonl"), backend={"name": "stub"}, stats={"min_speakers": 5})
        metrics = {"provenance": {"slices": [{"by": ["accent"]}], "manifest": {"sha256": "same"}, "normalizer": "n"}}
        sides.append(RunSide(label, Path(label), table, metrics, config, label))
    return sides[0], sides[1]


def test_noise_alone_fails_the_gate_at_most_alpha_of_the_time():
    """Thresholds at zero, so only the statistics stand between noise and a failed build."""
    seeds = range(60)
    false_alarms = sum(
        not run_gate(*synthetic_pair(seed), NO_THRESHOLDS.model_copy(update={"seed": seed})).passed for seed in seeds
    )
    assert false_alarms / len(seeds) <= 1 - NO_THRESHOLDS.confidence


def test_a_planted_regression_fails_naming_its_slice():
    result = run_gate(*synthetic_pair(1, planted={"west": 0.06}, speakers=20), GateConfig())
    assert not result.passed
    names = {c.name for c in result.regressions}
    assert "accent=west WER" in names
    assert not any("north" in n or "south" in n or "east" in n for n in names)
    west = next(c for c in result.checks if c.name == "accent=west WER")
    assert west.delta == pytest.approx(0.06, abs=0.02) and west.ci[0] > 0


def test_gaps_read_in_percentage_points():
    """A gap is a difference of two WERs: "pp" in gate.md, the terminal and compare, never "%"."""
    from rich.console import Console

    from harness.report.gate import print_comparison

    result = run_gate(*synthetic_pair(1, planted={"west": 0.06}, speakers=20), GateConfig())
    (row,) = [line for line in render_markdown(result).splitlines() if line.startswith("| **accent gap")]
    cells = [c.strip() for c in row.split("|")[2:5]]
    assert all(c.endswith(" pp") or "pp [" in c for c in cells) and "%" not in row, row
    terminal = Console(record=True, width=200)
    overall = {"A": 0.1, "B": 0.12, "delta": 0.02, "delta_ci": [0.01, 0.03]}
    gap = {"A": 0.05, "B": 0.09, "change": 0.04, "change_ci": [0.01, 0.07]}
    comparison = {
        "A": {"run_id": "a", "backend": "stub"},
        "B": {"run_id": "b", "backend": "stub"},
        "shared_utterances": 10,
        "confidence": 0.95,
        "overall": overall,
        "dimensions": [{"name": "accent", "slices": [], "gap": gap}],
        "warnings": [],
    }
    print_comparison(comparison, terminal)
    assert "gap (worst − best): 5.0 pp → 9.0 pp, change +4.0 pp" in terminal.export_text()


def test_thresholds_decide_what_is_big_enough():
    """The same real change fails at a 2 pp threshold and passes at 10 pp."""
    baseline, candidate = synthetic_pair(2, planted={"west": 0.06}, speakers=20)
    assert not run_gate(baseline, candidate, GateConfig()).passed
    lenient = GateConfig(slice_wer_increase=0.10, gap_increase=0.10, wer_increase=0.10)
    result = run_gate(baseline, candidate, lenient)
    assert result.passed
    west = next(c for c in result.checks if c.name == "accent=west WER")
    assert west.status == "pass" and west.reason == "within the threshold"


def test_an_improvement_is_reported_and_passes():
    """Better for the worst-served accent: an improvement, and the gap narrows. (Better for the
    best-served one would widen the gap, and the gate would rightly fail it as less fair.)"""
    baseline, candidate = synthetic_pair(3, planted={"west": -0.05}, speakers=20)
    result = run_gate(baseline, candidate, GateConfig())
    assert result.passed
    assert any(c.name == "accent=west WER" and c.status == "improved" for c in result.checks)


def test_checks_are_keyed_by_typed_ids():
    result = run_gate(*synthetic_pair(1, planted={"west": 0.06}, speakers=20), GateConfig())
    ids = {c.id for c in result.checks}
    assert CheckId(CheckKind.SLICE_WER, "accent", "west") in ids and CheckId(CheckKind.GAP, "accent") in ids
    west = next(c for c in result.checks if c.id == CheckId(CheckKind.SLICE_WER, "accent", "west"))
    assert west.name == "accent=west WER" and west.p_value is not None and west.status == Status.REGRESSION


def test_an_untestable_change_beyond_the_threshold_is_skipped_and_warned(tmp_path):
    """6 speakers per accent, slice checks only: the smallest sign-flip p, 2^-6, times the 4 checks of
    the Holm family exceeds α, so a planted +10 pp on one accent cannot be called real. It is no passed
    check: JUnit <skipped> with the reason, a ⚠ line in gate.md and the terminal; ``untestable: fail``
    fails the gate."""
    from rich.console import Console

    baseline, candidate = synthetic_pair(4, planted={"west": 0.10}, speakers=6)
    slices_only = GateConfig(wer_increase=None, gap_increase=None, failure_rate_increase=None)
    result = run_gate(baseline, candidate, slices_only)
    west = next(c for c in result.checks if c.id == CheckId(CheckKind.SLICE_WER, "accent", "west"))
    assert west.status == Status.NOT_TESTED and west.untestable == Untestable.TOO_FEW_SPEAKERS
    assert west.beyond_threshold and west.delta > 0.02
    assert result.passed and result.untested_changes == [west]

    md = render_markdown(result)
    assert "untested change beyond the threshold" in md.splitlines()[0]
    assert "**⚠ Changed beyond the threshold, but too few speakers to test it:**" in md
    assert "| **accent=west WER** |" in md and "⚠ untested change |" in md
    terminal = Console(record=True, width=200)
    print_gate(result, terminal)
    shown = terminal.export_text()
    assert "⚠ untested change" in shown
    assert "⚠ untested: accent=west WER changed beyond the threshold, but too few speakers" in shown

    junit = tmp_path / "gate-junit.xml"
    write_junit(result, junit)
    xmlschema.XMLSchema(JUNIT_XSD).validate(junit)
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "accent=west WER")
    skipped = case.find("skipped")
    assert skipped is not None and case.find("failure") is None
    assert "speakers cannot tell any change from noise" in skipped.get("message")

    strict = run_gate(baseline, candidate, slices_only.model_copy(update={"untestable": "fail"}))
    assert not strict.passed and strict.fails_on_untested and not strict.regressions
    assert render_markdown(strict).startswith("## ❌ asrfair gate failed: 1 untested change (gate.untestable: fail)")
    write_junit(strict, junit)
    xmlschema.XMLSchema(JUNIT_XSD).validate(junit)
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "accent=west WER")
    assert case.find("failure").get("type") == "untested"


def test_cli_untestable_fail_exits_1_with_the_reason(tmp_path, make_manifest):
    """Five speakers per accent and slice thresholds only: a planted Scottish rise is beyond the
    threshold but untestable. ``gate.untestable: warn`` (default) passes with a warning; ``fail``
    exits 1 naming the slice and the setting."""
    records = [
        {"id": f"{a}-{s}-{n}", "text": " ".join(WORDS[(n + k) % 10] for k in range(10)), "speaker": f"{a}{s}"}
        | {"accent": a}
        for a in ("scottish", "welsh", "general")
        for s in range(5)
        for n in range(6)
    ]
    manifest = make_manifest(records)
    only_slices = {"wer_increase": None, "gap_increase": None, "failure_rate_increase": None}
    runs = {}
    for name, gate, backend in (
        ("warn", only_slices, {}),
        ("fail", {**only_slices, "untestable": "fail"}, {}),
        ("worse", only_slices, {"error_rates": {"accent": {"scottish": 0.2}}}),
    ):
        config = write_config(
            tmp_path / f"{name}.yaml",
            manifest,
            {"name": "stub", "default_rate": 0.05, **backend},
            name=name,
            gate=gate,
            stats={"min_speakers": 5, "min_words": 10},
        )
        runs[name] = run(prepare(load_config_at(config))).paths.root
    warned = asrfair("gate", str(runs["worse"]), "--baseline", str(runs["warn"]))
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "⚠ untested: accent=scottish WER changed beyond the threshold" in warned.stderr
    failed = asrfair("gate", str(runs["worse"]), "--baseline", str(runs["fail"]))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "gate failed:" in failed.stderr and "accent=scottish WER" in failed.stderr
    assert "gate.untestable is fail" in failed.stderr
    report = json.loads((runs["worse"] / "gate.json").read_text())
    scottish = next(c for c in report["checks"] if c["name"] == "accent=scottish WER")
    assert scottish["status"] == "not tested" and scottish["untestable"] == "too_few_speakers"
    assert report["untested_changes"] == 1 and not report["passed"]


@pytest.fixture
def manifest(make_manifest):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    records = [
        {
            "id": f"{a}-{s}-{n}",
            "text": " ".join(words[(n + k) % 10] for k in range(10)),
            "speaker": f"{a}{s}",
            "accent": a,
        }
        for a in ("scottish", "welsh", "general")
        for s in range(12)
        for n in range(6)
    ]
    return make_manifest(records)


def stub_run(tmp_path: Path, manifest: Path, name: str, **backend: object) -> Path:
    config = write_config(tmp_path / f"{name}.yaml", manifest, {"name": "stub", "default_rate": 0.05, **backend})
    return run(prepare(load_config_at(config))).paths.root


def load_config_at(path: Path):
    from harness.config import load_config

    return load_config(path)


def test_cli_gate_fails_on_a_planted_regression_and_passes_on_the_same_model(tmp_path, manifest):
    base_run = stub_run(tmp_path, manifest, "base")
    baseline = save_baseline(base_run, tmp_path / "baselines" / "nightly.json")
    assert (tmp_path / "baselines" / "nightly.utterances.parquet").is_file()

    worse = stub_run(tmp_path, manifest, "worse", error_rates={"accent": {"scottish": 0.05}})
    result = asrfair("gate", str(worse), "--baseline", str(baseline))
    assert result.returncode == 1, result.stderr
    gate = json.loads((worse / "gate.json").read_text())
    regressed = {c["name"] for c in gate["checks"] if c["status"] == "regression"}
    assert "accent=scottish WER" in regressed and not any("welsh" in n or "general" in n for n in regressed)
    md = (worse / "gate.md").read_text()
    assert md.startswith("## ❌ asrfair gate failed") and "**accent=scottish WER**" in md

    same = stub_run(tmp_path, manifest, "same")
    passed = asrfair("gate", str(same), "--baseline", str(baseline))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "same backend fingerprint" in json.loads((same / "gate.json").read_text())["warnings"][0]


def test_unfair_comparisons_are_flagged(tmp_path, manifest, make_manifest):
    base_run = stub_run(tmp_path, manifest, "base")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][::2]  # half the utterances
    other = make_manifest(rows, name="half.jsonl")
    config = write_config(tmp_path / "half.yaml", other, {"name": "stub", "default_rate": 0.05}, normalizer="basic")
    half_run = run(prepare(load_config_at(config))).paths.root
    result = run_gate(load_side(base_run, "baseline"), load_side(half_run, "candidate"), GateConfig(), force=True)
    text = " ".join(result.warnings)
    assert "manifests differ" in text and "scored under whisper-english@1 in the baseline and basic@1" in text
    assert result.only_in_baseline == 108 and result.shared_utterances == 108


def test_more_failures_fail_the_gate(tmp_path, manifest):
    base_run = stub_run(tmp_path, manifest, "base")
    flaky = stub_run(tmp_path, manifest, "flaky", failure_rates={"accent": {"welsh": 0.2}})
    result = run_gate(load_side(base_run, "baseline"), load_side(flaky, "candidate"), GateConfig())
    failure = next(c for c in result.checks if c.name == "failure rate")
    assert failure.status == "regression" and failure.candidate > 0.03


def test_runs_with_simulated_conditions_are_paired_per_condition(tmp_path, manifest):
    conditions = [{"name": "clean"}, {"name": "phone", "transforms": [{"type": "telephone"}]}]
    runs = []
    for name, rules in (("base", []), ("worse", [{"when": {"condition": "phone", "accent": "welsh"}, "rate": 0.08}])):
        path = write_config(
            tmp_path / f"{name}.yaml",
            manifest,
            {"name": "stub", "default_rate": 0.05, "error_rules": rules},
            conditions=conditions,
        )
        runs.append(run(prepare(load_config_at(path))).paths.root)
    result = run_gate(load_side(runs[0], "baseline"), load_side(runs[1], "candidate"), GateConfig())
    assert result.shared_utterances == 2 * 216
    regressed = {c.name for c in result.regressions}
    assert "accent=welsh WER" in regressed and "condition=phone WER" in regressed
    assert not any("scottish" in n or "clean" in n for n in regressed)


def test_bad_baseline_is_a_one_line_error(tmp_path, manifest):
    run_dir = stub_run(tmp_path, manifest, "base")
    assert_clean_error(asrfair("gate", str(run_dir), "--baseline", str(tmp_path / "nope.json")), 2, "nope.json")
    (tmp_path / "other.json").write_text('{"schema": "x"}')
    assert_clean_error(
        asrfair("gate", str(run_dir), "--baseline", str(tmp_path / "other.json")), 2, "not an asrfair baseline"
    )
