"""Minimum detectable gaps and ``asrfair plan``: the plan is checked by simulation against the
statistics' own bootstrap test, and the detectable gap shrinks as 1/√speakers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli import asrfair, assert_clean_error
from conftest import write_config

from harness.config import load_config
from harness.errors import InputError
from harness.pipeline import plan_run, prepare, run
from harness.report.format import detectable_sentence
from harness.stats.by_slice import MIN_SPEAKERS_DETECTABLE, TOO_FEW_TO_DETECT, StatsOptions, summarise
from harness.stats.power import Components, components, plan, pooled_spread, simulate
from harness.stats.slices import SliceSpec

# σ_b = 0.05 between speakers' rates; per-word within variance 1.0 (utterance WER sd 0.1 at 100 words)
TRUTH = Components(0, 0, 0.0, 0.0, between=0.05**2, within=1.0, squared_words=0.0)
SPEC = SliceSpec(by=("accent",), reference="ref")


def parts_of(table, value):
    rows = table[table["accent"] == value]
    return components(*(rows[c].to_numpy(dtype=float) for c in ("errors", "ref_words")), rows["speaker"].to_numpy())


def test_variance_components_recover_the_truth():
    table = simulate(np.random.default_rng(0), [("a", 0.4, 2000, 10, TRUTH)])  # 0.4: no clipping at 0
    found = parts_of(table, "a")
    assert (found.speakers, found.utterances, found.per_speaker, found.words) == (2000, 20_000, 10.0, 2_000_000)
    assert found.between == pytest.approx(TRUTH.between, rel=0.1)  # its sampling sd here: about 4 %
    assert found.within == pytest.approx(TRUTH.within + 1 / 1200, rel=0.03)  # + rounding errors to integers
    assert found.rate == pytest.approx(0.4, abs=0.005)


@pytest.mark.slow  # a power simulation
def test_the_plan_formula_gives_the_requested_power_on_its_own_model():
    """Plan from a pilot, then draw corpora of the planned size with the planted gap and the
    variance components the plan used: the interval of the difference against the reference
    excludes 0 at about the requested power. (A check of the algebra only:
    the plan is validated against the run's ★ on another generator by benchmarks/calibration.py.)"""
    pilot = simulate(np.random.default_rng(1), [("ref", 0.2, 60, 10, TRUTH), ("target", 0.2, 10, 10, TRUTH)])
    gap, power = 0.06, 0.8  # a need within the reference's 60 speakers (above them the plan says grow both)
    target = next(
        s for s in plan(pilot, [SPEC], gap=gap, power=power, alpha=0.05).dimensions[0].slices if s.label == "target"
    )
    assert target.compared_with == "ref" and target.need > target.speakers and target.floor < target.need
    ref, own = parts_of(pilot, "ref"), parts_of(pilot, "target")
    # as the plan sees them: the target's spread at least the pooled one, both at their upper bounds
    ref, own = ref.inflated(), own.at_least(pooled_spread([ref, own])).inflated()
    options = StatsOptions(min_speakers=1, min_words=1, bootstrap=200, permutations=0)
    trials, detected = 500, 0
    for r in range(trials):
        groups = [("ref", ref.rate, ref.speakers, 10, ref), ("target", ref.rate + gap, target.need, 10, own)]
        dimension = summarise(simulate(np.random.default_rng(1000 + r), groups), [SPEC], options).dimensions[0]
        slice_ = next(s for s in dimension.slices if s.label == "target")
        detected += slice_.vs_reference.difference_ci[0] > 0
    # at least the power asked for (MC error ±0.018): the plan is conservative by design (the
    # dimension test's F df and the check against the ★ rule by resampling only add speakers)
    assert power - 0.04 <= detected / trials


def test_more_utterances_per_speaker_cannot_beat_the_floor():
    pilot = simulate(np.random.default_rng(2), [("ref", 0.2, 60, 10, TRUTH), ("target", 0.2, 10, 10, TRUTH)])
    plans = {
        k: next(
            s
            for s in plan(pilot, [SPEC], gap=0.06, power=0.8, alpha=0.05, utts_per_speaker=k).dimensions[0].slices
            if s.label == "target"
        )
        for k in (5, 10, 40, 1000)
    }
    needs = [plans[k].need for k in (5, 10, 40, 1000)]
    assert needs == sorted(needs, reverse=True) and needs[0] > needs[-1]
    assert plans[1000].need <= plans[5].floor + 1 and all(p.floor == plans[5].floor for p in plans.values())


def test_an_uncertain_comparison_group_is_said_not_hidden():
    pilot = simulate(np.random.default_rng(3), [("ref", 0.2, 4, 10, TRUTH), ("target", 0.2, 10, 10, TRUTH)])
    target = next(
        s for s in plan(pilot, [SPEC], gap=0.02, power=0.8, alpha=0.05).dimensions[0].slices if s.label == "target"
    )
    assert target.need is None and "ref alone is too uncertain" in target.note
    assert target.need_both is not None and target.need_both > 10


def test_the_minimum_detectable_gap_shrinks_as_one_over_root_speakers():
    """Doubling a simulated corpus (twice the speakers, same variance components) divides the gap
    a slice can show by about √2, averaged over corpora — apart from the factor of the standard
    error's upper confidence bound, which shrinks towards 1 as its df grow."""
    from harness.stats.by_slice import se_upper_factor
    options = StatsOptions(min_speakers=1, min_words=1, bootstrap=1000, permutations=0)
    spec = SliceSpec(by=("accent",))

    def mean_gap(speakers: int) -> float:
        gaps = []
        for seed in range(16):
            groups = [("a", 0.2, speakers, 6, TRUTH), ("b", 0.25, speakers, 6, TRUTH)]
            dimension = summarise(simulate(np.random.default_rng(seed), groups), [spec], options).dimensions[0]
            gaps += [
                s.vs_overall.min_detectable / float(se_upper_factor(np.array([s.vs_overall.df]))[0])
                for s in dimension.slices
            ]
        return float(np.mean(gaps))

    assert mean_gap(60) / mean_gap(30) == pytest.approx(1 / math.sqrt(2), abs=0.06)


def test_min_detectable_gap_is_the_t_sum_times_the_standard_error():
    from scipy import stats as scipy_stats

    from harness.stats.by_slice import detectable_gap
    from harness.stats.records import SliceComparison

    comparison = SliceComparison(0.0, [None, None], se=0.01, df=12.0)
    # the standard error's 95 % upper confidence bound (χ² on its 12 df), not the estimate
    se_bound = 0.01 * math.sqrt(12 / scipy_stats.chi2.ppf(0.05, 12))
    expected = (scipy_stats.t.ppf(1 - 0.05 / 2, 12) + scipy_stats.t.ppf(0.8, 12)) * se_bound
    assert detectable_gap(comparison, 0.95, 1, 0.8) == pytest.approx(expected)
    # Holm's worst case over 3 tests: the level is α / 3.
    holm_worst = (scipy_stats.t.ppf(1 - 0.05 / 6, 12) + scipy_stats.t.ppf(0.8, 12)) * se_bound
    assert detectable_gap(comparison, 0.95, 3, 0.8) == pytest.approx(holm_worst)
    assert detectable_gap(SliceComparison(0.0, [None, None]), 0.95, 1, 0.8) is None  # no standard error: nothing to say


@pytest.fixture
def stub_run(tmp_path, make_manifest):
    records = [
        {
            "id": f"{a}-{s}-{n}",
            "text": "alpha bravo charlie delta echo foxtrot golf hotel",
            "speaker": f"{a}{s}",
            "accent": a,
        }
        for a, speakers in (("north", 12), ("south", 4))
        for s in range(speakers)
        for n in range(6)
    ]
    backend = {"name": "stub", "default_rate": 0.15, "error_rates": {"accent": {"south": 0.05}}}
    config = write_config(
        tmp_path / "run.yaml", make_manifest(records), backend, stats={"min_speakers": 3, "min_words": 50}
    )
    return run(prepare(load_config(config)))


def test_every_run_reports_the_minimum_detectable_gap_or_why_it_states_none(stub_run):
    """12 and 4 speakers a slice: too few for the figure to keep its promise (issue 22: planting the
    printed gap at 10 speakers a slice gave ★ in 0.28 of datasets), so words instead of a number."""
    metrics = stub_run.metrics
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    for s in accent["slices"]:
        assert s["speakers"] < MIN_SPEAKERS_DETECTABLE and s["vs_overall"]["min_detectable"] is None
        assert s["vs_overall"]["se"] is not None and s["vs_overall"]["detect_note"] == TOO_FEW_TO_DETECT
    assert metrics["stats"]["power"] == 0.8
    report = (stub_run.paths.root / "report.md").read_text()
    assert f"No detectable gap is stated: {TOO_FEW_TO_DETECT}." in report
    assert "– (too few speakers)" in report


def test_a_slice_of_20_speakers_states_its_detectable_gap_and_one_of_19_does_not():
    options = StatsOptions(min_speakers=1, min_words=1, bootstrap=1000, permutations=1000)
    groups = [("a", 0.2, 19, 6, TRUTH), ("b", 0.25, 20, 6, TRUTH), ("c", 0.2, 40, 6, TRUTH)]
    dimension = summarise(simulate(np.random.default_rng(3), groups), [SliceSpec(by=("accent",))], options)
    a, b, c = dimension.dimensions[0].slices
    assert a.vs_overall.min_detectable is None and a.vs_overall.detect_note == TOO_FEW_TO_DETECT
    assert b.vs_overall.min_detectable > c.vs_overall.min_detectable > 0  # fewer speakers, larger gap
    assert b.vs_overall.detect_note is None and c.vs_overall.detect_note is None
    rendered = detectable_sentence(dimension.dimensions[0], StatsOptions(confidence=0.95))
    assert "approximate" in rendered and rendered.endswith("Too few speakers to state one for a.")


def test_plan_cli_tables_json_and_errors(stub_run, tmp_path):
    root = str(stub_run.paths.root)
    shown = asrfair("plan", root, "--gap", "0.05", "--md", str(tmp_path / "plan.md"))
    assert shown.returncode == 0, shown.stderr
    assert "Speakers needed for a ★ on a 5.0 pp WER gap with power 80%" in shown.stdout
    data = json.loads(
        asrfair("plan", root, "--gap", "0.05", "--power", "0.9", "--utts-per-speaker", "20", "--json").stdout
    )
    assert (data["gap"], data["power"], data["utts_per_speaker"]) == (0.05, 0.9, 20)
    south = next(s for d in data["dimensions"] if d["name"] == "accent" for s in d["slices"] if s["label"] == "south")
    assert south["speakers"] == 4 and south["compared_with"] == "rest of accent" and south["planned_per_speaker"] == 20
    assert "| south |" in (tmp_path / "plan.md").read_text()
    assert_clean_error(asrfair("plan", root, "--gap", "2"), 2, "--gap 2.0: must lie in [0.0001, 1)")
    assert_clean_error(asrfair("plan", str(tmp_path / "nope"), "--gap", "0.02"), 2, "nope")
    with pytest.raises(InputError, match="--utts-per-speaker"):
        plan_run(stub_run.paths.root, gap=0.02, utts_per_speaker=0)


def test_the_variance_of_a_slice_counts_uneven_recording():
    """One speaker with 181 utterances and 19 with one or two: the pooled WER weighs that speaker
    heavily, so its variance is far above the even-recording formula's (Monte Carlo check)."""
    counts = np.array([181] + [1, 2] * 9 + [1])
    words = 20 * counts  # 20-word utterances
    rng = np.random.default_rng(5)
    pooled = []
    for _ in range(4000):
        rates = rng.normal(0.2, math.sqrt(TRUTH.between), counts.size)
        errors = words * rates + rng.normal(0, np.sqrt(TRUTH.within * words))
        pooled.append(errors.sum() / words.sum())
    parts = Components(
        counts.size, int(counts.sum()), float(words.sum()), 0.2, TRUTH.between, TRUTH.within, float((words**2).sum())
    )
    assert parts.variance() == pytest.approx(np.var(pooled), rel=0.1)
    assert parts.variance() > 3 * parts.planned_variance(counts.size, counts.mean())
    assert parts.planned_variance(counts.size) == pytest.approx(parts.variance())  # recorded as the pilot did


def test_a_one_speaker_slice_is_counted_and_gets_no_detectable_gap(tmp_path, make_manifest):
    records = [
        {"id": f"{a}-{s}-{n}", "text": "alpha bravo charlie delta", "speaker": f"{a}{s}", "accent": a}
        for a, speakers in (("north", 6), ("south", 1))
        for s in range(speakers)
        for n in range(5)
    ]
    backend = {"name": "stub", "default_rate": 0.2}
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend, stats={"min_speakers": 1})
    outcome = run(prepare(load_config(config)))
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    south = next(s for s in accent["slices"] if s["label"] == "south")
    assert south["speakers"] == 1 and south["vs_overall"]["min_detectable"] is None
    planned = plan_run(outcome.paths.root, gap=0.05)
    south_plan = next(s for d in planned.dimensions for s in d.slices if s.label == "south")
    assert (south_plan.speakers, south_plan.per_speaker) == (1, 5.0) and "fewer than two speakers" in south_plan.note


def test_with_simulated_conditions_the_plan_counts_recorded_speech_once(tmp_path, make_manifest):
    records = [
        {"id": f"{a}-{s}-{n}", "text": "alpha bravo charlie delta", "speaker": f"{a}{s}", "accent": a}
        for a in ("north", "south")
        for s in range(5)
        for n in range(4)
    ]
    conditions = [{"name": "clean"}, {"name": "phone", "transforms": [{"type": "telephone"}]}]
    backend = {"name": "stub", "default_rate": 0.2}
    config = write_config(tmp_path / "run.yaml", make_manifest(records), backend, conditions=conditions)
    planned = plan_run(run(prepare(load_config(config))).paths.root, gap=0.05)
    assert [d.name for d in planned.dimensions] == ["accent"]
    assert {s.per_speaker for s in planned.dimensions[0].slices} == {4.0}
