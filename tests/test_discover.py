"""Bias bounties: the search finds a planted intersection (and not its parents), reports nothing on
null data more often than the nominal FDR allows, and its finding files verify on any run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from cli import asrfair, assert_clean_error
from conftest import write_config

from harness.config import load_config
from harness.pipeline import prepare, rescore, run
from harness.stats.discover import DiscoverOptions, discover, simulate

TAGS = {"accent": 5, "region": 4, "l1": 4, "device": 3, "noise": 3, "mic": 2}
SPEAKER_TAGS = ("accent", "region", "l1")
PLANTED = {"accent": "v1", "region": "v2", "device": "v0"}


def test_a_planted_three_way_intersection_is_found_first_and_its_parents_are_not_reported():
    table = simulate(
        np.random.default_rng(0),
        speakers=800,
        utterances=24,
        tags=TAGS,
        speaker_tags=SPEAKER_TAGS,
        planted=PLANTED,
        lift=0.2,
    )
    result = discover(table, DiscoverOptions(min_speakers=5, min_words=100, bootstrap=300))
    assert result.findings, result
    first = result.findings[0]
    assert first.conditions == PLANTED
    assert first.confirmation.difference > 0.1 and first.confirmation.difference_ci[0] > 0
    reported = [f.conditions for f in result.findings]
    for parent in (
        {"accent": "v1", "region": "v2"},
        {"accent": "v1", "device": "v0"},
        {"region": "v2", "device": "v0"},
    ):
        assert parent not in reported
    assert result.candidates > 900  # every conjunction of up to 3 tags that met support was tested


def test_a_confirmed_parent_carried_by_its_child_is_pruned():
    """A strong planted cell makes its parent look worse too; the parent is confirmed, then
    pruned because without the child it is no worse than the rest."""
    tags = {"accent": 4, "region": 4, "device": 3, "noise": 3}
    planted = {"accent": "v1", "region": "v2", "device": "v0"}
    table = simulate(
        np.random.default_rng(0), speakers=300, utterances=20, tags=tags, speaker_tags=("accent", "region"),
        planted=planted, lift=0.25,
    )  # fmt: skip
    result = discover(table, DiscoverOptions(min_speakers=5, min_words=100, bootstrap=0))
    assert [f.conditions for f in result.findings] == [planted]
    pruned = {p["subgroup"]: p["reason"] for p in result.pruned}
    assert pruned["accent=v1 ∧ region=v2"].startswith("carried by accent=v1 ∧ region=v2 ∧ device=v0")


def test_on_null_data_findings_are_rarer_than_the_nominal_fdr():
    """No planted effect, 40 seeds: every reported finding is false, so the share of runs that
    report any is the family-wise error rate, which BH on both halves keeps below the FDR."""
    fdr, runs_with_findings = 0.1, 0
    for seed in range(40):
        table = simulate(np.random.default_rng(seed), speakers=160, utterances=16, tags=TAGS, speaker_tags=SPEAKER_TAGS)
        result = discover(table, DiscoverOptions(min_speakers=5, min_words=80, fdr=fdr, bootstrap=0, seed=seed))
        runs_with_findings += bool(result.findings)
    assert runs_with_findings / 40 <= fdr


def test_a_general_effect_is_reported_once_at_its_own_level():
    table = simulate(
        np.random.default_rng(1), speakers=300, utterances=20, tags=TAGS, speaker_tags=SPEAKER_TAGS,
        planted={"accent": "v3"}, lift=0.1,
    )  # fmt: skip
    result = discover(table, DiscoverOptions(min_speakers=5, min_words=100, bootstrap=0))
    assert [f.conditions for f in result.findings][:1] == [{"accent": "v3"}]
    assert all("accent" not in f.conditions or f.conditions == {"accent": "v3"} for f in result.findings)


@pytest.fixture
def planted_run(tmp_path, make_manifest):
    """A stub run: 4 accents × 3 regions × 6 speakers, 10 utterances each on phone and laptop, with
    one accent × region × device cell made much worse."""
    records = [
        {
            "id": f"{a}-{r}-{s}-{n}",
            "text": "alpha bravo charlie delta echo foxtrot golf hotel",
            "speaker": f"{a}{r}{s}",
            "accent": f"a{a}",
            "region": f"r{r}",
            "device": ("phone", "laptop")[n % 2],
        }
        for a in range(4)
        for r in range(3)
        for s in range(6)
        for n in range(10)
    ]
    backend = {
        "name": "stub",
        "default_rate": 0.05,
        "error_rules": [{"when": {"accent": "a1", "region": "r2", "device": "phone"}, "rate": 0.6}],
    }
    stats = {"min_speakers": 3, "min_words": 40, "bootstrap": 200, "permutations": 100}
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend, stats=stats)
    return run(prepare(load_config(config))), config


def test_cli_discover_writes_findings_reports_and_they_verify(planted_run, tmp_path):
    outcome, config = planted_run
    root = outcome.paths.root
    shown = asrfair("discover", str(root), "--out", str(tmp_path / "findings"))
    assert shown.returncode == 0, shown.stderr
    assert "accent=a1 ∧ region=r2 ∧ device=phone" in shown.stdout
    files = sorted((tmp_path / "findings").glob("*.yaml"))
    assert len(files) == 1
    finding = yaml.safe_load(files[0].read_text())
    assert finding["subgroup"] == {"accent": "a1", "region": "r2", "device": "phone"}
    assert finding["slice"]["where"] == {"accent": ["a1"], "region": ["r2"], "device": ["phone"]}
    assert finding["found_on"]["dataset"]["sha256"] == outcome.metrics["provenance"]["manifest"]["sha256"]
    assert finding["found_on"]["backend"]["id"] == outcome.metrics["provenance"]["backend"]["id"]
    assert finding["method"]["seed"] == 0 and finding["estimate"]["difference_ci"][0] > 0
    block = json.loads((root / "discovery.json").read_text())
    assert block["findings"][0]["label"] == "accent=a1 ∧ region=r2 ∧ device=phone"
    assert "## Discovered subgroups" in (root / "report.md").read_text()
    assert "Discovered subgroups" in (root / "report.html").read_text()

    holds = asrfair("verify", str(files[0]), "--run", str(root))
    assert holds.returncode == 0, holds.stdout + holds.stderr
    assert "holds" in holds.stdout and "claimed:" in holds.stdout and "now:" in holds.stdout
    via_config = asrfair("verify", str(files[0]), "--config", str(config), "--json")
    assert via_config.returncode == 0 and json.loads(via_config.stdout)["holds"] is True


def test_a_finding_that_does_not_hold_on_a_fixed_model_exits_1(planted_run, tmp_path, make_manifest):
    outcome, config = planted_run
    asrfair("discover", str(outcome.paths.root), "--out", str(tmp_path / "findings"))
    (finding,) = (tmp_path / "findings").glob("*.yaml")
    fixed = yaml.safe_load(config.read_text())
    fixed["backend"] = {"name": "stub", "default_rate": 0.05, "seed": 3}  # the model owner's fix
    fixed_config = tmp_path / "fixed.yaml"
    fixed_config.write_text(yaml.safe_dump(fixed))
    verdict = asrfair("verify", str(finding), "--config", str(fixed_config), "--json")
    assert verdict.returncode == 1, verdict.stderr
    data = json.loads(verdict.stdout)
    assert data["holds"] is False and data["now"]["difference"] < data["claimed"]["difference"]
    assert any("another backend" in d for d in data["differences"])


def test_nothing_confirmed_writes_no_finding_file(tmp_path, make_manifest):
    records = [
        {"id": f"{a}-{s}-{n}", "text": "alpha bravo charlie delta", "speaker": f"{a}{s}", "accent": a}
        for a in ("x", "y")
        for s in range(8)
        for n in range(6)
    ]
    config = write_config(tmp_path / "run.yaml", make_manifest(records), {"name": "stub", "default_rate": 0.1})
    root = run(prepare(load_config(config))).paths.root
    shown = asrfair("discover", str(root), "--min-speakers", "2", "--min-words", "10")
    assert shown.returncode == 0, shown.stderr and "nothing to report" in shown.stdout
    assert not (root / "findings").exists() or not any((root / "findings").iterdir())


def test_a_rescore_leaves_a_stale_discovery_out_of_the_reports(planted_run, tmp_path):
    outcome, _ = planted_run
    root = outcome.paths.root
    asrfair("discover", str(root), "--out", str(tmp_path / "findings"))
    rescore(root, normalizers=["basic"])
    assert (root / "discovery.json").is_file()  # kept, not lost
    assert "Discovered subgroups" not in (root / "report.md").read_text()


def test_bad_input_is_one_line(planted_run, tmp_path):
    outcome, _ = planted_run
    root = str(outcome.paths.root)
    assert_clean_error(asrfair("discover", root, "--depth", "7"), 2, "--depth 7")
    assert_clean_error(asrfair("discover", root, "--tags", "acent"), 2, "--tags acent are not tags")
    assert_clean_error(asrfair("discover", root, "--min-speakers", "1"), 2, "at least 2 speakers")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: asrfair.finding/1\nestimate: {}\n")
    assert_clean_error(asrfair("verify", str(bad), "--run", root), 2, "bad.yaml", "subgroup")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("schema: asrfair.finding/1\nsubgroup: {dialect: x}\nestimate: {}\n")
    assert_clean_error(asrfair("verify", str(wrong), "--run", root), 2, "has no tag 'dialect'")
    assert_clean_error(asrfair("verify", str(wrong)), 2, "exactly one of --run")


def test_identical_subgroups_are_one_finding_and_nested_tags_do_not_erase_it():
    """``country`` is a coarsening of ``region``: ``region=v1 ∧ country=c0`` has the very rows of
    ``region=v1``. The twin is dropped as such, and ``country=c0`` is carried by ``region=v1``."""
    table = simulate(np.random.default_rng(3), speakers=400, utterances=20, tags={"region": 4, "device": 2},
                     speaker_tags=("region",), planted={"region": "v1"}, lift=0.15)  # fmt: skip
    table["country"] = table["region"].map({"v0": "c0", "v1": "c0", "v2": "c1", "v3": "c1"})
    result = discover(table, DiscoverOptions(min_speakers=5, min_words=100, bootstrap=0))
    assert [f.conditions for f in result.findings] == [{"region": "v1"}]
    reasons = {p["subgroup"]: p["reason"] for p in result.pruned}
    assert reasons["region=v1 ∧ country=c0"] == "the same utterances as region=v1"
    assert reasons["country=c0"].startswith("carried by region=v1")


def test_a_one_speaker_subgroup_is_never_significant():
    table = simulate(np.random.default_rng(4), speakers=60, utterances=30, tags={"accent": 3}, speaker_tags=("accent",))
    table.loc[table["speaker"] == "s0", "accent"] = "solo"  # one speaker, somewhat worse by chance or not
    table.loc[table["speaker"] == "s0", "errors"] += 2
    from harness.stats.discover import evaluate

    estimate = evaluate(table, {"accent": "solo"}, DiscoverOptions(bootstrap=200))
    assert estimate.difference > 0 and estimate.p_value >= 0.5


def test_the_vectorised_search_agrees_with_the_one_subgroup_test():
    """Every candidate's z and WERs from the lattice-wide sums equal those of the direct
    computation on its own rows (a sample of 60)."""
    from harness.stats.discover import _estimate, _mask, _rows, _test_all

    table = simulate(np.random.default_rng(7), speakers=120, utterances=15, tags=TAGS, speaker_tags=SPEAKER_TAGS)
    rows = _rows(table, list(TAGS))
    tested = _test_all(rows, list(TAGS), 3, 3, 20)
    for i in np.random.default_rng(0).choice(len(tested.p), 60, replace=False):
        inside = _mask(rows, tested.conditions[i])
        direct = _estimate(rows, inside, ~inside)
        assert tested.wer[i] == pytest.approx(direct.wer) and tested.complement[i] == pytest.approx(
            direct.complement_wer
        )
        assert tested.z[i] == pytest.approx(direct.z, rel=1e-6, abs=1e-9)
        assert tested.speakers[i] == direct.speakers and tested.words[i] == direct.words
