"""Slice grouping and the statistics pooled from per-utterance counts, checked against jiwer."""

from __future__ import annotations

import jiwer
import numpy as np
import pandas as pd
import pytest

from harness.errors import InputError
from harness.scoring.normalisers import get_normalizer
from harness.scoring.table import score_frame
from harness.stats.by_slice import StatsOptions, summarise
from harness.stats.slices import MISSING, SliceSpec, check_slices, load_slices, slice_frame


def opts(min_speakers: int = 1, min_words: int = 1, **kw) -> StatsOptions:
    return StatsOptions(min_speakers=min_speakers, min_words=min_words, bootstrap=200, permutations=200, **kw)


def frame(rows):
    base = {"language": "en", "status": "ok", "error": None}
    return pd.DataFrame([{**base, **r} for r in rows])


ROWS = [
    {
        "id": "1",
        "speaker": "s1",
        "accent": "scottish",
        "noise": "clean",
        "reference": "a b c d",
        "hypothesis": "a b c d",
    },
    {"id": "2", "speaker": "s1", "accent": "scottish", "noise": "cafe", "reference": "a b", "hypothesis": "a x"},
    {
        "id": "3",
        "speaker": "s2",
        "accent": "scottish",
        "noise": "clean",
        "reference": "one two three",
        "hypothesis": "one",
    },
    {"id": "4", "speaker": "s3", "accent": "welsh", "noise": "clean", "reference": "x y", "hypothesis": "x y z"},
    {"id": "5", "speaker": "s4", "accent": "welsh", "noise": "cafe", "reference": "p q r s", "hypothesis": "p q r s"},
    {"id": "6", "speaker": "s5", "noise": "cafe", "reference": "m n", "hypothesis": "m"},
    {
        "id": "7",
        "speaker": "s5",
        "accent": "welsh",
        "noise": "cafe",
        "reference": "failed one",
        "hypothesis": None,
        "status": "error",
        "error": "TimeoutError",
    },
]


@pytest.fixture
def table():
    return score_frame(frame(ROWS), get_normalizer("none"))


def test_slice_frame_labels_intersections_groups_and_where(table):
    spec = SliceSpec(
        by=["accent", "noise"], groups={"accent": {"celtic": ["scottish", "welsh"]}}, where={"noise": "clean"}
    )
    labels = slice_frame(table, spec)["__slice__"]
    assert labels.iloc[0] == labels.iloc[2] == labels.iloc[3] == "celtic × clean"
    assert labels.iloc[1:2].isna().all() and labels.iloc[4:].isna().all()  # excluded by where
    assert slice_frame(table, SliceSpec(by="accent"))["__slice__"].iloc[5] == MISSING


def test_pooled_slice_wer_equals_jiwer_on_the_subset(table):
    summary = summarise(table, [SliceSpec(by="accent"), SliceSpec(by=["accent", "noise"])], opts(1, 1))
    ok = table[table["status"] == "ok"]
    assert summary.overall.wer == pytest.approx(jiwer.wer(ok["reference"].tolist(), ok["hypothesis"].tolist()))
    for dim in summary.dimensions:
        for s in dim.slices:
            mask = np.ones(len(ok), dtype=bool)
            for tag, value in s.values.items():
                mask &= ok[tag].fillna(MISSING).to_numpy() == value
            subset = ok[mask]
            assert s.wer == pytest.approx(jiwer.wer(subset["reference"].tolist(), subset["hypothesis"].tolist()))
            assert s.utterances == len(subset)


def test_failures_counted_per_slice_never_scored(table):
    summary = summarise(table, [SliceSpec(by="accent")], opts(1, 1))
    welsh = next(s for s in summary.dimensions[0].slices if s.label == "welsh")
    assert (welsh.utterances, welsh.failed, welsh.words) == (2, 1, 6)
    assert summary.overall.failed == 1


def test_aggregates_beside_pooled(table):
    summary = summarise(table, [SliceSpec(by="accent")], opts(1, 1))
    scottish = next(s for s in summary.dimensions[0].slices if s.label == "scottish")
    # s1: 1 error / 6 words, s2: 2 / 3  -> speaker mean (1/6 + 2/3) / 2 ; utterances 0, 1/2, 2/3
    assert scottish.wer == pytest.approx(3 / 9)
    assert scottish.speaker_mean_wer == pytest.approx((1 / 6 + 2 / 3) / 2)
    assert scottish.utterance_mean_wer == pytest.approx((0 + 1 / 2 + 2 / 3) / 3)
    assert (scottish.substitutions, scottish.deletions, scottish.insertions) == (1, 2, 0)


def test_pooled_lies_between_best_and_worst(table):
    summary = summarise(table, [SliceSpec(by="noise")], opts(1, 1))
    wers = [s.wer for s in summary.dimensions[0].slices]
    assert min(wers) <= summary.overall.wer <= max(wers)


def test_disparity_ranks_only_supported_non_missing(table):
    summary = summarise(table, [SliceSpec(by="accent")], opts(2, 1))
    dim = summary.dimensions[0]
    assert {s.label for s in dim.slices} == {"scottish", "welsh", MISSING}
    assert dim.disparity.ranked == 2
    assert dim.disparity.worst == "scottish" and dim.disparity.best == "welsh"
    assert dim.disparity.ratio == pytest.approx((3 / 9) / (1 / 6))
    assert dim.disparity.gap == pytest.approx(3 / 9 - 1 / 6)
    missing = next(s for s in dim.slices if s.label == MISSING)
    assert missing.flags == ["speakers<2"] and not missing.supported

    thin = summarise(table, [SliceSpec(by="accent")], opts(5, 1)).dimensions[0]
    assert thin.disparity.worst is None and "no disparity" in thin.disparity.note


def test_filler_only_utterance_has_no_wer_and_is_counted():
    t = score_frame(
        frame(
            [
                {"id": "1", "speaker": "a", "reference": "uh", "hypothesis": "oh no"},
                {"id": "2", "speaker": "b", "reference": "cat dog", "hypothesis": "cat dog"},
            ]
        ),
        get_normalizer("whisper-english"),
    )  # whisper's normaliser drops "uh"
    assert t.loc[0, "ref_words"] == 0 and t.loc[0, "insertions"] == 2 and pd.isna(t.loc[0, "wer"])
    summary = summarise(t, [], opts(1, 1))
    # Issue 22: its two insertions over no reference word are left out of every WER, and counted.
    assert summary.overall.wer == 0.0 and summary.overall.insertions == 0
    assert summary.overall.no_reference_words == 1 and summary.overall.utterances == 2


def test_check_slices_suggests_tags_and_values():
    values = pd.DataFrame({"accent": ["scottish", "welsh"], "noise": ["clean", "clean"]})
    with pytest.raises(InputError, match=r"slices.yaml: slice 'acent' uses tag 'acent'.*did you mean 'accent'"):
        check_slices([SliceSpec(by="acent")], values, ["accent", "noise"], "slices.yaml")
    with pytest.raises(InputError, match="where: no utterance has accent='scotish'; did you mean 'scottish'"):
        check_slices([SliceSpec(by="noise", where={"accent": "scotish"})], values, ["accent", "noise"], "s.yaml")
    with pytest.raises(InputError, match="groups: no utterance has accent='welch'"):
        check_slices(
            [SliceSpec(by="accent", groups={"accent": {"celtic": ["scottish", "welch"]}})], values, ["accent"], "s"
        )
    check_slices(
        [SliceSpec(by=["accent", "noise"], where={"noise": "clean"})], values, ["accent", "noise"], "s"
    )  # valid: no error


def test_where_dimension_compares_to_its_own_overall(table):
    summary = summarise(table, [SliceSpec(by="noise", where={"accent": "scottish"})], opts(1, 1))
    dim = summary.dimensions[0]
    assert dim.overall_wer == pytest.approx(3 / 9)  # scottish only, not the whole table
    assert dim.disparity.worst_vs_overall == pytest.approx(dim.disparity.worst_wer - 3 / 9)


def test_unlabelled_speakers_are_own_units_and_flagged(table):
    unlabelled = table.assign(speaker=None)
    summary = summarise(unlabelled, [SliceSpec(by="accent")], opts(1, 1))
    scottish = next(s for s in summary.dimensions[0].slices if s.label == "scottish")
    assert scottish.speakers == 3 and "3 without speaker id" in scottish.flags
    welsh = next(s for s in summary.dimensions[0].slices if s.label == "welsh")
    assert "failed 1/3" in welsh.flags and summary.dimensions[0].disparity.with_failures == ["welsh"]


def test_load_slices_errors(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("version: 1\nslices:\n  - by: accent\n    colour: red\n")
    with pytest.raises(InputError, match=r"s.yaml: 'slices\[0\].colour': unknown key"):
        load_slices(bad)
    good = tmp_path / "g.yaml"
    good.write_text("slices:\n  - by: [accent, noise]\n    name: a-by-n\n")
    (spec,) = load_slices(good)
    assert spec.by == ("accent", "noise") and spec.label == "a-by-n"
