"""Rate model (Poisson GEE) edge cases from issue 22 item 7: a level with one speaker gets no
interval and no p-value (never p = 0 with a zero-width interval), and the few-speakers caution
counts speakers per level. Coverage itself is measured by benchmarks/calibration.py (--only model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.format import effect_cells
from harness.stats.rate_model import fit_rate_model


def table(speakers: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Per accent, that many speakers with log-normal rates around 0.15, 8 utterances of 5–20 words."""
    rng = np.random.default_rng(seed)
    rows = []
    for accent, count in speakers.items():
        for s in range(count):
            rate = min(0.15 * np.exp(0.5 * rng.standard_normal()), 0.8)
            for u in range(8):
                words = int(rng.integers(5, 21))
                errors = int(rng.binomial(words, rate))
                rows.append({"id": f"{accent}{s}-{u}", "speaker": f"{accent}{s}", "accent": accent,
                             "noise": ("quiet", "noisy")[u % 2], "status": "ok", "ref_words": words, "errors": errors})
    return pd.DataFrame(rows)


def test_a_one_speaker_level_has_no_interval_and_no_p_value():
    result = fit_rate_model(table({"a": 20, "b": 1, "c": 20}), ["accent"], {"accent": "a"})
    effects = {e.level: e for e in result.effects}
    lone = effects["b"]
    assert lone.ci == [None, None] and lone.p_value is None and lone.speakers == 1
    assert lone.note == "one speaker" and lone.rate_ratio is not None  # the point estimate is still shown
    assert effect_cells(lone)[3:] == ["– (one speaker)", "–"]
    c = effects["c"]  # the other levels are unaffected
    assert c.ci[0] < c.rate_ratio < c.ci[1] and 0 < c.p_value <= 1 and c.note is None


def test_a_one_speaker_reference_leaves_its_factor_without_intervals():
    result = fit_rate_model(table({"a": 1, "b": 20}), ["accent"], {"accent": "a"})
    (b,) = result.effects
    assert result.references["accent"] == "a" and b.ci == [None, None] and b.p_value is None
    assert b.note == "reference a has one speaker"


def test_the_caution_counts_speakers_per_level_not_in_total():
    few = fit_rate_model(table({"a": 40, "b": 40, "c": 3}), ["accent", "noise"], {"accent": "a"})
    assert few.speakers == 83 and few.caution is not None and "3 speakers at accent=c" in few.caution
    enough = fit_rate_model(table({"a": 12, "b": 12, "c": 12}), ["accent", "noise"], {"accent": "a"})
    assert enough.speakers == 36 and enough.caution is None  # under the old total-count rule (< 40): cautioned
