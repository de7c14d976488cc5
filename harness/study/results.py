"""The typed result of a study, and its JSON form (schema ``asrfair.study/1``, docs/study.md).

Renderers (harness/report/study_*.py) take a :class:`StudyResult`; nothing here renders.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.transcribe.throughput import Throughput

SCHEMA = "asrfair.study/1"
Interval = list[float | None]


@dataclass(frozen=True)
class Worst:
    """A system's worst ranked slice in one dimension (None where fewer than two are ranked)."""

    dimension: str
    slice: str | None
    wer: float | None
    wer_ci: Interval | None


@dataclass(frozen=True)
class Entry:
    """One system's row of a dataset's leaderboard (figures from its full run)."""

    system: str
    rank: int  # competition ranking; systems not told apart share a rank
    tied_with: list[str]  # the other systems sharing this rank
    criterion: float | None  # the figure ranked by
    wer: float | None
    wer_ci: Interval | None
    speaker_mean_wer: float | None
    worst: list[Worst]  # per dimension
    gap: float | None  # worst − best ranked slice of the ranking dimension
    gap_ci: Interval | None
    ratio: float | None
    ratio_ci: Interval | None
    badly_served: float | None  # share of speakers whose own WER exceeds the threshold
    badly_served_ci: Interval | None
    failure_rate: float
    runaway_share: float | None  # scored utterances with a runaway transcript
    throughput: Throughput
    cost: float | None  # price_per_audio_hour × the dataset's audio hours
    utterances: int
    speakers: int
    words: int
    run_dir: str
    failure: str | None = None  # failures beyond max_failure_rate


@dataclass(frozen=True)
class HeatmapRow:
    system: str
    wers: list[float | None]  # one per slice, in the dimension's order


@dataclass(frozen=True)
class Heatmap:
    """Systems × slices WER in one dimension."""

    dimension: str
    slices: list[str]
    ranked: list[bool]
    speakers: list[int]
    rows: list[HeatmapRow]


@dataclass(frozen=True)
class SpeakerTests:
    """sclite-style matched-pair tests over speakers (each speaker's own WER under A and under B),
    shown for comparability; claims use the speaker-clustered paired intervals."""

    speakers: int
    b_better: int
    a_better: int
    ties: int
    sign_p: float | None  # two-sided binomial test on the untied speakers
    wilcoxon_p: float | None  # two-sided signed-rank test (zeros dropped)


@dataclass(frozen=True)
class Paired:
    """B − A on the same utterances: an estimate, its interval, its test and Holm-adjusted p."""

    estimate: float | None
    ci: Interval | None
    p: float | None = None
    p_holm: float | None = None
    significant: bool = False  # Holm-adjusted p below α and the interval excludes 0
    note: str | None = None


@dataclass(frozen=True)
class SliceDifference:
    slice: str
    ranked: bool
    speakers: int
    words: int
    wer_a: float | None
    wer_b: float | None
    delta: Paired  # WER_B − WER_A on this slice
    gap_change: Paired  # (WER_B,s − WER_B,dim) − (WER_A,s − WER_A,dim): B narrows (<0) or widens this slice's gap
    speaker_tests: SpeakerTests


@dataclass(frozen=True)
class DimensionDifference:
    name: str
    ranked: int
    slices: list[SliceDifference]
    overall_a: float | None  # the dimension's pooled WER under A (over its paired utterances)
    overall_b: float | None
    gap_a: float | None  # worst − best ranked slice under A
    gap_b: float | None
    gap_change: Paired  # gap_B − gap_A, simultaneous (conservative) bounds; no p-value
    worst_a: str | None
    worst_b: str | None
    worst_change: Paired  # worst-slice WER of B − of A, the same construction
    fairer: str | None = None  # the system whose gap is smaller, where the Bonferroni-level interval excludes 0
    note: str | None = None
    best_a: str | None = None  # the best ranked slice under A
    # (WER_B,worst_a − WER_B,best_a) − (WER_A,worst_a − WER_A,best_a): max-T bounds over every pair,
    # ``significant`` where the Bonferroni-level (pairs × dimensions) bounds exclude 0
    pair_change: Paired = Paired(None, None)


@dataclass(frozen=True)
class PairComparison:
    a: str
    b: str
    utterances: int  # paired: scored under both (every system of the study), with reference words
    speakers: int
    delta: Paired  # overall WER_B − WER_A
    speaker_tests: SpeakerTests
    dimensions: list[DimensionDifference]


@dataclass(frozen=True)
class Claim:
    """A sentence the data supports, with the figure behind it."""

    dataset: str
    # accuracy | slice-accuracy | gap-narrowed | gap-widened | gap-shifted | pair-narrowed | pair-widened | fairer
    kind: str
    text: str
    a: str
    b: str
    dimension: str | None = None
    slice: str | None = None


@dataclass(frozen=True)
class DatasetResult:
    name: str
    dimension: str | None  # the dimension worst/gap rank by
    leaderboard: list[Entry]
    heatmaps: list[Heatmap]
    pairs: list[PairComparison]
    paired_utterances: int
    excluded_utterances: int  # not scored under every system
    claims: list[Claim] = field(default_factory=list)


@dataclass(frozen=True)
class SystemInfo:
    label: str
    backend: str
    model: str | None
    decoding: dict[str, Any]
    price_per_audio_hour: float | None


@dataclass(frozen=True)
class StudyResult:
    name: str
    created_utc: str
    rank_by: str
    confidence: float
    currency: str
    systems: list[SystemInfo]
    datasets: list[DatasetResult]
    transcribed: int
    from_cache: int
    method: str
    schema: str = SCHEMA

    @property
    def claims(self) -> list[Claim]:
        return [c for d in self.datasets for c in d.claims]


def to_json(result: StudyResult) -> dict[str, Any]:
    """The study as JSON data: ``schema`` first, no NaN or infinity (undefined numbers are null)."""
    data = asdict(result)
    return _finite({"schema": data.pop("schema"), **data})


def json_schema() -> dict[str, Any]:
    """JSON Schema of :func:`to_json`'s output, derived from the dataclasses (docs/study.md)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(StudyResult).json_schema()
    schema["properties"]["schema"] = {"const": SCHEMA}
    schema["required"] = sorted({*schema.get("required", []), "schema"})
    return schema


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
