"""What the gate checks, typed: a check's id (kind, dimension, slice), its status and, when it
could not be tested, why. Checks and their p-values are joined by :class:`CheckId`, never by the
display name, and no decision reads a human message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.stats.records import Interval


class CheckKind(StrEnum):
    WER = "wer"
    SLICE_WER = "slice_wer"
    GAP = "gap"
    RATIO = "ratio"
    FAILURE_RATE = "failure_rate"
    MAX_FAILURE_RATE = "max_failure_rate"


class Status(StrEnum):
    REGRESSION = "regression"
    IMPROVED = "improved"
    PASS = "pass"
    NOT_TESTED = "not tested"


class Untestable(StrEnum):
    """Why a check has no test: it is reported (JUnit ``<skipped>``), never counted as passed."""

    NO_SHARED = "no shared utterances"
    NO_VALUE = "no value in one of the runs"
    THIN = "too few speakers or words to rank"
    TOO_FEW_SPEAKERS = "too few speakers for the sign-flip test to reach the confidence"


@dataclass(frozen=True)
class CheckId:
    """One check: ``kind`` of ``slice`` in ``dimension`` (both None for run-wide checks)."""

    kind: CheckKind
    dimension: str | None = None
    slice: str | None = None

    @property
    def name(self) -> str:
        """The display name (gate.md, the terminal, JUnit test case names)."""
        match self.kind:
            case CheckKind.WER:
                return "overall WER"
            case CheckKind.SLICE_WER:
                return f"{self.dimension}={self.slice} WER"
            case CheckKind.GAP:
                return f"{self.dimension} gap (worst − best)"
            case CheckKind.RATIO:
                return f"{self.dimension} ratio (worst / best)"
            case CheckKind.FAILURE_RATE:
                return "failure rate"
            case CheckKind.MAX_FAILURE_RATE:
                return "failure rate (absolute)"


@dataclass(frozen=True)
class Check:
    id: CheckId
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci: Interval | None
    threshold: str
    status: Status
    reason: str
    p_value: float | None = None  # one-sided sign-flip p, Holm-adjusted over the gate's checks
    beyond_threshold: bool = False  # the change exceeds every threshold set for it
    untestable: Untestable | None = None  # set exactly when status is NOT_TESTED

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def kind(self) -> CheckKind:
        return self.id.kind

    @property
    def untested_change(self) -> bool:
        """A change beyond its threshold that no test could call real or noise."""
        return self.untestable is not None and self.beyond_threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": str(self.kind),
            "dimension": self.id.dimension,
            "slice": self.id.slice,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "delta": self.delta,
            "ci": self.ci,
            "threshold": self.threshold,
            "status": str(self.status),
            "reason": self.reason,
            "p_value": self.p_value,
            "beyond_threshold": self.beyond_threshold,
            "untestable": None if self.untestable is None else self.untestable.name.lower(),
        }
