"""The plain-language summary that opens report.html and report.md.

Every sentence restates a verdict the statistics already gave (metrics.json: ★, the disparity's
``detected``, the dimension test, ▲, the aggregate and normaliser flags) and never goes beyond it:
no ★ is "no detectable gap", said with the smallest gap the data could have shown, never "fair".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.report.format import (
    AGGREGATE_DEFINITIONS,
    aggregate_value,
    by_wer,
    detectable_gap,
    gap_points,
    interval,
    others,
    pct,
    pct_ci,
    points,
    slice_wer,
)

if TYPE_CHECKING:
    from harness.results import RunResult
    from harness.stats.records import Degradation, Dimension, Sensitivity

GAP = "gap"  # a slice is ★: significantly worse than its dimension's overall
BETWEEN = "gap between slices"  # the worst–best interval excludes 0 and the test agrees, yet no slice is ★
MIXED = "mixed evidence"  # the worst–best interval excludes 0, but the dimension's test is not significant
NONE = "no detectable gap"
UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class Verdict:
    """One dimension's answer to "is the gap real?", in the words of its own statistics."""

    dimension: str
    kind: str  # GAP | BETWEEN | MIXED | NONE | UNKNOWN
    worst: str  # the worst ranked slice with its WER and interval (or the highest, unranked)
    text: str
    warnings: list[str] = field(default_factory=list)  # the finding depends on the aggregate, ...


@dataclass(frozen=True)
class PlainSummary:
    headline: str
    verdicts: list[Verdict]
    notes: list[str]  # one-slice dimensions, simulated conditions, discovered subgroups, failures
    next_steps: list[str]


def plain_summary(result: RunResult, discovery: dict[str, Any] | None = None) -> PlainSummary:
    overall, aggregate = result.overall, result.headline.aggregate
    level = f"{result.options.confidence:.0%}"
    headline = (
        f"{aggregate} WER {pct_ci(overall.wer, overall.wer_ci, overall.interval_note)} "
        f"({level} interval, speakers as the unit) over {overall.words} words, {overall.utterances} "
        f"utterances and {overall.speakers} speakers; "
        + ", ".join(f"{a} {pct(aggregate_value(overall, a))}" for a in others(aggregate))
        + f". {aggregate[0].upper()}{aggregate[1:]}: {AGGREGATE_DEFINITIONS[aggregate]}."
    )
    sensitivity = {s.dimension: s for s in result.aggregates.sensitivity}
    verdicts, single = [], []
    for dim in result.dimensions:
        if len(dim.slices) < 2:
            single.append(f"{dim.name} ({dim.slices[0].label})" if dim.slices else dim.name)
            continue
        verdicts.append(_verdict(dim, sensitivity.get(dim.name)))
    notes = [f"One slice only, nothing to compare: {', '.join(single)}."] if single else []
    notes += _condition_notes(result.conditions)
    notes += _robust_notes(result)
    notes += _discovery_notes(discovery)
    failures = result.failures
    if failures.count:
        notes.append(f"{failures.count} utterances failed ({pct(failures.rate)}) and are left out of every WER.")
    return PlainSummary(headline, verdicts, notes, _next_steps(result, verdicts, discovery))


def _verdict(dim: Dimension, sensitivity: Sensitivity | None) -> Verdict:
    disparity, test = dim.disparity, dim.test
    starred = [s for s in by_wer(dim.slices) if s.significantly_worse]
    by_label = {s.label: s for s in dim.slices}
    if disparity.worst is not None:
        worst = f"{disparity.worst} {slice_wer(by_label[disparity.worst])}"
    else:
        top = by_wer(dim.slices)[0]
        worst = f"{top.label} {slice_wer(top)} (highest, not ranked)"
    warnings = []
    if sensitivity and sensitivity.flagged:
        warnings.append("the finding depends on the aggregate: " + "; ".join(sensitivity.changes))
    if starred:
        parts = [
            f"{s.label} {points(s.vs_overall.difference)} {interval(s.vs_overall.difference_ci, points)}".strip()
            for s in starred
        ]
        text = (
            f"★ {', '.join(parts)} against the dimension's overall: significantly worse (the dimension's test is "
            "significant after Holm correction and the interval of the difference lies above 0)."
        )
        return Verdict(dim.name, GAP, worst, text, warnings)
    if disparity.worst is None or disparity.detected is None or test is None:
        why = disparity.note or ("no test was run" if test is None else "the worst–best gap has no interval")
        return Verdict(dim.name, UNKNOWN, worst, f"Cannot tell: {why}.", warnings)
    span = _detectable(dim)
    if disparity.detected:
        gap = f"{gap_points(disparity.gap)} {interval(disparity.gap_ci, gap_points)}"
        pair = f"{disparity.worst} vs {disparity.best}"
        if test.significant:
            text = (
                f"The worst–best gap {gap} ({pair}) excludes 0 on its simultaneous interval and the dimension's "
                "test is significant after Holm correction, but no slice is significantly worse than the "
                "dimension's overall (no ★)."
            )
            return Verdict(dim.name, BETWEEN, worst, text, warnings)
        text = (
            f"Mixed: the worst–best gap {gap} ({pair}) excludes 0 on its simultaneous interval, but the "
            "dimension's test is not significant after Holm correction and no slice is ★."
        )
        return Verdict(dim.name, MIXED, worst, text, warnings)
    upper = (disparity.gap_ci or [None, None])[1]
    text = (
        f"No detectable gap: the worst–best gap is {gap_points(disparity.gap)}, and the true gap lies between "
        f"0 and {gap_points(upper)}. That is not evidence of equal WER"
        + (f": no slice's gap against the overall smaller than {span} is detectable with this data." if span else "")
        + ("" if span else _no_detectable_note(dim))
    )
    return Verdict(dim.name, NONE, worst, text, warnings)


def _no_detectable_note(dim: Dimension) -> str:
    """Why no detectable gap is stated, in the statistics' own words (e.g. too few speakers)."""
    notes = {s.vs_overall.detect_note for s in dim.slices if s.supported and s.vs_overall} - {None}
    return f"; no detectable gap is stated ({sorted(notes)[0]})." if notes else "."


def _detectable(dim: Dimension) -> str:
    """The smallest minimum detectable gap of the dimension's ranked slices (the best-measured one)."""
    known = [
        s.vs_overall.min_detectable
        for s in dim.slices
        if s.supported and s.vs_overall is not None and s.vs_overall.min_detectable is not None
    ]
    return detectable_gap(min(known)) if known else ""


def _condition_notes(block: Degradation | None) -> list[str]:
    """Each simulated condition's paired change, and every ▲ (the interaction verdict)."""
    if not block:
        return []
    changes = [
        f"{c.name} {points(c.delta)} {interval(c.delta_ci, points)}".strip()
        for c in block.conditions
        if c.name != block.reference
    ]
    notes = [f"Simulated conditions, paired against {block.reference}: " + "; ".join(changes) + "."]
    marked = [
        f"{s.label} under {cell.condition} ({points(cell.delta)} {interval(cell.delta_ci, points)})".replace(" )", ")")
        for dim in block.dimensions
        for s in dim.slices
        for cell in s.cells[1:]
        if cell.degrades_more
    ]
    if marked:
        notes.append("▲ degrades significantly more than the rest of its dimension: " + "; ".join(marked) + ".")
    else:
        notes.append("No slice degrades significantly more than the rest of its dimension under any condition (no ▲).")
    return notes


def _robust_notes(result: RunResult) -> list[str]:
    notes = []
    runaway = result.runaway
    if runaway and runaway.flagged:
        notes.append("⚠ Some findings change when runaway transcripts' errors are capped (see the robust view).")
    normalization = result.normalization
    if normalization and normalization.flags:
        notes.append(f"⚠ {len(normalization.flags)} findings depend on the normaliser (see normaliser sensitivity).")
    return notes


def _discovery_notes(block: dict[str, Any] | None) -> list[str]:
    if not block:
        return []
    if not block["findings"]:
        return [f"asrfair discover searched {block['candidates']} subgroups: none survived both halves."]
    top = block["findings"][0]
    e = top["confirmation"]
    return [
        f"asrfair discover confirmed {len(block['findings'])} under-served subgroup"
        f"{'s' if len(block['findings']) != 1 else ''} on held-out speakers; the first: {top['label']} "
        f"{points(e['difference'])} {interval(e.get('difference_ci'), points)} against the rest.".replace(" .", ".")
    ]


def _next_steps(result: RunResult, verdicts: list[Verdict], discovery: dict[str, Any] | None) -> list[str]:
    steps = []
    caveats = {c["kind"] for c in result.caveats}
    if "synthetic" in caveats:
        steps.append(
            "These numbers are on synthetic speech: measure recordings of real speakers before saying anything "
            "about people."
        )
    gaps = [v.dimension for v in verdicts if v.kind in (GAP, BETWEEN)]
    unsure = [v.dimension for v in verdicts if v.kind in (MIXED, NONE, UNKNOWN)]
    if gaps:
        steps.append(
            f"Read the worst utterances of the worst slices below ({', '.join(gaps)}), then guard the gap in CI: "
            "`asrfair baseline set RUN_DIR -o baseline.json` and `asrfair gate RUN_DIR -b baseline.json`."
        )
    if unsure:
        steps.append(
            f"Not enough evidence either way for {', '.join(unsure)}: `asrfair plan RUN_DIR --gap 0.05` says how "
            "many speakers each slice needs to detect a 5 pp gap (give the gap that matters to you)."
        )
    thin = sorted({s.label for d in result.dimensions if len(d.slices) > 1 for s in d.slices if not s.supported})
    if thin:
        shown = ", ".join(thin[:8]) + (f" and {len(thin) - 8} more" if len(thin) > 8 else "")
        steps.append(
            f"Record more speakers for {shown}: under {result.options.min_speakers} speakers or "
            f"{result.options.min_words} words a slice is shown but never ranked or starred."
        )
    if discovery is None and any(len(d.slices) > 1 for d in result.dimensions):
        steps.append("`asrfair discover RUN_DIR` searches combinations of tags for under-served subgroups.")
    if result.failures.count:
        steps.append("Rerun the same command to retry the failed utterances (transcripts already made are cached).")
    return steps
