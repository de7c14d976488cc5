"""Pooled, speaker-mean and utterance-mean WER side by side: definitions checked against jiwer, when the
aggregates must agree and when they must not, the badly-served share, the headline switch, and the
intervals' shared replicates and coverage."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import pytest
from cli import asrfair
from conftest import REPO, write_config
from scipy import stats as scipy_stats

from harness.config import load_config
from harness.errors import InputError
from harness.pipeline import prepare, rescore, run
from harness.stats.by_slice import AGGREGATES, StatsOptions, summarise, summarise_aggregates
from harness.stats.slices import SliceSpec


def load_coverage_sim():
    spec = importlib.util.spec_from_file_location("coverage_sim", REPO / "benchmarks" / "coverage_sim.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def count_table(rows: list[dict]) -> pd.DataFrame:
    """A scored table from (speaker, tags, ref_words, errors) rows; every error is a substitution."""
    table = pd.DataFrame(rows)
    table["id"] = [f"u{i}" for i in range(len(table))]
    table["status"] = "ok"
    table["substitutions"], table["deletions"], table["insertions"] = table["errors"], 0, 0
    table["hits"] = table["ref_words"] - table["errors"]
    words = table["ref_words"].astype(float)
    table["wer"] = (table["errors"] / words).where(words > 0, np.nan)
    return table


def options(**kw) -> StatsOptions:
    return StatsOptions(**{"min_speakers": 5, "min_words": 100, "bootstrap": 400, "permutations": 400, **kw})


def by_label(dimension) -> dict:
    return {s.label: s for s in dimension.slices}


def sensitivity_of(aggregates, name: str):
    return next(s for s in aggregates.sensitivity if s.dimension == name)


# 1. Pooled and utterance-mean disagree on the worst accent ------------------------------------------


def short_clips_table() -> pd.DataFrame:
    """anglian: many 2-word clips with 1 error each (utterance-mean ≈ 43 %) but most words in two long,
    clean clips (pooled ≈ 8 %); brummie: 20-word clips with 4-5 errors (≈ 22 % under every aggregate);
    cockney: 10-word clips with 1 error (10 %)."""
    rows = []
    for s in range(6):
        speaker = f"anglian{s}"
        rows += [{"speaker": speaker, "accent": "anglian", "ref_words": 2, "errors": 1}] * 12
        rows += [{"speaker": speaker, "accent": "anglian", "ref_words": 60 + s, "errors": 0}] * 2
        rows += [{"speaker": f"brummie{s}", "accent": "brummie", "ref_words": 20, "errors": 4 + s % 2}] * 8
        rows += [{"speaker": f"cockney{s}", "accent": "cockney", "ref_words": 10, "errors": 1}] * 10
    return count_table(rows)


def test_short_clips_flip_the_worst_accent_and_sensitivity_says_so():
    table = short_clips_table()
    aggregates = summarise_aggregates(table, [SliceSpec(by="accent")], options())
    anglian_words = sum(24 + 2 * (60 + s) for s in range(6))
    expected = {
        "pooled": {"anglian": 72 / anglian_words, "brummie": 216 / 960, "cockney": 0.1},
        "speaker-mean": {
            "anglian": np.mean([12 / (24 + 2 * (60 + s)) for s in range(6)]),
            "brummie": 216 / 960,
            "cockney": 0.1,
        },
        "utterance-mean": {"anglian": 6 / 14, "brummie": 216 / 960, "cockney": 0.1},
    }
    for aggregate, values in expected.items():
        dim = aggregates.blocks[aggregate].dimensions[0]
        assert {label: s.wer for label, s in by_label(dim).items()} == pytest.approx(values)
    pooled_dim = aggregates.blocks["pooled"].dimensions[0]
    utterance_dim = aggregates.blocks["utterance-mean"].dimensions[0]
    assert pooled_dim.disparity.worst == "brummie" and utterance_dim.disparity.worst == "anglian"
    assert utterance_dim.disparity.worst_wer == pytest.approx(6 / 14)

    sensitivity = sensitivity_of(aggregates, "accent")
    assert sensitivity.flagged
    assert sensitivity.worst["pooled"] != sensitivity.worst["utterance-mean"]
    assert sensitivity.worst == {"pooled": "brummie", "speaker-mean": "brummie", "utterance-mean": "anglian"}
    assert sensitivity.ranking["pooled"] == ["brummie", "cockney", "anglian"]
    assert sensitivity.ranking["utterance-mean"] == ["anglian", "brummie", "cockney"]
    (worst_change,) = [c for c in sensitivity.changes if c.startswith("worst slice")]
    for word in ("pooled", "utterance-mean", "brummie", "anglian"):
        assert word in worst_change, worst_change
    assert "anglian under utterance-mean" in worst_change and "brummie under pooled" in worst_change
    # summarise() is the headline block: pooled unless chosen otherwise.
    assert summarise(table, [SliceSpec(by="accent")], options()).dimensions[0].disparity.worst == "brummie"
    chosen = summarise(table, [SliceSpec(by="accent")], options(aggregate="utterance-mean"))
    assert chosen.aggregate == "utterance-mean" and chosen.dimensions[0].disparity.worst == "anglian"


# 2. Equal lengths, one utterance per speaker: the three aggregates coincide ------------------------


def test_one_equal_length_utterance_per_speaker_makes_the_aggregates_agree():
    rng = np.random.default_rng(5)
    rows = [
        {
            "speaker": f"{accent}{s}",
            "accent": accent,
            "noise": ("clean", "cafe")[s % 2],
            "ref_words": 12,
            "errors": int(rng.binomial(12, rate)),
        }
        for accent, rate in (("a", 0.1), ("b", 0.15), ("c", 0.3))
        for s in range(10)
    ]
    table = count_table(rows)
    specs = [SliceSpec(by="accent"), SliceSpec(by="noise")]
    aggregates = summarise_aggregates(table, specs, options(min_words=50))
    pooled = aggregates.blocks["pooled"]
    assert pooled.overall.wer == pytest.approx(table["errors"].sum() / table["ref_words"].sum())
    for aggregate in AGGREGATES[1:]:
        block = aggregates.blocks[aggregate]
        assert block.overall.wer == pytest.approx(pooled.overall.wer, abs=1e-12)
        assert block.overall.wer_ci == pytest.approx(pooled.overall.wer_ci, abs=1e-12)
        for dim, pooled_dim in zip(block.dimensions, pooled.dimensions, strict=True):
            assert dim.overall_wer == pytest.approx(pooled_dim.overall_wer, abs=1e-12)
            for s, p in zip(dim.slices, pooled_dim.slices, strict=True):
                assert (s.label, s.wer) == (p.label, pytest.approx(p.wer, abs=1e-12))
                assert s.wer_ci == pytest.approx(p.wer_ci, abs=1e-12)
                assert s.pooled_wer == pytest.approx(s.speaker_mean_wer) == pytest.approx(s.utterance_mean_wer)
            assert dim.disparity.gap_ci == pytest.approx(pooled_dim.disparity.gap_ci, abs=1e-12)
            assert dim.test.p_value == pytest.approx(pooled_dim.test.p_value)
    for sensitivity in aggregates.sensitivity:
        assert not sensitivity.flagged and sensitivity.changes == []
        assert len(set(sensitivity.worst.values())) == 1
    assert sensitivity_of(aggregates, "accent").worst["pooled"] == "c"


# 3. Definitions, checked against jiwer through the pipeline ----------------------------------------

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


@pytest.fixture
def varied_manifest(make_manifest):
    """3 accents × 6 speakers, clips of 2-14 words; every welsh speaker also says just "uh", which the
    whisper-english normaliser empties (N = 0)."""
    records = []
    for accent in ("scottish", "welsh", "general"):
        for speaker in range(6):
            for n in range(8):
                length = 2 + (3 * speaker + 5 * n) % 13
                records.append(
                    {
                        "id": f"{accent}-{speaker}-{n}",
                        "text": " ".join(WORDS[(n + k) % 10] for k in range(length)),
                        "speaker": f"{accent}{speaker}",
                        "accent": accent,
                        "noise": ("clean", "cafe")[n % 2],
                    }
                )
            if accent == "welsh":
                uh = {"id": f"welsh-{speaker}-uh", "text": "uh", "speaker": f"welsh{speaker}", "noise": "cafe"}
                records.append({**uh, "accent": "welsh"})
    return make_manifest(records)


def run_stub(tmp_path: Path, manifest: Path, **backend):
    config = write_config(
        tmp_path / "run.yaml",
        manifest,
        {"name": "stub", **backend},
        stats={"min_speakers": 3, "min_words": 20, "bootstrap": 300, "permutations": 300},
    )
    return run(prepare(load_config(config)))


def test_speaker_and_utterance_means_match_jiwer(tmp_path, varied_manifest):
    outcome = run_stub(tmp_path, varied_manifest, default_rate=0.15, error_rates={"accent": {"scottish": 0.3}}, seed=3)
    metrics = json.loads((outcome.paths.root / "metrics.json").read_text())
    table = pd.read_parquet(outcome.paths.root / "utterances.parquet")
    table = table[table["status"] == "ok"]
    empty = table["ref_norm"].str.split().str.len() == 0
    # The "uh" clips are empty references; the stub made some of them insertions.
    assert empty.sum() == 6 and metrics["aggregation"]["empty_references"] == 6
    report = (outcome.paths.root / "report.md").read_text()
    assert "6 utterances have an empty reference after normalisation" in report
    assert (table.loc[empty, "hyp_norm"] != "").any()

    def speaker_mean(rows: pd.DataFrame) -> float:
        said = rows[rows["ref_norm"].str.split().str.len() > 0]  # filler-only clips have no WER
        per_speaker = [jiwer.wer(g["ref_norm"].tolist(), g["hyp_norm"].tolist()) for _, g in said.groupby("speaker")]
        return float(np.mean(per_speaker))

    def utterance_mean(rows: pd.DataFrame) -> float:
        spoken = rows[rows["ref_norm"].str.split().str.len() > 0]
        return float(np.mean([jiwer.wer(r, h) for r, h in zip(spoken["ref_norm"], spoken["hyp_norm"], strict=True)]))

    blocks = metrics["aggregates"]
    assert set(blocks) == set(AGGREGATES) and metrics["aggregation"]["headline"] == "pooled"
    # Pooled is jiwer over the utterances with reference words: filler-only clips have no WER.
    spoken = table[~empty]
    assert blocks["pooled"]["overall"]["wer"] == pytest.approx(
        jiwer.wer(spoken["ref_norm"].tolist(), spoken["hyp_norm"].tolist())
    )
    assert blocks["speaker-mean"]["overall"]["wer"] == pytest.approx(speaker_mean(table))
    assert blocks["utterance-mean"]["overall"]["wer"] == pytest.approx(utterance_mean(table))
    assert metrics["overall"]["utterances"] == len(table)  # the empty ones are scored utterances
    overall = {aggregate: block["overall"]["wer"] for aggregate, block in blocks.items()}
    assert len(set(overall.values())) == 3  # unequal clip lengths: three different numbers

    for name, tag in (("accent", "accent"), ("noise", "noise")):
        slices = {
            aggregate: {s["label"]: s for s in next(d for d in block["dimensions"] if d["name"] == name)["slices"]}
            for aggregate, block in blocks.items()
        }
        for label, rows in table.groupby(tag):
            expected_speaker, expected_utterance = speaker_mean(rows), utterance_mean(rows)
            assert slices["speaker-mean"][label]["wer"] == pytest.approx(expected_speaker), (name, label)
            assert slices["utterance-mean"][label]["wer"] == pytest.approx(expected_utterance), (name, label)
            # Every block carries all three point values beside its own.
            for aggregate in AGGREGATES:
                record = slices[aggregate][label]
                assert record["speaker_mean_wer"] == pytest.approx(expected_speaker)
                assert record["utterance_mean_wer"] == pytest.approx(expected_utterance)
                said = rows[rows["ref_norm"].str.split().str.len() > 0]
                assert record["pooled_wer"] == pytest.approx(
                    jiwer.wer(said["ref_norm"].tolist(), said["hyp_norm"].tolist())
                )
    # The welsh "uh" clips are scored utterances, counted, but none of their insertions enter a WER.
    welsh = table[table["accent"] == "welsh"]
    fillers = welsh["ref_words"] == 0
    assert welsh.loc[fillers, "insertions"].sum() > 0
    pooled_welsh = next(d for d in blocks["pooled"]["dimensions"] if d["name"] == "accent")["slices"]
    welsh_record = next(s for s in pooled_welsh if s["label"] == "welsh")
    assert welsh_record["utterances"] == 54 and welsh_record["no_reference_words"] == int(fillers.sum())
    assert welsh_record["insertions"] == welsh.loc[~fillers, "insertions"].sum()


def test_empty_references_are_left_out_of_every_aggregate_and_counted():
    table = count_table(
        [
            {"speaker": "a", "ref_words": 4, "errors": 1},
            {"speaker": "a", "ref_words": 0, "errors": 2},  # two insertions on an empty reference
            {"speaker": "b", "ref_words": 2, "errors": 1},
            {"speaker": "c", "ref_words": 0, "errors": 1},  # a speaker with no reference words at all
        ]
    )
    table.loc[[1, 3], "substitutions"], table.loc[[1, 3], "insertions"] = 0, [2, 1]
    aggregates = summarise_aggregates(table, [], options(min_speakers=1, min_words=1, permutations=0))
    overall = aggregates.headline.overall
    assert aggregates.empty_references == 2
    # Issue 22: errors on no reference word made a dimension's overall exceed all its slices.
    assert overall.pooled_wer == pytest.approx((1 + 1) / 6)
    assert overall.speaker_mean_wer == pytest.approx((1 / 4 + 1 / 2) / 2)  # c has no words: not a speaker here
    assert overall.utterance_mean_wer == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert overall.speakers_wer.speakers == 2 and overall.utterances == 4 and overall.insertions == 0
    assert overall.no_reference_words == 2


def test_a_table_with_no_scored_utterance_gives_no_aggregate_rather_than_an_error():
    table = count_table([{"speaker": "s", "accent": "x", "ref_words": 3, "errors": 1}] * 3).assign(status="error")
    aggregates = summarise_aggregates(table, [SliceSpec(by="accent")], options())
    for block in aggregates.blocks.values():
        assert block.overall.wer is None and block.overall.failed == 3
        (x,) = block.dimensions[0].slices
        assert (x.label, x.failed, x.wer, x.speaker_mean_wer, x.utterance_mean_wer) == ("x", 3, None, None, None)
    assert aggregates.empty_references == 0 and not any(s.flagged for s in aggregates.sensitivity)


# 4. Badly-served speakers ------------------------------------------------------------------------


def planted_speakers_table(bad: int, seed: int = 11) -> pd.DataFrame:
    """3 accents × 10 speakers × 20 clips of 10 words at 10 % errors; ``bad`` speakers of accent c at 40 %."""
    rng = np.random.default_rng(seed)
    rows = []
    for accent in ("a", "b", "c"):
        for s in range(10):
            rate = 0.4 if accent == "c" and s < bad else 0.1
            rows += [
                {"speaker": f"{accent}{s}", "accent": accent, "ref_words": 10, "errors": int(rng.binomial(10, rate))}
                for _ in range(20)
            ]
    return count_table(rows)


def own_wers(table: pd.DataFrame) -> pd.DataFrame:
    sums = table.groupby(["accent", "speaker"])[["errors", "ref_words"]].sum()
    return (sums["errors"] / sums["ref_words"]).rename("wer").reset_index()


def test_planted_badly_served_speakers_are_found():
    table = planted_speakers_table(bad=3)
    aggregates = summarise_aggregates(table, [SliceSpec(by="accent")], options())
    overall_pooled = table["errors"].sum() / table["ref_words"].sum()
    assert aggregates.speaker_wer_threshold == pytest.approx(2 * overall_pooled)
    own = own_wers(table)
    assert (own["wer"] > aggregates.speaker_wer_threshold).sum() == 3  # the planted three, and only they
    for block in aggregates.blocks.values():  # the spread is the same whatever the headline
        spreads = {s.label: s.speakers_wer for s in block.dimensions[0].slices}
        c = spreads["c"]
        assert (c.above, c.speakers, c.share) == (3, 10, pytest.approx(0.3))
        assert c.threshold == pytest.approx(2 * overall_pooled)
        assert c.share_ci[0] <= c.share <= c.share_ci[1] < 1
        assert c.quartiles == pytest.approx(np.quantile(own.loc[own["accent"] == "c", "wer"], [0.25, 0.5, 0.75]))
        for label in ("a", "b"):
            # None of 10 speakers: a Wilson interval from 0, never a zero-width [0, 0].
            assert (spreads[label].above, spreads[label].share) == (0, 0.0)
            assert spreads[label].share_ci[0] == 0.0 and 0.2 < spreads[label].share_ci[1] < 0.35
        assert block.overall.speakers_wer.above == 3
        assert block.overall.speakers_wer.share == pytest.approx(3 / 30)


def test_badly_served_share_interval_excludes_zero_when_the_group_is_not_rare():
    """With only 3 bad speakers among 30, a speaker bootstrap draws none of them in (27/30)^30 ≈ 4.2 % of
    replicates, so the 95 % interval of the share reaches 0; 6 of them ((24/30)^30 ≈ 0.12 %) cannot hide."""
    spread = (
        summarise_aggregates(planted_speakers_table(bad=6), [SliceSpec(by="accent")], options())
        .headline.dimensions[0]
        .slices[2]
        .speakers_wer
    )
    assert (spread.above, spread.share) == (6, pytest.approx(0.6))
    assert 0 < spread.share_ci[0] < 0.6 < spread.share_ci[1]


def test_absolute_speaker_wer_threshold_is_honoured():
    table = planted_speakers_table(bad=3)
    own = own_wers(table)
    for threshold in (0.08, 0.12, 0.5):
        aggregates = summarise_aggregates(
            table, [SliceSpec(by="accent")], options(speaker_wer_threshold=threshold, permutations=0)
        )
        assert aggregates.speaker_wer_threshold == threshold
        for s in aggregates.headline.dimensions[0].slices:
            expected = int((own.loc[own["accent"] == s.label, "wer"] > threshold).sum())
            assert (s.speakers_wer.threshold, s.speakers_wer.above) == (threshold, expected)
            assert s.speakers_wer.share == pytest.approx(expected / 10)
    # The absolute thresholds really move the count away from the planted three (default: 2 × pooled).
    assert (own["wer"] > 0.08).sum() > 15 and (own["wer"] > 0.5).sum() == 0


# 5. Switching the headline without re-transcribing -------------------------------------------------


def test_rescore_switches_the_headline_aggregate(tmp_path, varied_manifest):
    outcome = run_stub(tmp_path, varied_manifest, default_rate=0.1, error_rates={"accent": {"scottish": 0.3}})
    root = outcome.paths.root
    before = json.loads((root / "metrics.json").read_text())
    report_before = (root / "report.md").read_text()
    assert before["aggregate"] == "pooled"
    assert before["overall"]["wer"] == before["aggregates"]["pooled"]["overall"]["wer"]

    metrics = rescore(root, aggregate="speaker-mean")
    assert json.loads((root / "metrics.json").read_text()) == metrics
    assert metrics["aggregate"] == metrics["aggregation"]["headline"] == "speaker-mean"
    assert metrics["stats"]["aggregate"] == "speaker-mean"
    assert metrics["overall"]["wer"] == metrics["aggregates"]["speaker-mean"]["overall"]["wer"]
    assert metrics["overall"]["wer"] != metrics["aggregates"]["pooled"]["overall"]["wer"]
    assert metrics["dimensions"] == metrics["aggregates"]["speaker-mean"]["dimensions"]
    # Only the headline moved: every block is what it was.
    assert metrics["aggregates"] == before["aggregates"]
    assert metrics["aggregation"]["sensitivity"] == before["aggregation"]["sensitivity"]
    headline = re.compile(r"(?i)(aggregate|headline)\W+speaker-mean")
    assert headline.search((root / "report.md").read_text())
    assert not headline.search(report_before)

    with pytest.raises(InputError, match="bogus"):
        rescore(root, aggregate="bogus")
    result = asrfair("score", str(root), "--aggregate", "bogus")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "bogus" in result.stderr
    assert json.loads((root / "metrics.json").read_text())["aggregate"] == "speaker-mean"  # untouched


# 6. One set of replicates for every aggregate --------------------------------------------------------


def varied_table(seed: int) -> pd.DataFrame:
    """4 accents × 8 speakers with logit-normal speaker effects and 3-25-word clips."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, accent in enumerate(("a", "b", "c", "d")):
        for s in range(8):
            p = 1 / (1 + np.exp(-(np.log(0.15 / 0.85) + 0.2 * a + rng.normal(0, 0.6))))
            for _ in range(int(rng.integers(4, 15))):
                words = int(rng.integers(3, 26))
                rows.append(
                    {"speaker": f"{accent}{s}", "accent": accent, "ref_words": words, "errors": rng.binomial(words, p)}
                )
    return count_table(rows)


def test_intervals_are_leave_one_speaker_out_t_intervals_for_every_aggregate():
    table = varied_table(21)
    specs = [SliceSpec(by="accent")]
    first = summarise_aggregates(table, specs, options(seed=7))
    assert first == summarise_aggregates(table, specs, options(seed=7))
    for aggregate in AGGREGATES:
        block = first.blocks[aggregate]
        for s in [block.overall, *block.dimensions[0].slices]:
            assert s.wer_ci[0] < s.wer < s.wer_ci[1], (aggregate, s.label)

    # Rebuild each aggregate's standard error by brute force: drop one speaker, recompute the slice's
    # ratio estimator (jackknife). The log-scale interval's half-width is t(df) × se / WER with df
    # between 1 and speakers − 1.
    code, speakers = pd.factorize(table["speaker"])
    errors, words = np.bincount(code, table["errors"]), np.bincount(code, table["ref_words"])
    wer_sum, utts = np.bincount(code, table["wer"]), np.bincount(code).astype(float)
    accent_of = table.groupby("speaker")["accent"].first()[speakers].to_numpy()
    columns = {
        "pooled": (errors, words),
        "speaker-mean": (errors / words, np.ones(len(speakers))),
        "utterance-mean": (wer_sum, utts),
    }
    for aggregate, (numerator, denominator) in columns.items():
        slices = by_label(first.blocks[aggregate].dimensions[0])
        for label, s in slices.items():
            mine = np.flatnonzero(accent_of == label)
            value = numerator[mine].sum() / denominator[mine].sum()
            assert s.wer == pytest.approx(value)
            rest_num, rest_den = numerator[mine].sum() - numerator[mine], denominator[mine].sum() - denominator[mine]
            leave_out = rest_num / rest_den
            n = mine.size
            se = np.sqrt((n - 1) / n * np.sum((leave_out - leave_out.mean()) ** 2))
            half = (np.log(s.wer_ci[1]) - np.log(s.wer_ci[0])) / 2
            assert np.log(s.wer_ci[0]) + half == pytest.approx(np.log(value))  # centred on the log scale
            assert scipy_stats.t.ppf(0.975, n - 1) * se / value <= half * (1 + 1e-9), (aggregate, label)
            assert half <= scipy_stats.t.ppf(0.975, 1) * se / value * (1 + 1e-9), (aggregate, label)


def test_speaker_mean_interval_coverage_fast():
    """Fast coverage check of the harness's own intervals on benchmarks/coverage_sim.py's generator
    (40 speakers, logit-normal speaker effects); the row bootstrap there is far too narrow."""
    sim_module = load_coverage_sim()
    truth, _ = sim_module.true_wer(0, 1_000_000)
    covered = np.zeros(3)
    datasets = 120
    rng = np.random.default_rng(0)
    for _ in range(datasets):
        data = sim_module.simulate(rng, 40)
        table = count_table(
            [
                {"speaker": f"s{s:02d}", "ref_words": int(w), "errors": int(e)}
                for s, w, e in zip(data.speaker, data.words, data.errors, strict=True)
            ]
        )
        aggregates = summarise_aggregates(table, [], options(permutations=0))
        for i, aggregate in enumerate(sim_module.CLUSTERED):
            low, high = aggregates.blocks[aggregate].overall.wer_ci
            covered[i] += low <= truth <= high
    assert (covered / datasets >= 0.88).all() and (covered / datasets <= 0.995).all(), covered / datasets
    sim = sim_module.simulate_coverage(datasets=60, speakers=40, seed=0, replicates=200, truth_draws=1_000_000)
    assert sim.coverage(sim_module.Simulation.NAMES.index("row bootstrap pooled")) < 0.7


def test_the_worked_example_of_docs_statistics():
    """docs/statistics.md: X has a 100-word passage (10 errors) and four 2-word commands (1 error
    each) from two speakers; Y has two 20-word sentences with 5 errors each."""
    rows = [{"id": "x1", "speaker": "x1", "accent": "x", "errors": 10, "ref_words": 100}]
    rows += [{"id": f"x2-{i}", "speaker": "x2", "accent": "x", "errors": 1, "ref_words": 2} for i in range(4)]
    rows += [{"id": s, "speaker": s, "accent": "y", "errors": 5, "ref_words": 20} for s in ("y1", "y2")]
    result = summarise_aggregates(count_table(rows), [SliceSpec(by="accent")], options(min_speakers=1, min_words=1))
    values = {a: by_label(result.blocks[a].dimensions[0]) for a in AGGREGATES}
    assert values["pooled"]["x"].wer == pytest.approx(14 / 108) and values["pooled"]["y"].wer == pytest.approx(0.25)
    assert values["speaker-mean"]["x"].wer == pytest.approx(0.30) and values["speaker-mean"]["y"].wer == 0.25
    assert values["utterance-mean"]["x"].wer == pytest.approx(0.42) and values["utterance-mean"]["y"].wer == 0.25
    flag = sensitivity_of(result, "accent")
    assert flag.flagged
    assert flag.worst == {"pooled": "y", "speaker-mean": "x", "utterance-mean": "x"}
    assert flag.changes[0] == "worst slice: y under pooled, x under speaker-mean, x under utterance-mean"
