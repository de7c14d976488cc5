"""The statistics' results: the records the statistics return, ``RunResult`` holds and the
reports render, every field of them in metrics.json (docs/metrics.md).

Records only, apart from the functions that compute them (one module per statistic:
:mod:`~harness.stats.by_slice` for ``Aggregates`` and its parts, :mod:`~harness.stats.degradation`
for ``Degradation``, :mod:`~harness.stats.normaliser_sensitivity`, :mod:`~harness.stats.rate_model`,
:mod:`~harness.stats.robust`). This module imports the standard library and the options records
only (tests/test_architecture.py checks), so that reading and rendering a saved or reused run
(``asrfair report``, a warm rerun's summary) loads no numpy, pandas, scipy or statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.scoring.options import RunawayRules
from harness.stats.options import StatsOptions

Interval = list[float | None]  # [low, high]


# Slices and disparity (harness.stats.by_slice)


@dataclass(frozen=True)
class SpeakerSpread:
    """How a slice's speakers fare one by one: the badly-served share and the WER quartiles."""

    threshold: float
    above: int  # speakers whose own WER in this slice exceeds the threshold
    speakers: int  # speakers with at least one reference word here
    share: float | None
    share_ci: Interval | None
    quartiles: list[float | None]  # per-speaker WER: 25th, 50th, 75th percentile


@dataclass(frozen=True)
class SliceComparison:
    """A slice against a baseline WER (the dimension's overall, or the reference group)."""

    difference: float | None
    difference_ci: Interval
    ratio: float | None = None
    ratio_ci: Interval | None = None
    # The smallest |difference| the ★ rule detects with ``power`` (docs/statistics.md); None
    # without a standard error.
    min_detectable: float | None = None
    se: float | None = None  # cluster-robust (linearised) standard error of the difference
    df: float | None = None  # its Welch–Satterthwaite degrees of freedom
    note: str | None = None  # why there is no interval (one speaker, no spread)
    detect_df: float | None = None  # the df min_detectable uses: the dimension test's conservative count
    detect_note: str | None = None  # why there is no min_detectable although there is a standard error


@dataclass(frozen=True)
class SliceStats:
    label: str
    values: dict[str, str]
    utterances: int
    failed: int
    speakers: int
    words: int
    errors: int
    substitutions: int
    deletions: int
    insertions: int
    wer: float | None
    sub_rate: float | None
    del_rate: float | None
    ins_rate: float | None
    pooled_wer: float | None
    speaker_mean_wer: float | None
    utterance_mean_wer: float | None
    supported: bool
    flags: list[str] = field(default_factory=list)
    speakers_wer: SpeakerSpread | None = None
    wer_ci: Interval | None = None
    interval_note: str | None = None  # why wer_ci is None: "one speaker", "no errors", ...
    no_reference_words: int = 0  # scored utterances with N = 0 after normalisation: left out of every WER
    vs_overall: SliceComparison | None = None
    vs_reference: SliceComparison | None = None
    significantly_worse: bool = False


@dataclass(frozen=True)
class Disparity:
    """Spread of pooled WER over the ranked (well-supported) slices of one dimension."""

    ranked: int
    best: str | None = None
    best_wer: float | None = None
    worst: str | None = None
    worst_wer: float | None = None
    ratio: float | None = None  # worst / best; None when the best WER is 0
    ratio_ci: Interval | None = None
    gap: float | None = None  # worst - best, in WER points (absolute)
    gap_ci: Interval | None = None
    worst_vs_overall: float | None = None  # worst - the pooled WER of the dimension's utterances
    worst_vs_overall_ci: Interval | None = None
    reference: str | None = None
    with_failures: list[str] = field(default_factory=list)  # slices where some utterances failed
    note: str | None = None
    detected: bool | None = None  # gap_ci's lower end above 0; False: no detectable gap; None: no interval


@dataclass(frozen=True)
class Test:
    """Test of "WER does not depend on this dimension" over its ranked slices (docs/statistics.md)."""

    kind: str  # the design: between-speaker | within-speaker | mixed
    statistic: float  # the F statistic (``method``)
    replicates: int  # resampling replicates used: 0, the test is analytic (kept for metrics.json readers)
    p_value: float
    min_p: float  # the smallest p-value the method can give (0: analytic)
    p_holm: float | None = None
    significant: bool = False
    method: str = ""  # Welch heteroscedastic F, or Wald F (Hotelling), on log ratios
    df: list[float] = field(default_factory=list)  # the F distribution's degrees of freedom


@dataclass(frozen=True)
class Dimension:
    name: str
    by: list[str]
    slices: list[SliceStats]
    overall_wer: float | None  # pooled over the utterances this dimension keeps (after `where`)
    overall_wer_ci: Interval | None
    disparity: Disparity
    test: Test | None = None


@dataclass(frozen=True)
class Summary:
    overall: SliceStats
    dimensions: list[Dimension]
    options: StatsOptions
    method: str = (
        "leave-one-speaker-out (jackknife) t intervals with Welch–Satterthwaite df; simultaneous pairwise "
        "intervals for the disparity; Welch heteroscedastic / cluster-robust Wald F test on log WER, Holm-corrected"
    )
    aggregate: str = "pooled"


@dataclass(frozen=True)
class Sensitivity:
    """Whether one dimension's finding depends on the aggregate, and how."""

    dimension: str
    flagged: bool
    changes: list[str]  # each change in words, naming the aggregates on each side
    worst: dict[str, str | None]
    ranking: dict[str, list[str]]  # ranked slices, worst first
    significant: dict[str, bool]
    starred: dict[str, list[str]]


@dataclass(frozen=True)
class Aggregates:
    """The same slices under each aggregate, from one set of bootstrap replicates."""

    headline_aggregate: str
    blocks: dict[str, Summary]
    sensitivity: list[Sensitivity]
    speaker_wer_threshold: float
    empty_references: int  # scored utterances with N = 0 after normalisation: left out of every WER

    @property
    def headline(self) -> Summary:
        return self.blocks[self.headline_aggregate]


# Conditions compared (harness.stats.degradation)


DEGRADATION_METHOD = (
    "paired over utterances scored under every condition; leave-one-speaker-out t intervals of paired "
    "differences, skewness-corrected (Hall) with Kish df; excess: slice against the rest, the larger of the "
    "Wald and null-centred variances; gap, ratio and their change: simultaneous (Bonferroni) t intervals; "
    "interaction: Welch heteroscedastic / cluster-robust Wald F test "
    "of per-utterance error differences with null-centred (score-type) variances, Holm-corrected across "
    "dimensions × conditions"
)


@dataclass(frozen=True)
class ConditionCell:
    """One slice under one condition."""

    condition: str
    wer: float | None
    wer_ci: Interval | None
    delta: float | None  # WER(condition) − WER(reference), same utterances
    delta_ci: Interval | None
    excess: float | None  # delta − the dimension's pooled delta
    excess_ci: Interval | None
    degrades_more: bool = False
    note: str | None = None  # why an interval is missing (one speaker, no errors, the reference itself)


@dataclass(frozen=True)
class ConditionSlice:
    label: str
    values: dict[str, str]
    utterances: int
    speakers: int
    words: int
    supported: bool
    flags: list[str]
    cells: list[ConditionCell]  # one per condition, the reference first


@dataclass(frozen=True)
class Shift:
    """A dimension's disparity under one condition against the reference condition."""

    condition: str
    delta: float | None  # the dimension's pooled ΔWER
    delta_ci: Interval | None
    gap: float | None  # worst − best ranked slice under this condition
    gap_ci: Interval | None
    gap_change: float | None  # gap here − gap under the reference
    gap_change_ci: Interval | None
    ratio: float | None
    ratio_ci: Interval | None
    ratio_change: float | None
    ratio_change_ci: Interval | None
    worst: str | None = None
    most_degraded: str | None = None  # ranked slice with the largest ΔWER
    interaction: Test | None = None


@dataclass(frozen=True)
class ConditionDimension:
    name: str
    by: list[str]
    ranked: int
    slices: list[ConditionSlice]
    reference_gap: float | None
    reference_ratio: float | None
    shifts: list[Shift]  # one per non-reference condition
    note: str | None = None


@dataclass(frozen=True)
class ConditionOverall:
    name: str
    description: str
    utterances: int  # rows under this condition, failed ones included
    failed: int
    wer: float | None  # pooled over the paired utterances
    wer_ci: Interval | None
    delta: float | None
    delta_ci: Interval | None


@dataclass(frozen=True)
class Degradation:
    reference: str
    conditions: list[ConditionOverall]
    paired_utterances: int
    excluded_utterances: int  # not scored under every condition
    dimensions: list[ConditionDimension]
    evidence: str = "simulated"
    method: str = DEGRADATION_METHOD
    paired_speakers: int = 0  # speaker clusters among the paired utterances
    no_reference_words: int = 0  # paired utterances without reference words: no WER, left out


# Normaliser sensitivity (harness.stats.normaliser_sensitivity)


@dataclass(frozen=True)
class Rewrite:
    """Words one normaliser left as ``headline`` and another as ``other``, and how often."""

    side: str  # reference | hypothesis
    headline: str
    other: str
    count: int


@dataclass(frozen=True)
class SliceShift:
    label: str
    wer: list[float | None]  # per normaliser, the headline's first
    rank: list[int | None]  # 1 = worst among the dimension's ranked slices; None: not ranked
    shift: list[float | None]  # wer[i] - wer[0]
    excess: list[float | None]  # shift[i] minus the dimension's typical shift
    flagged: bool
    reasons: list[str]
    rewrites: list[list[Rewrite]]  # per other normaliser: the most frequent rewrites in this slice


@dataclass(frozen=True)
class DimensionShift:
    name: str
    overall_wer: list[float | None]
    typical_shift: list[float | None]  # median WER change over the ranked slices, per normaliser
    worst: list[str | None]
    gap: list[float | None]
    gap_ci: list[Interval | None]
    ratio: list[float | None]
    significant: list[bool]
    slices: list[SliceShift]
    flagged: bool
    reasons: list[str]


@dataclass(frozen=True)
class NormalizerSensitivity:
    normalizers: list[str]  # stamps; the first is the headline's
    aggregate: str
    wer_threshold: float
    rank_change: int
    overall_wer: list[float | None]
    dimensions: list[DimensionShift]
    rewrites: list[list[Rewrite]]  # per other normaliser, over the whole run
    flags: list[str] = field(default_factory=list)  # one sentence per flagged slice or dimension


# The rate model (harness.stats.rate_model)


@dataclass(frozen=True)
class Effect:
    """``None`` where the data cannot say: a level without a single error has no finite log-rate,
    and a level (or reference) with one speaker has no between-speaker spread to estimate."""

    factor: str
    level: str
    reference: str
    rate_ratio: float | None
    ci: list[float | None]
    p_value: float | None
    speakers: int = 0  # speakers with utterances at this level
    note: str | None = None  # why the interval and p-value are missing


@dataclass(frozen=True)
class ModelResult:
    method: str
    factors: list[str]
    references: dict[str, str]
    effects: list[Effect] = field(default_factory=list)
    baseline_rate: float | None = None  # errors per reference word at every factor's reference level
    utterances: int = 0
    speakers: int = 0
    dropped: dict[str, str] = field(default_factory=dict)  # factor -> why it is not in the model
    error: str | None = None
    caution: str | None = None


# The robust view (harness.stats.robust)


@dataclass(frozen=True)
class RunawayCount:
    """Runaway utterances among a set of scored ones, and the share of its errors they carry."""

    scored: int
    runaway: int
    reasons: dict[str, int]
    errors: int
    runaway_errors: int
    error_share: float | None  # runaway_errors / errors
    capped_wer: float | None
    empty: int  # scored utterances with no hypothesis word (whatever their reference)


@dataclass(frozen=True)
class Clip:
    """One runaway utterance, as a report names it."""

    id: str
    reason: str
    errors: int
    ref_words: int
    condition: str | None = None


@dataclass(frozen=True)
class RobustSlice:
    label: str
    wer: float | None  # headline (pooled)
    capped_wer: float | None
    capped_wer_ci: list[float | None] | None
    starred: bool
    capped_starred: bool
    count: RunawayCount
    worst_clips: list[Clip] = field(default_factory=list)  # its runaway utterances with most errors


@dataclass(frozen=True)
class RobustDimension:
    name: str
    slices: list[RobustSlice]
    worst: dict[str, str | None]  # headline / capped
    ranking: dict[str, list[str]]
    starred: dict[str, list[str]]
    changes: list[str]  # each change in words, naming the runaway clips behind it


@dataclass(frozen=True)
class RobustCondition:
    """One simulated condition against the reference: how much of its ΔWER runaways make."""

    condition: str
    count: RunawayCount  # every scored utterance heard under this condition
    delta: float | None  # paired ΔWER, headline
    capped_delta: float | None  # the same with each utterance's errors capped
    runaway_delta_share: float | None  # share of the extra errors made by utterances that run away here
    worst_clips: list[Clip] = field(default_factory=list)


@dataclass(frozen=True)
class RobustShift:
    """One dimension under one condition: the most degraded slice and the ▲ under each view."""

    dimension: str
    condition: str
    most_degraded: dict[str, str | None]
    degrades_more: dict[str, list[str]]
    withdrawn: list[str]  # ▲ the headline test gave but the capped one does not: not shown as ▲
    changes: list[str]


@dataclass(frozen=True)
class RobustView:
    """metrics.json's ``runaway`` block (docs/metrics.md)."""

    rules: RunawayRules
    scope: str  # which utterances the headline and this view cover
    overall: RunawayCount
    capped_wer_ci: list[float | None] | None
    dimensions: list[RobustDimension]
    conditions: list[RobustCondition]
    shifts: list[RobustShift]
    flagged: bool  # some change between the headline and the capped view
