"""Number formatting shared by the run's reports (the typed results of :mod:`harness.results`),
and Markdown escaping of data."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.stats.options import StatsOptions
    from harness.stats.records import (
        Aggregates,
        Clip,
        ConditionCell,
        Degradation,
        Dimension,
        DimensionShift,
        Disparity,
        Effect,
        ModelResult,
        NormalizerSensitivity,
        Rewrite,
        RobustCondition,
        RobustSlice,
        RobustView,
        RunawayCount,
        Sensitivity,
        Shift,
        SliceShift,
        SliceStats,
        Test,
    )

# Every character that can open Markdown markup (emphasis, code, links, table cells, GitHub's $math$)
# is backslash-escaped, the backslash too; & < > become entities, so no raw tag is left even for a
# reader that renders no Markdown; a line break would end a table row.
_MARKDOWN = str.maketrans(
    {c: "\\" + c for c in "\\`*_~[]|$"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "}
)


def md_text(text: str) -> str:
    """Data as literal Markdown text: a renderer shows a label, never a link, emphasis, HTML or a cell break."""
    return text.translate(_MARKDOWN)


def md_code(text: str) -> str:
    """Data as a Markdown code span (outside tables): fenced by more backticks than any run inside it."""
    text = " ".join(text.splitlines())
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""  # one space each side is stripped
    return f"{fence}{pad}{text}{pad}{fence}"


SHOWN_CHARS = 120  # of a tag name or value in a terminal table: rich takes minutes to wrap 100,000


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters for display, marked with an ellipsis (data files keep it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


_LONG_WORD = re.compile(rf"\S{{{SHOWN_CHARS + 1},}}")


def shown(text: str) -> str:
    """Data for a terminal table or line, rich-escaped, every word over SHOWN_CHARS clipped."""
    from rich.markup import escape

    return escape(_LONG_WORD.sub(lambda word: clip(word.group()), text))


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f} pp"


def gap_points(value: float | None) -> str:
    """A gap (never negative: worst − best) in percentage points, unsigned: ``4.8 pp``."""
    return "–" if value is None else f"{100 * value:.1f} pp"


def signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


# Beyond these an interval end or a detectable gap only says that the data cannot bound it (a few
# speakers on the log scale give ends like 10²¹×), so it is said in words, not as a number.
RATIO_SHOWN_MAX = 100.0
WER_SHOWN_MAX = 2.0
DETECTABLE_SHOWN_MAX = 1.0


def ratio(value: float | None) -> str:
    if value is not None and value > RATIO_SHOWN_MAX:
        return f">{RATIO_SHOWN_MAX:.0f}×"
    return "–" if value is None else f"{value:.2f}×"


def interval(ci: list[float | None] | None, fmt=pct, unbounded: bool = False, note: str | None = None) -> str:
    """``[low, high]``; with ``unbounded`` a missing upper end prints as ∞ (a ratio over a slice
    without errors), otherwise a missing end means no interval: ``[– note]`` when the statistics
    say why (one speaker, no errors), never a zero-width ``[x, x]``."""
    if not ci or ci[0] is None or (ci[1] is None and not unbounded):
        return f"[– {note}]" if note else ""
    return f"[{fmt(ci[0])}, {'∞' if ci[1] is None else fmt(ci[1])}]"


def pct_ci(value: float | None, ci: list[float | None] | None, note: str | None = None) -> str:
    text = interval(ci, _wer_end, note=note if value is not None else None)
    return f"{pct(value)} {text}" if text else pct(value)


def _wer_end(value: float) -> str:
    return f">{100 * WER_SHOWN_MAX:.0f}" if value > WER_SHOWN_MAX else f"{100 * value:.1f}"


def slice_wer(slice_: SliceStats) -> str:
    """A slice's WER with its interval, or with why it has none."""
    return pct_ci(slice_.wer, slice_.wer_ci, slice_.interval_note)


def vs_overall_text(slice_: SliceStats) -> str:
    overall = slice_.vs_overall
    if overall is None:
        return points(None)
    note = overall.note if overall.difference is not None else None
    return f"{points(overall.difference)} {interval(overall.difference_ci, points, note=note)}".strip()


def star(slice_: SliceStats) -> str:
    return " ★" if slice_.significantly_worse else ""


def test_sentence(test: Test | None, confidence: float) -> str:
    if not test:
        return "No test (fewer than two ranked slices, or permutations: 0)."
    verdict = "WER depends on this dimension" if test.significant else "no significant dependence on this dimension"
    method = test.method or "test"
    return (
        f"{method[0].upper()}{method[1:]} ({test.kind}): p = {test.p_value:.3g}, "
        f"Holm-adjusted {test.p_holm:.3g} — {verdict} at the {1 - confidence:.2g} level."
    )


def by_wer(slices: list[SliceStats]) -> list[SliceStats]:
    """Worst first; slices without a WER (all failed, no words) last."""
    return sorted(slices, key=lambda s: (s.wer is None, -(s.wer or 0.0), s.label))


def disparity_sentence(disparity: Disparity, quote: Callable[[str], str] = str) -> str:
    """``quote`` escapes the slice labels for the output format (the sentence's own ``**`` stays markup)."""
    failures = [quote(label) for label in disparity.with_failures or []]
    failed = f" Some utterances failed in: {', '.join(failures)} (see the failed column)." if failures else ""
    if disparity.worst is None:
        return (disparity.note or "no disparity computed") + failed
    if disparity.detected is False:
        gap_ci = disparity.gap_ci or [None, None]
        return (
            (
                f"No detectable gap between the {disparity.ranked} ranked slices: worst **{quote(disparity.worst)}** "
                f"({pct(disparity.worst_wer)}) vs best **{quote(disparity.best)}** ({pct(disparity.best_wer)}), "
                f"gap {points(disparity.gap)}; the true gap lies between 0 and {points(gap_ci[1])} "
                f"(simultaneous interval; ratio {ratio(disparity.ratio)} "
                f"{interval(disparity.ratio_ci, ratio, unbounded=True)}).{failed}"
            )
            .replace("  ", " ")
            .replace("( ", "(")
            .replace(" )", ")")
        )
    return (
        f"Worst **{quote(disparity.worst)}** ({pct(disparity.worst_wer)}) vs best "
        f"**{quote(disparity.best)}** ({pct(disparity.best_wer)}): ratio {ratio(disparity.ratio)} "
        f"{interval(disparity.ratio_ci, ratio, unbounded=True)}, gap {points(disparity.gap)} "
        f"{interval(disparity.gap_ci, points)}; worst vs overall {points(disparity.worst_vs_overall)} "
        f"{interval(disparity.worst_vs_overall_ci, points)} ({disparity.ranked} slices ranked; "
        f"simultaneous intervals).{failed}"
    ).replace("  ", " ")


def model_lines(model: ModelResult | None) -> list[str]:
    """The model-based view as plain sentences and rows: factor, level, rate ratio [CI], p."""
    if not model:
        return []
    if model.error:
        return [f"Rate model not fitted: {model.error}."]
    lines = [
        f"{model.method}; {model.utterances} utterances, {model.speakers} speakers; factors "
        f"{', '.join(model.factors)} (references: " + ", ".join(f"{k}={v}" for k, v in model.references.items()) + ")."
    ]
    lines += [f"Not in the model: {k} ({why})." for k, why in model.dropped.items()]
    if model.caution:
        lines.append(f"Caution: {model.caution}.")
    return lines


def effect_cells(effect: Effect) -> list[str]:
    """factor, level, ratio, [CI], p; "–" with the reason where the data cannot say (a level
    without errors, or with one speaker)."""

    def number(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    low, high = effect.ci
    ci = f"[{number(low, '.2f')}, {number(high, '.2f')}]"
    if low is None and high is None:
        ci = f"– ({effect.note})" if effect.note else "–"
    return [
        effect.factor,
        effect.level,
        "–" if effect.rate_ratio is None else f"{effect.rate_ratio:.2f}×",
        ci,
        number(effect.p_value, ".3g"),
    ]


DEGRADES_MORE = " ▲"


def pooled_over_conditions(conditions: Degradation | None, scoped: bool = False) -> str:
    """How the headline treats simulated conditions; ``scoped``: the reference condition only
    (runs scored since the robust view), else every condition pooled (older runs)."""
    if not conditions:
        return ""
    if scoped:
        return (
            f" This headline and every table before Simulated conditions are the reference condition "
            f"({conditions.reference}) only: recorded and simulated audio are never pooled; each condition, "
            "paired against the reference, is under Simulated conditions."
        )
    return (
        f" Every utterance is counted once per condition ({len(conditions.conditions)} conditions pooled); "
        "each condition on its own, paired against the reference, is under Simulated conditions."
    )


def condition_cell(cell: ConditionCell) -> str:
    """``50.2% (+12.1 pp)``: WER under the condition and its paired change in points; ▲ when the
    condition hurts this slice significantly more than the rest of its dimension."""
    if cell.delta is None:
        return pct(cell.wer)
    marker = DEGRADES_MORE if cell.degrades_more else ""
    return f"{pct(cell.wer)} ({points(cell.delta)}){marker}"


def interaction_text(test: Test | None) -> str:
    if not test:
        return "–"
    verdict = "yes" if test.significant else "no"
    return f"p = {test.p_value:.3g} (Holm {test.p_holm:.3g}): {verdict}"


def shift_cells(shift: Shift) -> list[str]:
    """condition, ΔWER [CI], gap [CI], gap change [CI], ratio change [CI], most degraded, interaction."""
    return [
        shift.condition,
        f"{points(shift.delta)} {interval(shift.delta_ci, points)}".strip(),
        f"{gap_points(shift.gap)} {interval(shift.gap_ci, gap_points)}".strip(),
        f"{points(shift.gap_change)} {interval(shift.gap_change_ci, points)}".strip(),
        f"{signed(shift.ratio_change)} {interval(shift.ratio_change_ci, signed)}".strip(),
        shift.most_degraded or "–",
        interaction_text(shift.interaction),
    ]


AGGREGATE_DEFINITIONS = {
    "pooled": "Σ errors / Σ reference words; long and frequent speakers weigh more",
    "speaker-mean": "mean over speakers of each speaker's pooled WER; every person counts once",
    "utterance-mean": "mean of per-utterance WER over utterances with reference words; short clips weigh as much",
}
_POINT_FIELD = {"pooled": "pooled_wer", "speaker-mean": "speaker_mean_wer", "utterance-mean": "utterance_mean_wer"}


def others(headline: str) -> list[str]:
    return [a for a in AGGREGATE_DEFINITIONS if a != headline]


def aggregate_value(slice_: SliceStats, aggregate: str) -> float | None:
    return getattr(slice_, _POINT_FIELD[aggregate])


def badly_served(slice_: SliceStats) -> str:
    """``2/9 (22%)``: speakers whose own WER exceeds the threshold, of those with words here."""
    spread = slice_.speakers_wer
    if not spread or not spread.speakers:
        return "–"
    return f"{spread.above}/{spread.speakers} ({pct(spread.share)})"


def quartiles(slice_: SliceStats) -> str:
    spread = slice_.speakers_wer
    if not spread or spread.quartiles[0] is None:
        return "–"
    return " / ".join(pct(q) for q in spread.quartiles)


def sensitivity_sentence(entry: Sensitivity | None) -> str:
    if not entry or not entry.flagged:
        return ""
    return "⚠ The aggregate changes this finding — " + "; ".join(entry.changes) + "."


def empty_references_sentence(aggregates: Aggregates) -> str:
    count = aggregates.empty_references
    if not count:
        return ""
    return (
        f" {count} utterances have an empty reference after normalisation: they have no WER and are left out of "
        "every aggregate (their insertions included); each slice counts them as no_reference_words."
    )


FLAGGED = " ⚑"


def normalization_header(block: NormalizerSensitivity) -> list[str]:
    """Columns of the normaliser-sensitivity table: one WER column per normaliser, then rank and rewrites."""
    head, *rest = block.normalizers
    return ["slice", f"{head} (headline)", *(f"{n} (Δ; excess)" for n in rest), "rank", "most frequent rewrites"]


def normalization_cells(slice_: SliceShift) -> list[str]:
    """One slice under each normaliser: WER, its move and its excess over the dimension's move,
    rank (1 = worst) under each, and the commonest rewrites (headline's words → the other's)."""
    others_ = [
        f"{pct(w)} ({points(d)}; {points(x)})"
        for w, d, x in zip(slice_.wer[1:], slice_.shift[1:], slice_.excess[1:], strict=True)
    ]
    rank = " → ".join("–" if r is None else str(r) for r in slice_.rank)
    return [
        slice_.label + (FLAGGED if slice_.flagged else ""),
        pct(slice_.wer[0]),
        *others_,
        rank,
        rewrites_text(slice_.rewrites, limit=3),
    ]


def rewrites_text(per_normalizer: list[list[Rewrite]], limit: int) -> str:
    parts = [
        f"{'hyp' if r.side == 'hypothesis' else 'ref'} “{r.headline}” → “{r.other}” ×{r.count}"
        for rewrites in per_normalizer
        for r in rewrites[:limit]
    ]
    return "; ".join(parts) or "none"


def normalization_disparity(dim: DimensionShift, normalizers: list[str]) -> str:
    """The dimension's disparity under each normaliser, in one sentence a reviewer can quote."""
    parts = []
    for i, stamp in enumerate(normalizers):
        gap = dim.gap[i]
        gap_text = f"gap {points(gap)} {interval(dim.gap_ci[i], points)}".strip() if gap is not None else "no gap"
        worst = f"worst {dim.worst[i]}" if dim.worst[i] else "nothing ranked"
        verdict = "significant" if dim.significant[i] else "not significant"
        parts.append(f"under {stamp}: {gap_text}, {worst}, dependence {verdict}")
    return "Disparity " + "; ".join(parts) + "."


def detectable(slice_: SliceStats) -> str:
    """A slice's minimum detectable gap against its dimension's overall, e.g. ``±4.1 pp``; words
    where the slice has too few speakers to state one."""
    vs = slice_.vs_overall
    if vs is None:
        return detectable_gap(None)
    if vs.min_detectable is None and vs.detect_note:
        return "– (too few speakers)"
    return detectable_gap(vs.min_detectable)


def detectable_gap(value: float | None) -> str:
    """``±4.1 pp``; a gap over 100 points is no gap this data could show."""
    if value is not None and value > DETECTABLE_SHOWN_MAX:
        return f"none ≤ ±{100 * DETECTABLE_SHOWN_MAX:.0f} pp"
    return "–" if value is None else f"±{100 * value:.1f} pp"


def detectable_sentence(dimension: Dimension, stats: StatsOptions) -> str:
    """No significant gap is absence of evidence: say which gaps the data could have shown."""
    known = [
        (s.vs_overall.min_detectable, s.label)
        for s in dimension.slices
        if s.supported and s.vs_overall is not None and s.vs_overall.min_detectable is not None
    ]
    notes = {s.label: s.vs_overall.detect_note if s.vs_overall else None for s in dimension.slices}
    too_few = [label for label, note in notes.items() if note]
    if len(dimension.slices) < 2:
        return ""
    if not known:
        # the note says why, e.g. "too few speakers to state a detectable gap (fewer than 20)"
        return f"No detectable gap is stated: {notes[too_few[0]]}." if too_few else ""
    extra = f" Too few speakers to state one for {', '.join(too_few)}." if too_few else ""
    (low, best), (high, worst) = min(known), max(known)
    span = (
        f"{detectable_gap(low)} ({best})"
        if low == high
        else f"{detectable_gap(low)} ({best}) to {detectable_gap(high)} ({worst})"
    )
    level = f"power ≈ {stats.power:.0%}, α {1 - stats.confidence:.2g}, approximate"
    if any(s.significantly_worse for s in dimension.slices):
        return f"Smallest gap against the overall this data detects ({level}): {span}.{extra}"
    return (
        "No slice is significantly worse than the overall, which is not evidence of equal WER: "
        f"no gap smaller than {span} is detectable with this data ({level}).{extra}"
    )


def discovery_summary(block: dict[str, Any]) -> str:
    o = block["options"]
    found = len(block["findings"])
    head = (
        f"Searched {block['candidates']} subgroups (conjunctions of up to {o['depth']} of: {', '.join(block['tags'])}; "
        f"at least {o['min_speakers']} speakers and {o['min_words']} words in each half) on "
        f"{block['search_speakers']} speakers; {block['kept_by_search']} passed Benjamini-Hochberg at "
        f"{o['fdr']:g}; {block['confirmed']} were confirmed on the other {block['confirmation_speakers']} speakers"
    )
    pruned = f", {len(block['pruned'])} pruned as redundant" if block["pruned"] else ""
    tail = f"; {found} finding{'s' if found != 1 else ''} (seed {o['seed']}; numbers from the confirmation half)."
    return head + pruned + (tail if found else "; nothing to report: no subgroup survived both halves.")


def finding_cells(rank: int, finding: dict[str, Any]) -> list[str]:
    e = finding["confirmation"]
    ratio_text = (
        "–"
        if e["ratio"] is None
        else f"{e['ratio']:.2f}× {interval(e.get('ratio_ci'), lambda v: ratio(v)[:-1], unbounded=True)}"
    )
    return [
        str(rank),
        finding["label"],
        pct(e["wer"]),
        pct(e["complement_wer"]),
        f"{points(e['difference'])} {interval(e.get('difference_ci'), points)}".strip(),
        ratio_text.strip(),
        str(e["speakers"]),
        str(e["words"]),
        f"{_small(finding['search_q'])}, {_small(finding['confirmation_q'])}",
    ]


def _small(value: float) -> str:
    return "<1e-15" if value < 1e-15 else f"{value:.2g}"


# The robust view (metrics.json "runaway"; harness/stats/robust.py): shared by every report.
ROBUST_HEADER = (
    "slice",
    "WER",
    "capped WER [CI]",
    "runaway utts",
    "errors from runaways",
    "worst runaway clip",
)
ROBUST_CONDITION_HEADER = (
    "condition",
    "runaway utts",
    "errors from runaways",
    "ΔWER",
    "capped ΔWER",
    "ΔWER from runaways",
    "worst runaway clip",
)


def count_text(count: RunawayCount) -> str:
    """``3/240 (loop 2, length 1)``."""
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(count.reasons.items(), key=lambda kv: -kv[1]))
    return f"{count.runaway}/{count.scored}" + (f" ({reasons})" if reasons else "")


def clip_text(clips: list[Clip]) -> str:
    if not clips:
        return "–"
    c = clips[0]
    return f"{c.id} ({c.reason}, {c.errors} errors on {c.ref_words} words)"


def runaway_sentence(block: RobustView | None) -> str:
    """One sentence under the headline: how many runaways, the share of errors they carry, capped WER."""
    if not block:
        return ""
    count = block.overall
    return (
        f"Runaway transcripts ({block.scope}): {count_text(count)}, carrying "
        f"{share_text(count.error_share)} of the errors; capped WER (each utterance's errors capped at its "
        f"reference length) {pct_ci(count.capped_wer, block.capped_wer_ci)}."
    )


def share_text(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}%"


def robust_cells(s: RobustSlice) -> list[str]:
    count = s.count
    return [
        s.label + (" ★" if s.starred else ""),
        pct(s.wer),
        pct_ci(s.capped_wer, s.capped_wer_ci) + (" ★" if s.capped_starred else ""),
        count_text(count),
        share_text(count.error_share),
        clip_text(s.worst_clips),
    ]


def robust_condition_cells(c: RobustCondition, reference: bool) -> list[str]:
    count = c.count
    return [
        c.condition,
        count_text(count),
        share_text(count.error_share),
        "–" if reference else points(c.delta),
        "–" if reference else points(c.capped_delta),
        "–" if reference else share_text(c.runaway_delta_share),
        clip_text(c.worst_clips),
    ]


def robust_changes(block: RobustView | None) -> list[str]:
    """Every finding that changes between the headline and the capped view, in words."""
    if not block:
        return []
    out = [f"{d.name}: {change}" for d in block.dimensions for change in d.changes]
    out += [f"{s.dimension}: {change}" for s in block.shifts for change in s.changes]
    return out
