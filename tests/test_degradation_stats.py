"""harness.stats.degradation on synthetic tables with a known truth: calibration and power of the interaction
test, coverage and pairing of the ΔWER intervals, complete cases, and the edges (no bootstrap, one
slice, one speaker, no speaker ids, ``where:`` filters, failures under one condition)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from harness.stats.by_slice import StatsOptions
from harness.stats.degradation import degradation
from harness.stats.inference import hall_quantiles
from harness.stats.multiplicity import holm
from harness.stats.records import Degradation
from harness.stats.slices import MISSING, SliceSpec

ACCENTS = ("general", "scottish", "welsh")
BASE = {"general": 0.10, "scottish": 0.16, "welsh": 0.13}  # accents differ under the reference too
CLEAN, NOISY, PHONE = "clean", "noisy", "phone"
ACCENT = SliceSpec(by="accent")


def simulate(
    rng: np.random.Generator,
    *,
    speakers: int = 8,
    utterances: int = 10,
    accents: tuple[str, ...] = ACCENTS,
    conditions: tuple[str, ...] = (CLEAN, NOISY),
    delta: float = 0.08,
    extra: dict[str, dict[str, float]] | None = None,
    spread: float = 0.06,
    susceptibility: float = 0.05,
) -> pd.DataFrame:
    """Per-utterance scored table: every utterance under every condition.

    A speaker's error rate is ``BASE[accent] + u`` under the reference and ``+ delta + v`` more under
    each other condition (``u``, ``v`` uniform speaker effects, mean 0, shared by all the speaker's
    utterances), plus ``extra[condition][accent]``. No rate is clipped, so the population ΔWER of an
    accent under a condition is exactly ``delta + extra[condition][accent]``.
    """
    extra = extra or {}
    n = len(accents) * speakers
    accent = np.repeat(np.array(accents), speakers)
    base = np.array([BASE.get(a, 0.12) for a in accent]) + rng.uniform(-spread, spread, n)
    hurt = delta + rng.uniform(-susceptibility, susceptibility, n)
    device = rng.choice(["laptop", "phone"], n)  # a per-speaker tag with no effect at all
    speaker = np.repeat(np.arange(n), utterances)
    words = rng.integers(5, 20, speaker.size)
    frames = []
    for k, condition in enumerate(conditions):
        rate = base.copy()
        if k:
            rate += hurt + np.array([extra.get(condition, {}).get(a, 0.0) for a in accent])
        assert rate.min() > 0 and rate.max() < 1
        errors = rng.binomial(words, rate[speaker])
        frames.append(
            pd.DataFrame(
                {
                    "id": [f"{accent[s]}{s}-{u % utterances}" for u, s in enumerate(speaker)],
                    "speaker": [f"{accent[s]}{s}" for s in speaker],
                    "accent": accent[speaker],
                    "device": device[speaker],
                    "condition": condition,
                    "status": "ok",
                    "errors": pd.array(errors, dtype="Int64"),
                    "ref_words": pd.array(words, dtype="Int64"),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["substitutions"], table["deletions"], table["insertions"] = table["errors"], 0, 0
    table["hits"] = table["ref_words"] - table["errors"]
    table["wer"] = table["errors"] / table["ref_words"]
    return table


def fail(table: pd.DataFrame, ids, condition: str) -> pd.DataFrame:
    """Mark utterances as failed under one condition, with null counts as score_frame leaves them."""
    table = table.copy()
    rows = table["id"].isin(list(ids)) & (table["condition"] == condition)
    table.loc[rows, "status"] = "error"
    table.loc[rows, ["errors", "ref_words", "substitutions", "hits", "wer"]] = pd.NA
    return table


def options(**kw) -> StatsOptions:
    return StatsOptions(**{"min_speakers": 5, "min_words": 100, "bootstrap": 400, "permutations": 199, **kw})


def run(table, specs=(ACCENT,), conditions=(CLEAN, NOISY), opts=None) -> Degradation:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (0/0, empty slices) may escape
        result = degradation(table, list(specs), list(conditions), {}, opts or options())
    assert result is not None
    return result


def dimension(result: Degradation, name: str = "accent"):
    return next(d for d in result.dimensions if d.name == name)


def slice_of(result: Degradation, label: str, name: str = "accent"):
    return next(s for s in dimension(result, name).slices if s.label == label)


def marked(result: Degradation) -> set[tuple[str, str, str]]:
    return {
        (d.name, s.label, c.condition) for d in result.dimensions for s in d.slices for c in s.cells if c.degrades_more
    }


def pooled(rows: pd.DataFrame) -> float:
    return rows["errors"].astype(float).sum() / rows["ref_words"].astype(float).sum()


# --- the interaction test: calibrated under the null, powerful against one accent hurt more -----------------


def test_interaction_null_is_calibrated():
    """The condition adds the same expected rate to every accent (accents differ at baseline, speakers
    differ in baseline and in how much the condition hurts them): p-values are uniform."""
    p_values = []
    for seed in range(100):
        result = run(simulate(np.random.default_rng(seed)), opts=options(bootstrap=0, seed=seed))
        test = dimension(result).shifts[0].interaction
        assert test.kind == "between-speaker" and test.replicates == 0 and test.method.startswith("Welch")
        p_values.append(test.p_value)
    p = np.array(p_values)
    assert np.mean(p < 0.05) <= 0.10
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert abs(np.mean(p) - 0.5) < 0.08


def test_interaction_detects_one_accent_hurt_more():
    significant = most_degraded = 0
    seeds = range(1000, 1040)
    for seed in seeds:
        table = simulate(np.random.default_rng(seed), extra={NOISY: {"scottish": 0.15}})
        shift = dimension(run(table, opts=options(bootstrap=0, seed=seed))).shifts[0]
        significant += shift.interaction.significant
        most_degraded += shift.most_degraded == "scottish"
    assert significant / len(seeds) >= 0.8
    assert most_degraded / len(seeds) >= 0.8


@pytest.mark.parametrize("seed, holm_withholds", [(3, False), (4, False), (74, True)])
def test_degrades_more_marks_the_hurt_accent_under_the_hurting_condition_only(seed, holm_withholds):
    """Three conditions (noisy hurts everyone alike, phone hurts scottish 15 points more), two dimensions
    (accent, and device, which does nothing): Holm over the four tests, and the ▲ lands on the cell of
    phone — the second shift, the third cell — of scottish, nowhere else. In seed 74 a null test has a
    raw p below 0.05 that Holm lifts above it: no significance, no mark."""
    table = simulate(np.random.default_rng(seed), conditions=(CLEAN, NOISY, PHONE), extra={PHONE: {"scottish": 0.15}})
    result = run(table, specs=(ACCENT, SliceSpec(by="device")), conditions=(CLEAN, NOISY, PHONE))
    assert marked(result) == {("accent", "scottish", PHONE)}

    tests = [s.interaction for d in result.dimensions for s in d.shifts]
    assert len(tests) == 4 and all(t is not None for t in tests)
    assert [t.p_holm for t in tests] == pytest.approx(holm([t.p_value for t in tests]))
    assert all(t.significant == (t.p_holm < 0.05) for t in tests)
    assert any(t.p_value < 0.05 <= t.p_holm for t in tests) == holm_withholds
    accent = dimension(result)
    noisy, phone = accent.shifts
    assert (noisy.condition, phone.condition) == (NOISY, PHONE)
    assert phone.interaction.significant and not noisy.interaction.significant
    assert not any(s.interaction.significant for s in dimension(result, "device").shifts)
    assert phone.most_degraded == "scottish" and phone.gap_change_ci[0] > 0  # the gap widens, and that is real
    scottish = slice_of(result, "scottish")
    assert [c.condition for c in scottish.cells] == [CLEAN, NOISY, PHONE]
    assert scottish.cells[2].excess_ci[0] > 0 and scottish.cells[2].excess > scottish.cells[1].excess


# --- ΔWER intervals: paired, and covering the truth -----------------------------------------------------------


def test_paired_delta_interval_covers_the_true_delta():
    truth = {"general": 0.08, "scottish": 0.13, "welsh": 0.08}
    covered = total = 0
    for seed in range(100):
        table = simulate(
            np.random.default_rng(2000 + seed), speakers=12, extra={NOISY: {"scottish": 0.05}}, spread=0.08
        )
        result = run(table, opts=options(permutations=0, seed=seed))
        for s in dimension(result).slices:
            low, high = s.cells[1].delta_ci
            covered += low <= truth[s.label] <= high
            total += 1
        low, high = result.conditions[1].delta_ci
        covered += low <= 0.08 + 0.05 / 3 <= high  # overall: equal expected words per accent
        total += 1
    # A speaker bootstrap with 12 speakers a slice runs a little short of 95 %; an unpaired interval
    # (independent draws per condition) covers about 100 % here, which the upper bound rules out.
    assert 0.88 <= covered / total <= 0.985


def test_delta_intervals_are_paired_leave_one_speaker_out():
    """The ΔWER interval's standard error is the jackknife over speakers of the *paired* difference
    (each speaker dropped from both conditions at once), rebuilt here by brute force; and that paired
    interval is much narrower than the difference of two independent ones."""
    table = simulate(np.random.default_rng(11), extra={NOISY: {"scottish": 0.05}}, spread=0.08)
    result = run(table, opts=options(seed=5))
    clean = table[table["condition"] == CLEAN].set_index("id")
    noisy = table[table["condition"] == NOISY].set_index("id").loc[clean.index]
    speakers = clean["speaker"].unique()

    def delta(keep: np.ndarray) -> float:
        words = clean["ref_words"].to_numpy(float)[keep].sum()
        return (noisy["errors"].to_numpy(float)[keep].sum() - clean["errors"].to_numpy(float)[keep].sum()) / words

    everyone = np.ones(len(clean), bool)
    leave_out = np.array([delta((clean["speaker"] != s).to_numpy()) for s in speakers])
    n = len(speakers)
    jackknife_se = np.sqrt((n - 1) / n * np.sum((leave_out - leave_out.mean()) ** 2))
    low, high = result.conditions[1].delta_ci
    assert low < delta(everyone) < high
    # One stratum of n speakers, influences u = Δ − Δ(without the speaker): the jackknife variance,
    # skewness (n−1)²/(n(n−2))·Σ(u − ū)³ / se³, and the interval Δ − se·[g⁻¹(q), g⁻¹(−q)] with Hall's
    # transform and q a t quantile with df between 1 and n − 1.
    u = delta(everyone) - leave_out
    centred = u - u.mean()
    se = jackknife_se
    skew = (n - 1) ** 2 / (n * (n - 2)) * np.sum(centred**3) / se**3

    def interval(q: float) -> tuple[float, float]:
        lo, hi = hall_quantiles(np.array([q]), np.array([skew]))
        return delta(everyone) - se * float(hi[0]), delta(everyone) - se * float(lo[0])

    q = optimize.brentq(lambda x: np.subtract(*interval(x)[::-1]) - (high - low), 0.1, 50)
    assert stats.t.ppf(0.975, n - 1) <= q * (1 + 1e-9) and q <= stats.t.ppf(0.975, 1)
    assert interval(q) == pytest.approx((low, high), rel=1e-9)

    def jackknife(errors: pd.Series) -> float:
        """Jackknife se over speakers of one condition's pooled WER (unpaired)."""
        words, e = clean["ref_words"].to_numpy(float), errors.to_numpy(float)
        out = np.array([e[keep].sum() / words[keep].sum() for keep in (clean["speaker"] != s for s in speakers)])
        return float(np.sqrt((n - 1) / n * np.sum((out - out.mean()) ** 2)))

    # Pairing: the difference's se is far below that of two independent WERs.
    assert se < 0.8 * np.hypot(jackknife(clean["errors"]), jackknife(noisy["errors"]))
    for a in ACCENTS:
        reference_cell = slice_of(result, a).cells[0]
        assert reference_cell.delta_ci is None and reference_cell.excess_ci is None  # never [0, 0]


# --- complete cases -------------------------------------------------------------------------------------------


def drop_row(table: pd.DataFrame, ids, condition: str) -> pd.DataFrame:
    return table[~(table["id"].isin(list(ids)) & (table["condition"] == condition))]


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(lambda t, ids: fail(t, ids, NOISY), id="failed-under-noisy"),
        pytest.param(lambda t, ids: fail(t, ids, CLEAN), id="failed-under-reference"),
        pytest.param(lambda t, ids: drop_row(t, ids, NOISY), id="no-noisy-row"),
        pytest.param(lambda t, ids: drop_row(t, ids, CLEAN), id="no-reference-row"),
    ],
)
def test_an_utterance_lost_under_one_condition_leaves_every_condition(lose):
    full = simulate(np.random.default_rng(3))
    everyone = sorted(full["id"].unique())
    gone = set(everyone[::9]) | {i for i in everyone if i.startswith("welsh18-")}  # all of one speaker
    table = lose(full, gone)
    result = run(table)

    assert result.excluded_utterances == len(gone)
    assert result.paired_utterances == len(everyone) - len(gone)
    kept = full[~full["id"].isin(gone)]
    for overall, c in zip(result.conditions, (CLEAN, NOISY), strict=True):
        rows = table[table["condition"] == c]
        assert overall.utterances == len(rows) and overall.failed == int((rows["status"] != "ok").sum())
        assert overall.wer == pytest.approx(pooled(kept[kept["condition"] == c]), abs=1e-12)
    assert result.conditions[1].delta == result.conditions[1].wer - result.conditions[0].wer
    for s in dimension(result).slices:
        rows = kept[kept["accent"] == s.label]
        assert s.utterances == rows["id"].nunique()
        assert s.speakers == rows["speaker"].nunique()  # a speaker with nothing left is no speaker
        assert s.words == int(rows.loc[rows["condition"] == CLEAN, "ref_words"].sum())
        reference, noisy = s.cells
        assert reference.wer == pytest.approx(pooled(rows[rows["condition"] == CLEAN]), abs=1e-12)
        assert noisy.wer == pytest.approx(pooled(rows[rows["condition"] == NOISY]), abs=1e-12)
        assert noisy.delta == noisy.wer - reference.wer  # exactly: the same utterances in both cells
        assert reference.delta == 0.0
    assert slice_of(result, "welsh").speakers == 7


def test_every_utterance_failing_under_one_condition_leaves_nothing_to_compare():
    table = simulate(np.random.default_rng(4))
    result = run(fail(table, table["id"].unique(), NOISY))
    assert (result.paired_utterances, result.excluded_utterances) == (0, table["id"].nunique())
    assert [c.wer for c in result.conditions] == [None, None]
    assert result.conditions[1].failed == table["id"].nunique()
    accent = dimension(result)
    assert accent.slices == [] and accent.ranked == 0 and accent.note
    assert accent.shifts[0].delta is None and accent.shifts[0].interaction is None


@pytest.mark.parametrize("conditions", [(CLEAN,), ()])
def test_no_comparison_without_two_conditions(conditions):
    table = simulate(np.random.default_rng(0))
    assert degradation(table, [ACCENT], list(conditions), {}, options()) is None
    assert degradation(table.drop(columns="condition"), [ACCENT], [CLEAN, NOISY], {}, options()) is None


# --- switched off, reproducible ----------------------------------------------------------------------------------


def test_intervals_and_tests_can_be_switched_off():
    table = simulate(np.random.default_rng(5), extra={NOISY: {"scottish": 0.15}})
    full = run(table)
    bare = run(table, opts=options(bootstrap=0, permutations=0))
    assert marked(full) == {("accent", "scottish", NOISY)} and marked(bare) == set()
    for c_full, c_bare in zip(full.conditions, bare.conditions, strict=True):
        assert (c_bare.wer, c_bare.delta) == (c_full.wer, c_full.delta) and c_bare.wer_ci is None
    assert bare.conditions[1].delta_ci is None
    for s_full, s_bare in zip(dimension(full).slices, dimension(bare).slices, strict=True):
        for f, b in zip(s_full.cells, s_bare.cells, strict=True):
            assert (b.wer, b.delta, b.excess) == (f.wer, f.delta, f.excess)
            assert b.wer_ci is None
        assert all(c.delta_ci is None and c.excess_ci is None for c in s_bare.cells[1:])
    shift, shift_full = dimension(bare).shifts[0], dimension(full).shifts[0]
    assert shift.interaction is None and shift.delta_ci is None and shift.gap_ci is None
    assert shift.ratio_change_ci is None and shift.gap_change_ci is None
    assert (shift.gap, shift.gap_change, shift.ratio, shift.most_degraded) == (
        shift_full.gap,
        shift_full.gap_change,
        shift_full.ratio,
        shift_full.most_degraded,
    )


def test_seeded_and_reproducible():
    table = simulate(np.random.default_rng(6))
    assert run(table, opts=options(seed=1)) == run(table, opts=options(seed=1))
    one, other = dimension(run(table, opts=options(seed=1))), dimension(run(table, opts=options(seed=2)))
    assert one.slices[0].cells[1].delta_ci == other.slices[0].cells[1].delta_ci  # analytic: no seed
    assert one.shifts[0].interaction.p_value == other.shifts[0].interaction.p_value  # analytic test


# --- slices too thin to rank, without speakers, without the tag, filtered -------------------------------------------


def test_a_dimension_of_one_slice_claims_no_differential_degradation():
    table = simulate(np.random.default_rng(8), accents=("general",))
    result = run(table, specs=(ACCENT, SliceSpec(by="accent", where={"accent": ["nobody"]}, name="none")))
    accent = dimension(result)
    assert accent.ranked == 1 and [s.label for s in accent.slices] == ["general"] and accent.note
    (shift,) = accent.shifts
    assert shift.delta == pytest.approx(result.conditions[1].delta) and shift.delta_ci[0] > 0
    assert shift.gap is None and shift.interaction is None and shift.most_degraded is None
    assert accent.reference_gap is None
    none = dimension(result, "none")
    assert none.slices == [] and none.ranked == 0 and none.shifts[0].delta is None
    assert marked(result) == set()


@pytest.mark.parametrize("min_speakers", [5, 1])
def test_a_slice_of_one_speaker(min_speakers):
    """One Orkney speaker, hurt 40 points more: flagged and left out of the test under the default
    support rule; ranked (and still computable) when min_speakers allows it."""
    rng = np.random.default_rng(9)
    table = simulate(rng)
    orkney = simulate(rng, speakers=1, accents=("orkney",), extra={NOISY: {"orkney": 0.4}})
    both = pd.concat([table, orkney], ignore_index=True)
    result = run(both, opts=options(min_speakers=min_speakers))
    lone = slice_of(result, "orkney")
    assert (lone.speakers, lone.utterances) == (1, 10)
    assert lone.cells[1].delta > 0.3 and lone.cells[1].wer_ci is None and lone.cells[1].note == "one speaker"
    assert lone.cells[1].delta_ci is None and lone.cells[1].excess_ci is None  # one speaker: no spread to measure
    shift = dimension(result).shifts[0]
    if min_speakers == 5:
        assert not lone.supported and "speakers<5" in lone.flags and dimension(result).ranked == 3
        assert not lone.cells[1].degrades_more
        # the interaction is tested on the ranked slices only: as if Orkney were not there
        alone = dimension(run(table, opts=options(min_speakers=min_speakers))).shifts[0].interaction
        assert (shift.interaction.statistic, shift.interaction.p_value) == (alone.statistic, alone.p_value)
        assert shift.most_degraded != "orkney"
    else:
        assert lone.supported and dimension(result).ranked == 4
        assert shift.most_degraded == "orkney" and shift.interaction.kind == "between-speaker"


def test_utterances_without_speaker_ids_are_each_their_own_speaker():
    table = simulate(np.random.default_rng(10))
    table["speaker"] = table["speaker"].astype(object)
    table.loc[table["accent"] == "welsh", "speaker"] = None
    result = run(table)
    welsh = slice_of(result, "welsh")
    assert welsh.speakers == welsh.utterances == 80
    assert [s.speakers for s in dimension(result).slices] == [8, 8, 80]
    assert dimension(result).shifts[0].interaction.kind == "between-speaker"
    assert result.excluded_utterances == 0 and welsh.cells[1].delta_ci is not None


def test_missing_tag_is_reported_never_ranked_or_marked():
    """Five speakers without an accent tag lose 20 points more under noisy: their slice is supported
    and its excess interval lies above 0, yet (missing) is never ranked, tested or marked."""
    rng = np.random.default_rng(12)
    table = simulate(rng, extra={NOISY: {"scottish": 0.2}})
    untagged = simulate(rng, speakers=5, accents=("untagged",), extra={NOISY: {"untagged": 0.2}})
    untagged["accent"] = None
    result = run(pd.concat([table, untagged], ignore_index=True))
    missing = slice_of(result, MISSING)
    assert missing.supported and missing.speakers == 5 and missing.cells[1].excess_ci[0] > 0
    assert dimension(result).ranked == 3
    shift = dimension(result).shifts[0]
    assert shift.most_degraded == "scottish" and shift.interaction.significant
    assert marked(result) == {("accent", "scottish", NOISY)}


def test_where_filters_and_condition_dimensions():
    """``where:`` keeps the slices it names (numbers unchanged, the dimension's pooled ΔWER over what
    it keeps); a dimension that slices or filters by condition is not a per-condition comparison."""
    table = simulate(np.random.default_rng(13), extra={NOISY: {"scottish": 0.1}})
    specs = (
        ACCENT,
        SliceSpec(by="accent", where={"accent": ["general", "welsh"]}, name="pair"),
        SliceSpec(by="accent", where="accent != 'general'", name="expr"),
        SliceSpec(by="condition"),
        SliceSpec(by=["accent", "condition"]),
        SliceSpec(by="accent", where="condition == 'noisy'", name="noisy-only"),
        SliceSpec(by="accent", where={"condition": [NOISY]}, name="noisy-dict"),
    )
    result = run(table, specs=specs)
    assert [d.name for d in result.dimensions] == ["accent", "pair", "expr"]
    full = {s.label: s for s in dimension(result).slices}
    for name, labels in (("pair", ["general", "welsh"]), ("expr", ["scottish", "welsh"])):
        dim = dimension(result, name)
        assert [s.label for s in dim.slices] == labels
        for s in dim.slices:
            assert (s.utterances, s.speakers, s.words) == (
                full[s.label].utterances,
                full[s.label].speakers,
                full[s.label].words,
            )
            assert [c.delta for c in s.cells] == [c.delta for c in full[s.label].cells]
        kept = table[table["accent"].isin(labels)]
        expected = pooled(kept[kept["condition"] == NOISY]) - pooled(kept[kept["condition"] == CLEAN])
        assert dim.shifts[0].delta == pytest.approx(expected, abs=1e-12)
        assert dim.shifts[0].interaction is not None
