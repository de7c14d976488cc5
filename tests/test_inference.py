"""harness.stats.inference against known answers: the ratio estimator's jackknife variance, Welch's
degrees of freedom, Wilson's interval, the dimension test's size under the null and its power against
a speaker-level effect seen through an intersection, and the disparity's simultaneous bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.stats.by_slice import StatsOptions, gap_bounds, ranked_test, select, summarise, unit_contrasts
from harness.stats.inference import contrasts, ratios, wilson
from harness.stats.slices import SliceSpec


def test_one_ratio_variance_is_the_textbook_jackknife():
    """Five speakers, one slice: R = Σa / Σb; the variance is (n−1)/n Σ (R_(−g) − R̄)², the
    delete-one-speaker jackknife of the ratio estimator (Quenouille; Cochran, Sampling Techniques)."""
    a, b = np.array([3.0, 1, 4, 1, 5]), np.array([10.0, 8, 12, 9, 11])
    g = np.arange(5)
    r = ratios(np.r_[g, g], np.r_[np.zeros(5, int), np.ones(5, int)], np.r_[a, a], np.r_[b, b], 5, 1)
    assert r.values == pytest.approx([14 / 50, 14 / 50])
    leave_out = (a.sum() - a) / (b.sum() - b)
    jackknife = 4 / 5 * np.sum((leave_out - leave_out.mean()) ** 2)
    c = contrasts(r, select(1, [0]))
    assert c.se[0] ** 2 == pytest.approx(jackknife)
    assert c.clusters[0] == 5 and 1 <= c.df[0] <= 4


def test_difference_of_two_independent_slices_is_welch():
    """Two slices of different speakers: the difference's variance is the sum of the slices' and its
    df is Welch–Satterthwaite's from each slice's own df."""
    rng = np.random.default_rng(1)
    sizes = (6, 11)
    cluster = np.arange(sum(sizes))
    column = np.repeat([0, 1], sizes)
    b = rng.integers(20, 80, cluster.size).astype(float)
    a = rng.binomial(b.astype(int), np.where(column == 0, 0.1, 0.2)).astype(float)
    r = ratios(np.r_[cluster, cluster], np.r_[column, np.full(cluster.size, 2)], np.r_[a, a], np.r_[b, b], 17, 2)
    own = contrasts(r, select(2, [0, 1]))
    pair = contrasts(r, unit_contrasts(2, [1], [0]))
    v = own.se**2
    assert pair.se[0] ** 2 == pytest.approx(v.sum())
    assert pair.df[0] == pytest.approx(v.sum() ** 2 / (v[0] ** 2 / own.df[0] + v[1] ** 2 / own.df[1]))
    assert pair.clusters[0] == 6  # the fewer speakers of the two slices


def test_wilson_interval_known_values():
    low, high = wilson(0, 10, 0.95)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # Wilson (1927), n = 10, none observed
    low, high = wilson(3, 10, 0.95)
    assert (low, high) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert wilson(0, 0, 0.95) is None


def _null_pairs(rng: np.random.Generator, sizes=(6, 30), spreads=(0.8, 0.3), utterances=(40, 8)):
    """Equal true WER, slices differing in speakers, spread and recording volume (issue 22's case)."""
    cluster, column, a, b = [], [], [], []
    for k, (n, sd, m) in enumerate(zip(sizes, spreads, utterances, strict=True)):
        for _ in range(n):
            rate = 0.15 * np.exp(sd * rng.standard_normal() - sd**2 / 2)
            words = rng.integers(5, 20, 1 + rng.poisson(m - 1)).sum()
            cluster.append(len(cluster))
            column.append(k)
            a.append(rng.poisson(rate * words))
            b.append(words)
    return np.array(cluster), np.array(column), np.array(a, float), np.array(b, float)


def test_dimension_test_size_holds_when_slices_differ_in_spread_and_volume():
    """Issue 22: 6 speakers × 40 utterances with a wide speaker spread against 30 × 8 with a narrow
    one, equal true WER: the permutation test rejected in 0.13–0.33 of datasets."""
    p = []
    for seed in range(300):
        cluster, column, a, b = _null_pairs(np.random.default_rng(seed))
        p.append(ranked_test(cluster, column, [0, 1], a, b).p_value)
    p = np.array(p)
    assert np.mean(p < 0.05) <= 0.06 + 2 * np.sqrt(0.05 * 0.95 / 300)  # α + 0.01 plus Monte Carlo error
    assert 0.4 <= np.mean(p) <= 0.65


def test_dimension_test_reports_its_method_and_degrees_of_freedom():
    cluster, column, a, b = _null_pairs(np.random.default_rng(0), sizes=(5, 6))
    test = ranked_test(cluster, column, [0, 1], a, b)
    assert test.method == "Welch heteroscedastic F on log ratios" and test.df[0] == 1 and test.df[1] >= 1
    assert test.replicates == 0 and test.kind == "between-speaker"
    assert ranked_test(cluster, column, [0, 1], a, b, enabled=False) is None
    assert ranked_test(cluster, np.zeros_like(column), [0], a, b) is None  # one slice: nothing to test


def _intersection_table(rng: np.random.Generator, accent_effect: float) -> pd.DataFrame:
    rows = []
    for accent, rate in (("a", 0.15 * accent_effect), ("b", 0.15)):
        for s in range(25):
            speaker_rate = rate * np.exp(0.4 * rng.standard_normal())
            for u in range(10):
                words = int(rng.integers(5, 20))
                errors = int(rng.poisson(speaker_rate * words))
                noise = ("clean", "cafe")[int(rng.random() < 0.5)]  # varies within each speaker
                rows.append(
                    {"id": f"{accent}{s}-{u}", "speaker": f"{accent}{s}", "accent": accent, "noise": noise,
                     "status": "ok", "ref_words": words, "errors": errors}
                )
    table = pd.DataFrame(rows)
    table["substitutions"], table["deletions"], table["insertions"] = table["errors"], 0, 0
    table["hits"] = (table["ref_words"] - table["errors"]).clip(lower=0)
    table["wer"] = table["errors"] / table["ref_words"]
    return table


def test_intersection_with_a_per_utterance_tag_sees_the_speaker_level_tag():
    """Issue 22: accent × noise rejected in 0.10 of datasets with one accent's WER doubled. With the
    speaker as the unit across all its cells, the intersection test sees what the accent test sees."""
    options = StatsOptions(min_speakers=5, min_words=50, bootstrap=1, permutations=199)
    specs = [SliceSpec(by="accent"), SliceSpec(by=["accent", "noise"])]
    found = 0
    for seed in range(10):
        accent, both = summarise(_intersection_table(np.random.default_rng(seed), 2.0), specs, options).dimensions
        assert accent.test.kind == "between-speaker" and both.test.kind in ("within-speaker", "mixed")
        found += both.test.p_value < 0.05
    assert found >= 8


def test_disparity_lower_end_is_zero_when_slices_are_equal():
    """Four slices with the same WER in every speaker: the true gap is 0 and the interval says so."""
    rng = np.random.default_rng(2)
    cluster = np.arange(80)
    column = np.repeat(np.arange(4), 20)
    b = rng.integers(50, 150, 80).astype(float)
    a = np.round(0.2 * b) + rng.integers(-2, 3, 80)
    r = ratios(np.r_[cluster, cluster], np.r_[column, np.full(80, 4)], np.r_[a, a], np.r_[b, b], 80, 4)
    gap_ci, ratio_ci, worst_ci = gap_bounds(r, [0, 1, 2, 3], 0.95)
    assert gap_ci[0] == 0.0 and gap_ci[1] > 0
    assert ratio_ci[0] == 1.0 and ratio_ci[1] > 1
    assert worst_ci[0] <= 0 <= worst_ci[1]
    # Bonferroni over the 6 pairs: each pair's interval uses the 1 − 0.05 / 12 quantile of its t.
    pair = contrasts(r, unit_contrasts(4, [0], [1]))
    q = stats.t.ppf(1 - 0.05 / 12, pair.df[0])
    assert gap_ci[1] >= abs(r.values[0] - r.values[1]) + q * pair.se[0] - 1e-12
