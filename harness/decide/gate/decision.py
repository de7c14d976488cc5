"""The decision: each check's status from its change, its thresholds and its sign-flip p-value;
the gate fails on a regression, or (``gate.untestable: fail``) on a change beyond its threshold
that no test can call real."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.config import GateConfig
from harness.decide.gate.checks import Check, CheckId, CheckKind, Status, Untestable
from harness.decide.gate.compare import compare, normalizer_mismatch, unfair_comparison_warnings
from harness.decide.gate.sides import RunSide
from harness.decide.gate.signflip import is_set, sign_flip_p_values
from harness.stats.records import Degradation, Interval

GATE_SCHEMA = "asrfair.gate/1"
ORDER = (Status.REGRESSION, Status.IMPROVED, Status.PASS, Status.NOT_TESTED)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[Check]
    warnings: list[str]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    shared_utterances: int
    only_in_baseline: int
    only_in_candidate: int
    confidence: float  # family-wise, and of each interval
    tests: int  # checks in the Holm family
    bootstrap: int
    thresholds: dict[str, Any] = field(default_factory=dict)
    schema: str = GATE_SCHEMA

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status == Status.REGRESSION]

    @property
    def untested_changes(self) -> list[Check]:
        """Changes beyond their threshold that could not be tested (a warning, or a failure)."""
        return [c for c in self.checks if c.untested_change]

    @property
    def fails_on_untested(self) -> bool:
        return self.thresholds.get("untestable") == "fail" and bool(self.untested_changes)

    def to_json(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "checks"}
        return {
            **body,
            "checks": [c.to_json() for c in self.checks],
            "regressions": len(self.regressions),
            "untested_changes": len(self.untested_changes),
        }


def run_gate(baseline: RunSide, candidate: RunSide, gate: GateConfig, *, force: bool = False) -> GateResult:
    """Raises InputError when the runs were scored under different normalisers, unless ``force``."""
    scoring = normalizer_mismatch(baseline, candidate, force=force)
    comparison = compare(baseline, candidate, confidence=gate.confidence, bootstrap=gate.bootstrap, seed=gate.seed)
    p_values = sign_flip_p_values(comparison, gate)
    checks = [*_wer_checks(comparison.result, gate, p_values), *_failure_checks(baseline, candidate, gate)]
    warnings = [*scoring, *unfair_comparison_warnings(baseline, candidate, comparison)]
    untested = [c for c in checks if c.untested_change]  # shown by the renderers from the checks
    regressed = any(c.status == Status.REGRESSION for c in checks)
    return GateResult(
        passed=not regressed and not (gate.untestable == "fail" and untested),
        checks=sorted(checks, key=_shown_order),
        warnings=warnings,
        baseline=baseline.describe(),
        candidate=candidate.describe(),
        shared_utterances=comparison.shared,
        only_in_baseline=comparison.only_in_baseline,
        only_in_candidate=comparison.only_in_candidate,
        confidence=gate.confidence,
        tests=len(p_values),
        bootstrap=gate.bootstrap,
        thresholds=gate.model_dump(),
    )


def _shown_order(check: Check) -> int:
    """Regressions first, then untested changes beyond their threshold, improvements, passes, the rest."""
    return 1 if check.untested_change else 2 * ORDER.index(check.status)


def _wer_checks(result: Degradation | None, gate: GateConfig, p_values: dict[CheckId, float]) -> list[Check]:
    if result is None:
        return [_untested(CheckId(CheckKind.WER), None, None, "", Untestable.NO_SHARED, Untestable.NO_SHARED.value)]
    checks, alpha = [], 1 - gate.confidence
    if is_set(gate.wer_increase, gate.wer_increase_relative):
        base, cand = result.conditions
        checks.append(
            judge(
                CheckId(CheckKind.WER),
                base.wer,
                cand.wer,
                cand.delta_ci,
                gate.wer_increase,
                gate.wer_increase_relative,
                p_values,
                alpha,
                speakers=result.paired_speakers,
            )
        )
    for dim in result.dimensions:
        if len(dim.slices) < 2:  # one value (device=tts): the same utterances as the overall check
            continue
        if is_set(gate.slice_wer_increase, gate.slice_wer_increase_relative):
            for s in dim.slices:
                check_id = CheckId(CheckKind.SLICE_WER, dim.name, s.label)
                base_wer, cand_wer = s.cells[0].wer, s.cells[1].wer
                if not s.supported:
                    limits = (gate.slice_wer_increase, gate.slice_wer_increase_relative)
                    checks.append(
                        _untested(
                            check_id,
                            base_wer,
                            cand_wer,
                            describe_threshold(*limits),
                            Untestable.THIN,
                            "too few speakers or words to rank (" + ", ".join(s.flags) + ")",
                            delta=s.cells[1].delta,
                            beyond=exceeds(base_wer, cand_wer, *limits),
                        )
                    )
                    continue
                checks.append(
                    judge(
                        check_id,
                        base_wer,
                        cand_wer,
                        s.cells[1].delta_ci,
                        gate.slice_wer_increase,
                        gate.slice_wer_increase_relative,
                        p_values,
                        alpha,
                        speakers=s.speakers,
                    )
                )
        shift = dim.shifts[0] if dim.shifts else None
        if dim.ranked < 2:  # one rankable slice: no disparity to check
            continue
        if gate.gap_increase is not None:
            checks.append(
                judge(
                    CheckId(CheckKind.GAP, dim.name),
                    dim.reference_gap,
                    shift.gap if shift else None,
                    shift.gap_change_ci if shift else None,
                    gate.gap_increase,
                    None,
                    p_values,
                    alpha,
                )
            )
        if gate.ratio_increase is not None:
            checks.append(
                judge(
                    CheckId(CheckKind.RATIO, dim.name),
                    dim.reference_ratio,
                    shift.ratio if shift else None,
                    shift.ratio_change_ci if shift else None,
                    gate.ratio_increase,
                    None,
                    p_values,
                    alpha,
                    unit="×",
                )
            )
    return checks


def exceeds(baseline: float | None, candidate: float | None, absolute: float | None, relative: float | None) -> bool:
    """The change exceeds every threshold set (False without both values)."""
    if baseline is None or candidate is None:
        return False
    delta = candidate - baseline
    above_relative = relative is None or (baseline > 0 and delta / baseline > relative)
    return bool((absolute is None or delta > absolute) and above_relative)


def judge(
    check_id: CheckId,
    baseline: float | None,
    candidate: float | None,
    ci: Interval | None,
    absolute: float | None,
    relative: float | None,
    p_values: dict[CheckId, float],
    alpha: float,
    unit: str = "pp",
    speakers: int | None = None,
) -> Check:
    """Regression: the change exceeds every threshold set and the Holm-adjusted sign-flip p < α.
    Not tested: a value is missing, or the change exceeds the thresholds but ``speakers`` are too
    few for any p to reach α over the family (the smallest sign-flip p is 2^-speakers)."""
    threshold = describe_threshold(absolute, relative, unit)
    p = p_values.get(check_id)
    if baseline is None or candidate is None:
        why = Untestable.NO_VALUE
        return _untested(check_id, baseline, candidate, threshold, why, why.value, ci=ci)
    delta = candidate - baseline
    beyond = exceeds(baseline, candidate, absolute, relative)
    common = {"delta": delta, "ci": ci, "threshold": threshold, "p_value": p, "beyond_threshold": beyond}
    if beyond and p is not None and p < alpha:
        reason = f"above the threshold; p = {p:.4f} (Holm) < {alpha:g}"
        return Check(check_id, baseline, candidate, status=Status.REGRESSION, reason=reason, **common)
    if ci is not None and ci[1] is not None and ci[1] < 0:
        return Check(check_id, baseline, candidate, status=Status.IMPROVED, reason="interval below 0", **common)
    if not beyond:  # within the threshold needs no test
        return Check(check_id, baseline, candidate, status=Status.PASS, reason="within the threshold", **common)
    if speakers is not None and 2.0**-speakers * len(p_values) >= alpha:
        reason = (
            f"above the threshold, but {speakers} speakers cannot tell any change from noise at this level "
            f"(smallest possible p = 2^-{speakers}, over {len(p_values)} checks): record more speakers"
        )
        untestable = Untestable.TOO_FEW_SPEAKERS
        return Check(
            check_id, baseline, candidate, status=Status.NOT_TESTED, reason=reason, untestable=untestable, **common
        )
    reason = "above the threshold, but within noise" + (f" (p = {p:.3f}, Holm)" if p is not None else "")
    return Check(check_id, baseline, candidate, status=Status.PASS, reason=reason, **common)


def _untested(
    check_id: CheckId,
    baseline: float | None,
    candidate: float | None,
    threshold: str,
    why: Untestable,
    reason: str,
    *,
    delta: float | None = None,
    ci: Interval | None = None,
    beyond: bool = False,
) -> Check:
    return Check(
        check_id, baseline, candidate, delta, ci, threshold, Status.NOT_TESTED, reason, None, beyond, why
    )


def describe_threshold(absolute: float | None, relative: float | None, unit: str = "pp") -> str:
    parts = []
    if absolute is not None:
        parts.append(f"+{100 * absolute:.1f} pp" if unit == "pp" else f"+{absolute:.2f}×")
    if relative is not None:
        parts.append(f"+{100 * relative:.0f} % relative")
    return " and ".join(parts)


def _failure_checks(baseline: RunSide, candidate: RunSide, gate: GateConfig) -> list[Check]:
    """Failures are counted, not estimated: thresholds only."""
    a, b = baseline.failure_rate, candidate.failure_rate
    checks = []
    if gate.failure_rate_increase is not None:
        worse = bool(b - a > gate.failure_rate_increase)
        checks.append(
            Check(
                CheckId(CheckKind.FAILURE_RATE),
                a,
                b,
                b - a,
                None,
                describe_threshold(gate.failure_rate_increase, None),
                Status.REGRESSION if worse else Status.PASS,
                "more utterances failed" if worse else "within the threshold",
                beyond_threshold=worse,
            )
        )
    if gate.max_failure_rate is not None:
        over = bool(b > gate.max_failure_rate)
        checks.append(
            Check(
                CheckId(CheckKind.MAX_FAILURE_RATE),
                None,
                b,
                None,
                None,
                f"≤ {100 * gate.max_failure_rate:.1f} %",
                Status.REGRESSION if over else Status.PASS,
                "above the maximum" if over else "within the maximum",
                beyond_threshold=over,
            )
        )
    return checks
