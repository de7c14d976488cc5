"""Runaway transcripts: the rules, the capped view, flips named in words, ▲ agreement, sanity warnings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import accent_records, write_config

from harness.config import load_config
from harness.pipeline import prepare, rescore, run
from harness.scoring.options import RunawayRules
from harness.scoring.runaway import capped, classify, has_loop, loop_pattern

LOOPED = "general-3-7"
# The test tone is 0.5 s long; its 10-word clips would all break the words-per-second rule.
LENIENT_RATE = {"max_words_per_second": 100}


@pytest.fixture
def manifest(make_manifest):
    """600 utterances, 10 speakers per accent, 10 words each."""
    records = accent_records(10, 20)
    return make_manifest(records)


def stub_run(tmp_path, manifest, backend, **extra):
    extra.setdefault("runaway", LENIENT_RATE)
    tmp_path.mkdir(exist_ok=True)
    config = load_config(write_config(tmp_path / "run.yaml", manifest, {"name": "stub", **backend}, **extra))
    return run(prepare(config))


def classified(hyps, refs, seconds=None, rules=RunawayRules()):
    hyp, ref = pd.Series(hyps), pd.Series(refs)
    hyp_words = np.array([len(h.split()) for h in hyps], dtype=float)
    ref_words = np.array([len(r.split()) for r in refs], dtype=float)
    seconds = np.full(len(hyps), np.nan) if seconds is None else np.array(seconds, dtype=float)
    return classify(hyp, ref, hyp_words, ref_words, seconds, np.ones(len(hyps), bool), rules).tolist()


def test_each_rule_names_its_reason_and_spares_ordinary_transcripts():
    refs = ["oh my god", "the cat sat", "no no no no you don't", "a b c", "one two three", "one two three"]
    hyps = [
        "oh my my my my my god",  # 1-gram ×5
        "the cat sat on the mat on the mat on the mat on the mat",  # 3-gram ×4
        "no no no no you don't",  # the reference loops too: speech
        "a b c d e f g h i j k l m n o p",  # 16 words on 3: length
        "one two three four",
        "",
    ]
    assert classified(hyps, refs) == ["loop", "loop", None, "length", None, "empty"]
    # 4 words in 0.25 s is 16 words per second; the same in 2 s is speech
    assert classified(["one two three four"] * 2, ["one two three four"] * 2, [0.25, 2.0]) == ["rate", None]
    assert classified([""], ["a"], rules=RunawayRules(flag_empty=False)) == [None]


def test_loop_needs_whole_words_back_to_back():
    pattern = loop_pattern(4, 4)
    texts = pd.Series(["ammy my my my", "my my my", "go my go my go my go my", "my my x my my", None])
    assert has_loop(texts, pattern).tolist() == [False, False, True, False, False]


def test_capping_removes_insertions_only():
    counts = pd.DataFrame(
        {
            "hits": [0, 5, 0],
            "substitutions": [2, 0, 0],
            "deletions": [1, 0, 0],
            "insertions": [200, 1, 4],
            "ref_words": [3, 5, 0],
            "errors": [203, 1, 4],
        }
    ).astype("Int64")
    out = capped(counts.assign(status="ok"))
    assert out["errors"].tolist() == [3, 1, 0]
    assert (out["substitutions"] + out["deletions"] + out["insertions"]).tolist() == out["errors"].tolist()
    assert out["wer"].tolist()[:2] == [1.0, 0.2]


def test_planted_loop_is_flagged_capped_and_named_when_it_flips_the_worst_slice(tmp_path, manifest):
    """Done-when: a repetition loop planted in one 'general' clip makes general the headline's worst
    accent; it is flagged, capped in the robust view, and named where the worst slice flips."""
    outcome = stub_run(
        tmp_path,
        manifest,
        {"error_rates": {"accent": {"scottish": 0.2, "welsh": 0.1}}, "loops": [{"ids": [LOOPED], "repeats": 600}]},
    )
    table = pd.read_parquet(outcome.paths.utterances)
    flagged = table[table["runaway"].notna()]
    assert flagged["id"].tolist() == [LOOPED] and flagged["runaway"].tolist() == ["loop"]

    metrics = outcome.metrics
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert accent["disparity"]["worst"] == "general"  # 600 inserted words on 2000: 30 % > scottish's ~20 %
    block = metrics["runaway"]
    robust = next(d for d in block["dimensions"] if d["name"] == "accent")
    general = next(s for s in robust["slices"] if s["label"] == "general")
    assert general["count"]["runaway"] == 1 and general["count"]["reasons"] == {"loop": 1}
    assert general["count"]["error_share"] == 1.0  # the stub makes no other error in general
    assert general["capped_wer"] == pytest.approx(10 / 2000)  # 600 errors capped at the clip's 10 words
    assert general["worst_clips"][0]["id"] == LOOPED
    assert robust["worst"] == {"headline": "general", "capped": "scottish"}
    change = robust["changes"][0]  # then the ★ moving with it
    assert change.startswith("worst slice: general in the headline, scottish with each utterance's errors capped")
    assert f"{LOOPED} (loop, 600 errors on 10 words)" in change
    assert block["flagged"]

    report = (outcome.paths.root / "report.md").read_text(encoding="utf-8")
    assert "## Robust view: runaway transcripts" in report and LOOPED in report
    assert LOOPED in (outcome.paths.root / "report.html").read_text(encoding="utf-8")
    on_disk = json.loads(outcome.paths.metrics.read_text(encoding="utf-8"))
    assert on_disk["runaway"]["dimensions"][0]["changes"] or on_disk["runaway"]["dimensions"][1]["changes"]
    assert on_disk["warnings"] == []


def test_rescore_keeps_the_rate_rule_from_the_stored_clip_lengths(tmp_path, manifest):
    outcome = stub_run(tmp_path, manifest, {}, runaway={})  # default rules: 10 words in the 0.5 s tone
    table = pd.read_parquet(outcome.paths.utterances)
    assert table["audio_s"].tolist() == pytest.approx([0.5] * len(table))
    assert set(table["runaway"]) == {"rate"}
    metrics = rescore(outcome.paths.root)
    assert metrics["runaway"]["overall"]["reasons"] == {"rate": 600}
    assert any("runaways" in w for w in metrics["warnings"])


def test_sanity_warnings_for_empty_transcripts_and_wer_above_100(tmp_path, manifest):
    empty = stub_run(tmp_path / "a", manifest, {"default_rate": 1.0, "mix": {"deletion": 1.0}})
    assert empty.metrics["overall"]["wer"] == 1.0
    assert any("600 of 600 transcripts are empty" in w for w in empty.metrics["warnings"])
    loops = [{"ids": [f"general-{s}-0" for s in range(5)], "repeats": 500}]  # 2500 words on general's 2000
    loud = stub_run(tmp_path / "b", manifest, {"loops": loops})
    (warning,) = [w for w in loud.metrics["warnings"] if "exceeds 100%" in w]
    assert warning.startswith("WER exceeds 100% (accent general 125%")


def test_conditions_headline_is_the_reference_and_one_clip_cannot_decide_a_triangle(tmp_path, make_manifest):
    """A loop planted under 'phone' in one welsh clip: the headline is clean only, phone's ΔWER is
    told how much comes from runaways, and the most-degraded flip is named."""
    records = accent_records(8, 10)
    manifest = make_manifest(records)
    backend = {
        "name": "stub",
        "error_rules": [{"when": {"condition": "phone", "accent": "scottish"}, "rate": 0.1}],
        "loops": [{"ids": ["welsh-2-3"], "when": {"condition": "phone"}, "repeats": 300}],
    }
    config = load_config(
        write_config(
            tmp_path / "run.yaml",
            manifest,
            backend,
            conditions=[{"name": "clean"}, {"name": "phone", "transforms": [{"type": "telephone"}]}],
            runaway=LENIENT_RATE,
        )
    )
    outcome = run(prepare(config))
    metrics = outcome.metrics
    assert metrics["overall"]["utterances"] == len(records)  # clean only: nothing pooled across conditions
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert sum(s["utterances"] for s in accent["slices"]) == len(records)
    block = metrics["runaway"]
    assert block["scope"] == "condition clean only"
    clean, phone = block["conditions"]
    assert (clean["count"]["runaway"], phone["count"]["runaway"]) == (0, 1)
    assert phone["runaway_delta_share"] == pytest.approx(300 / (300 + 0.1 * 800), abs=0.08)
    assert phone["capped_delta"] < phone["delta"]
    (shift,) = [s for s in block["shifts"] if s["dimension"] == "accent"]
    assert shift["most_degraded"] == {"headline": "welsh", "capped": "scottish"}
    assert any("most degraded under phone: welsh in the headline, scottish" in c for c in shift["changes"])
    accent = next(d for d in metrics["conditions"]["dimensions"] if d["name"] == "accent")
    welsh = next(s for s in accent["slices"] if s["label"] == "welsh")
    assert not welsh["cells"][1]["degrades_more"]  # one looping clip never earns welsh a ▲
    assert "welsh" not in shift["degrades_more"]["capped"]
    assert "welsh" in shift["withdrawn"] or "welsh" not in shift["degrades_more"]["headline"]


def test_a_triangle_stays_only_where_the_capped_analysis_marks_it_too():
    """agreed_marks on a real paired comparison (scottish truly hurt +15 pp under noisy): a ▲ the
    capped analysis lacks is withdrawn and named; one it shares stays."""
    from dataclasses import replace

    from test_degradation_stats import ACCENT, simulate

    from harness.stats.by_slice import StatsOptions
    from harness.stats.degradation import degradation
    from harness.stats.robust import agreed_marks, robust_shifts

    table = simulate(np.random.default_rng(3), extra={"noisy": {"scottish": 0.15}})
    options = StatsOptions(min_speakers=2, min_words=10, bootstrap=300, permutations=300)
    headline = degradation(table, [ACCENT], ["clean", "noisy"], {}, options)
    marked = lambda d: [s.label for s in d.dimensions[0].slices if s.cells[1].degrades_more]  # noqa: E731
    assert marked(headline) == ["scottish"]
    assert marked(agreed_marks(headline, headline)) == ["scottish"]
    dim = headline.dimensions[0]
    unmarked = [replace(s, cells=[s.cells[0], replace(s.cells[1], degrades_more=False)]) for s in dim.slices]
    capped_view = replace(headline, dimensions=[replace(dim, slices=unmarked)])
    assert marked(agreed_marks(headline, capped_view)) == []
    (shift,) = robust_shifts(headline, capped_view)
    assert shift.withdrawn == ["scottish"]
    assert shift.changes == [
        "▲ under noisy: scottish in the headline, none capped; a ▲ needs both, so none is shown for scottish"
    ]
