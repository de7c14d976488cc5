"""``asrfair gate --junit``: the XML that CI report tools read validates against the Jenkins xUnit plugin's
JUnit schema (tests/data/junit.xsd), has one test case per gate check, and fails exactly the regressed ones."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from cli import asrfair
from conftest import write_config, write_jsonl, write_tone

from harness.config import load_config
from harness.pipeline import prepare, run

SCHEMA = Path(__file__).parent / "data" / "junit.xsd"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
RANKED = ("scottish", "welsh", "general")  # 10 speakers each: ranked, and enough for the sign-flip test
THIN = "irish"  # 2 speakers: below min_speakers, so its check is "not tested" (a JUnit <skipped>)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved baseline and three stub runs of the same manifest: the baseline model, the same model with
    other decoding noise (another stub seed), and one that gives Scottish words an extra 5 % error
    probability (Scottish WER +3.9 pp; overall WER and the accent gap rise with it)."""
    root = tmp_path_factory.mktemp("gate-junit")
    tone = write_tone(root / "tone.wav")
    records = [
        {
            "id": f"{accent}-{s}-{n}",
            "audio": tone.name,
            "text": " ".join(WORDS[(n + k) % 10] for k in range(10)),
            "speaker": f"{accent}{s}",
            "accent": accent,
        }
        for accent, speakers in [*((a, 10) for a in RANKED), (THIN, 2)]
        for s in range(speakers)
        for n in range(12)
    ]
    manifest = write_jsonl(root / "manifest.jsonl", records)
    backends = {
        "base": {"seed": 0},
        "noise": {"seed": 1},
        "worse": {"seed": 0, "error_rates": {"accent": {"scottish": 0.05}}},
    }
    made = {}
    for name, options in backends.items():
        path = write_config(
            root / f"{name}.yaml",
            manifest,
            {"name": "stub", "default_rate": 0.05, **options},
            name=name,
            stats={"min_speakers": 5, "min_words": 100},
        )
        made[name] = run(prepare(load_config(path))).paths.root
    baseline = root / "baselines" / "nightly.json"
    saved = asrfair("baseline", "set", str(made["base"]), "-o", str(baseline))
    assert saved.returncode == 0, saved.stderr
    return {**made, "baseline": baseline}


def gate(run_dir: Path, baseline: Path, junit: Path) -> tuple[int, dict, ET.Element]:
    result = asrfair("gate", str(run_dir), "--baseline", str(baseline), "--junit", str(junit))
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    xmlschema.XMLSchema(SCHEMA).validate(junit)  # raises with the offending element and rule
    return result.returncode, json.loads((run_dir / "gate.json").read_text()), ET.parse(junit).getroot()


@pytest.fixture(scope="module")
def worse(runs, tmp_path_factory) -> tuple[int, dict, ET.Element]:
    """The gate on the planted regression, run once for the tests that read its JUnit XML."""
    return gate(runs["worse"], runs["baseline"], tmp_path_factory.mktemp("worse") / "gate-junit.xml")


def cases(root: ET.Element) -> dict[str, ET.Element]:
    (suite,) = root.iter("testsuite")
    found = suite.findall("testcase")
    assert int(suite.get("tests")) == len(found)
    return {case.get("name"): case for case in found}


def test_a_planted_regression_fails_exactly_its_checks(worse):
    code, report, root = worse
    assert code == 1

    by_name = cases(root)
    assert list(by_name) == [c["name"] for c in report["checks"]]  # one test case per check, same order
    regressed = {c["name"] for c in report["checks"] if c["status"] == "regression"}
    failed = {name for name, case in by_name.items() if case.find("failure") is not None}
    assert failed == regressed
    assert "accent=scottish WER" in failed
    assert not any(accent in name for name in failed for accent in ("welsh", "general", THIN))
    (suite,) = root.iter("testsuite")
    assert int(suite.get("failures")) == len(failed) and int(suite.get("errors")) == 0

    scottish = by_name["accent=scottish WER"].find("failure")
    assert scottish.get("type") == "regression"
    assert "above the threshold" in scottish.get("message") and "Holm" in scottish.get("message")

    thin = by_name[f"accent={THIN} WER"]
    assert thin.find("skipped") is not None and thin.find("failure") is None


def test_the_failure_message_names_the_slice(worse):
    _, _, root = worse
    failure = cases(root)["accent=scottish WER"].find("failure")
    assert "scottish" in failure.get("message")


def test_the_same_model_with_other_decoding_noise_passes(runs, tmp_path):
    code, report, root = gate(runs["noise"], runs["baseline"], tmp_path / "gate-junit.xml")
    assert code == 0, report["checks"]
    by_name = cases(root)
    assert list(by_name) == [c["name"] for c in report["checks"]]
    assert not any(case.find("failure") is not None for case in by_name.values())
    (suite,) = root.iter("testsuite")
    assert suite.get("failures") == "0"
