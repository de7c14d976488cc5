"""``report.md``: the run summary for CI logs and pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.report.format import (
    AGGREGATE_DEFINITIONS,
    DEGRADES_MORE,
    ROBUST_CONDITION_HEADER,
    ROBUST_HEADER,
    aggregate_value,
    badly_served,
    by_wer,
    condition_cell,
    detectable,
    detectable_sentence,
    discovery_summary,
    disparity_sentence,
    effect_cells,
    empty_references_sentence,
    finding_cells,
    interval,
    md_code,
    md_text,
    model_lines,
    normalization_cells,
    normalization_disparity,
    normalization_header,
    others,
    pct,
    pct_ci,
    points,
    pooled_over_conditions,
    quartiles,
    ratio,
    rewrites_text,
    robust_cells,
    robust_changes,
    robust_condition_cells,
    runaway_sentence,
    sensitivity_sentence,
    shift_cells,
    slice_wer,
    star,
    test_sentence,
    vs_overall_text,
)
from harness.report.summary import GAP, plain_summary

if TYPE_CHECKING:
    from harness.results import RunResult
    from harness.stats.options import StatsOptions
    from harness.stats.records import Degradation, Dimension, ModelResult, NormalizerSensitivity, RobustView, SliceStats

_HEADER = (
    "| slice | {headline} WER [CI] | vs overall [CI] | detectable gap | {second} | {third} | badly served | sub | del "
    "| ins | utts | speakers | words | failed | flags |"
)
_HOW_TO_READ = (
    "> **How to read this.** WER is {headline} ({definition}). Brackets are {level:.0%} intervals with speakers "
    "as the unit (cluster-robust, t with Welch–Satterthwaite degrees of freedom; `[– reason]` where none can "
    "be given, e.g. one speaker or no errors). ★ marks a slice significantly worse than its dimension's "
    "overall: the dimension's wild cluster bootstrap test (seed {seed}) is significant after Holm correction "
    "*and* the interval of the difference excludes 0. Flagged "
    "slices (too few speakers or words) are shown but never ranked or starred. *Detectable gap*: the smallest "
    "difference from the overall the ★ rule would find {power:.0%} of the time (Holm's worst case); a "
    "slice without ★ may still differ by less than that. *Badly served*: speakers whose "
    "own WER in the slice exceeds {threshold}."
)


def render_markdown(result: RunResult, discovery: dict[str, Any] | None = None) -> str:
    prov, overall, stats = result.provenance, result.overall, result.options
    headline = result.headline.aggregate
    backend = prov["backend"]
    lines = [
        f"# asrfair report: {prov['run_name']}",
        "",
        f"- **Dataset**: {md_code(prov['manifest']['path'])} (sha256 `{prov['manifest']['sha256'][:12]}`)",
        f"- **Backend**: {backend['name']} `{backend['id']}` — {_describe_backend(backend)}",
        f"- **Normaliser**: {prov['normalizer']} · **Scorer**: v{prov['scorer_version']} · "
        f"**Harness**: {prov['harness_version']} (git {prov['git_sha'] or 'n/a'})",
        f"- **Created**: {prov['created_utc']}",
        *_conditions_lines(prov),
        f"- **Aggregate**: **{headline}** WER is the headline ({AGGREGATE_DEFINITIONS[headline]}); "
        f"{' and '.join(others(headline))} are shown beside it, each with its own intervals, disparity and test.",
        f"- Slices with fewer than {stats.min_speakers} speakers or "
        f"{stats.min_words} words are flagged and not ranked.",
        *_caveat_lines(result.caveats),
        *_summary_lines(result, discovery),
        "",
        _HOW_TO_READ.format(
            headline=headline,
            definition=AGGREGATE_DEFINITIONS[headline],
            level=stats.confidence,
            replicates=stats.bootstrap,
            seed=stats.seed,
            power=stats.power,
            threshold=pct(result.aggregates.speaker_wer_threshold),
        ),
        "",
        "## Overall",
        "",
        f"{headline} WER **{pct(overall.wer)}** {interval(overall.wer_ci)} over {overall.words} words, "
        f"{overall.utterances} utterances, "
        f"{overall.speakers} speakers (substitutions {pct(overall.sub_rate)}, deletions "
        f"{pct(overall.del_rate)}, insertions {pct(overall.ins_rate)}); "
        + ", ".join(f"{a} {pct(aggregate_value(overall, a))}" for a in others(headline))
        + f"; badly served {badly_served(overall)} speakers."
        + empty_references_sentence(result.aggregates)
        + pooled_over_conditions(result.conditions, bool(result.runaway))
        + (" " + md_text(runaway_sentence(result.runaway)) if result.runaway else ""),
    ]
    lines += _warnings_lines(result.warnings)
    failures = result.failures
    if failures.count:
        lines += [
            "",
            f"**{failures.count} utterances failed** ({pct(failures.rate)}); they are "
            "excluded from WER and counted per slice. First errors:",
            "",
        ]
        lines += [f"- {md_code(f.id)}: {md_text(f.error or '')}" for f in failures.examples]
        lines += failure_rates_by_slice(result.dimensions)
    conditions = result.conditions
    for index, dim in enumerate(result.dimensions):
        evidence = f" ({result.evidence(dim)})" if conditions else ""
        lines += [
            "",
            f"## {md_text(dim.name)}{evidence}",
            "",
            disparity_sentence(dim.disparity, md_text),
            "",
            test_sentence(dim.test, stats.confidence),
            "",
            _HEADER.format(headline=headline, second=others(headline)[0], third=others(headline)[1]),
            "|" + "---|" * 15,
        ]
        lines += [_row(s, headline) for s in by_wer(dim.slices)]
        sentence = detectable_sentence(dim, stats)
        lines += ["", md_text(sentence)] if sentence else []
        lines += _aggregates_table(result, index)
        reference = dim.disparity.reference
        if reference:
            lines += [
                "",
                f"Against the reference **{md_text(reference)}**:",
                "",
                "| slice | difference [CI] | ratio [CI] |",
                "|---|---|---|",
            ]
            lines += [_reference_row(s) for s in by_wer(dim.slices) if s.vs_reference]
    lines += _discovery_section(discovery)  # beside the disparities it refines, not at the bottom
    lines += _model_section(result.model)
    lines += _robust_section(result.runaway)
    lines += _conditions_section(conditions, stats)
    lines += _normalization_section(result.normalization)
    return "\n".join(lines) + "\n"


def _caveat_lines(found: list[dict[str, str]]) -> list[str]:
    if not found:
        return []
    return ["", "> **Caveats from the dataset card**", ">", *(f"> - {md_text(c['text'])}" for c in found)]


def _summary_lines(result: RunResult, discovery: dict[str, Any] | None) -> list[str]:
    """The plain-language summary (harness/report/summary.py): headline, one verdict per dimension,
    notes and what to do next."""
    summary = plain_summary(result, discovery)
    lines = ["", "## Summary", "", md_text(summary.headline)]
    if summary.verdicts:
        lines += ["", "| dimension | worst slice, WER [CI] | verdict | what the statistics say |", "|---|---|---|---|"]
        lines += [
            f"| {md_text(v.dimension)} | {md_text(v.worst)} | {'★ ' if v.kind == GAP else ''}{v.kind} | "
            + md_text(" ".join([v.text, *(f"⚠ {w}." for w in v.warnings)]))
            + " |"
            for v in summary.verdicts
        ]
    if summary.notes:
        lines += ["", *(f"- {md_text(note)}" for note in summary.notes)]
    if summary.next_steps:
        lines += ["", "**What to do next**", "", *(f"- {_with_code(step)}" for step in summary.next_steps)]
    return lines


def _with_code(text: str) -> str:
    """Escaped text whose `command` spans stay code spans."""
    parts = text.split("`")
    return "".join(md_code(part) if i % 2 else md_text(part) for i, part in enumerate(parts))


def _warnings_lines(warnings: list[str]) -> list[str]:
    out = []
    for warning in warnings:
        out += ["", f"> ⚠ **Sanity warning**: {md_text(warning)}"]
    return out


_ROBUST_HOW_TO_READ = (
    "> **Runaway transcripts and the capped view.** A runaway is a transcript that loops (one n-gram repeated "
    "{loop_repeats}+ times back to back, unlike the reference), runs far longer than its reference (more than "
    "{ratio:g} × its words + {slack}) or than the audio could hold (over {wps:g} words per second), or is empty on "
    "speech. Capped WER counts each utterance's errors up to its reference length, so no single clip can weigh "
    "more than a clip missed entirely; it sits beside the headline, never instead of it. ★ in a capped cell is the "
    "headline's own test run on the capped counts."
)


def _robust_section(block: RobustView | None) -> list[str]:
    if not block:
        return []
    rules = block.rules
    lines = [
        "",
        f"## Robust view: runaway transcripts ({md_text(block.scope)})",
        "",
        _ROBUST_HOW_TO_READ.format(
            loop_repeats=rules.loop_repeats,
            ratio=rules.max_length_ratio,
            slack=rules.length_slack,
            wps=rules.max_words_per_second,
        ),
        "",
        md_text(runaway_sentence(block)),
    ]
    changes = robust_changes(block)
    if changes:
        lines += ["", f"**{len(changes)} findings change when runaway errors are capped:**", ""]
        lines += [f"- {md_text(change)}" for change in changes]
    else:
        lines += ["", "No ranking, worst slice, ★, ▲ or most-degraded slice changes when runaway errors are capped."]
    for dim in block.dimensions:
        lines += ["", f"### {md_text(dim.name)}: headline and capped", ""]
        lines += ["| " + " | ".join(ROBUST_HEADER) + " |", "|" + "---|" * len(ROBUST_HEADER)]
        lines += ["| " + " | ".join(md_text(c) for c in robust_cells(s)) + " |" for s in dim.slices]
    if block.conditions:
        reference = block.conditions[0].condition
        lines += ["", f"### Runaways per condition (ΔWER paired against {md_text(reference)})", ""]
        lines += ["| " + " | ".join(ROBUST_CONDITION_HEADER) + " |", "|" + "---|" * len(ROBUST_CONDITION_HEADER)]
        lines += [
            "| " + " | ".join(md_text(x) for x in robust_condition_cells(c, i == 0)) + " |"
            for i, c in enumerate(block.conditions)
        ]
    return lines


_NORMALIZATION_HOW_TO_READ = (
    "> **Same transcripts, other scoring rules.** The run is scored under {headline} (the headline) and, beside "
    "it, under {others}; nothing but the normaliser differs (docs/normalisation.md lists every rule). Each cell "
    "shows {aggregate} WER, its change (Δ) and its *excess*: the change minus the typical (median) slice's "
    "change, since a shift every slice shares moves no comparison. ⚑ marks a slice whose excess is above "
    "{threshold} or whose rank (1 = worst) moves by {rank} places or more. Rewrites are the word spans the two "
    "normalisers leave differently on one side only, the references (ref) or the transcripts (hyp), most "
    "frequent first: a rewrite made alike on both sides cannot move WER."
)


def _normalization_section(block: NormalizerSensitivity | None) -> list[str]:
    if not block:
        return []
    head, *rest = block.normalizers
    overall = " · ".join(f"{n} {pct(w)}" for n, w in zip(block.normalizers, block.overall_wer, strict=True))
    lines = [
        "",
        "## Normaliser sensitivity",
        "",
        _NORMALIZATION_HOW_TO_READ.format(
            headline=md_text(head),
            others=", ".join(md_text(n) for n in rest),
            aggregate=block.aggregate,
            threshold=points(block.wer_threshold).lstrip("+"),
            rank=block.rank_change,
        ),
        "",
        f"Overall {block.aggregate} WER: {md_text(overall)}.",
    ]
    if block.flags:
        lines += ["", f"**{len(block.flags)} findings depend on the normaliser:**", ""]
        lines += [f"- {md_text(flag)}" for flag in block.flags]
    else:
        lines += ["", "No slice or disparity moves beyond the thresholds when only the normaliser changes."]
    for rewrites, other in zip(block.rewrites, rest, strict=True):
        lines += [
            "",
            f"Most frequent rewrites over the run, {md_text(head)} → {md_text(other)}: "
            f"{md_text(rewrites_text([rewrites], limit=5))}.",
        ]
    for dim in block.dimensions:
        header = normalization_header(block)
        lines += ["", f"### {md_text(dim.name)} under each normaliser", ""]
        lines += ["| " + " | ".join(md_text(c) for c in header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(md_text(c) for c in normalization_cells(s)) + " |" for s in dim.slices]
        lines += ["", md_text(normalization_disparity(dim, block.normalizers))]
    return lines


_CONDITIONS_HOW_TO_READ = (
    "> **Simulated, not recorded.** Every utterance was also heard under each condition below, rendered by the "
    "harness (seeded, reproducible; `asrfair audition` writes what the model heard). Dimensions above marked "
    "*recorded* come from the manifest's own tags. Comparisons are paired: {paired} utterances were scored "
    "under every condition{excluded}. Cells show pooled WER under the condition (whatever the headline aggregate) "
    "and, in brackets, its change in points "
    "against **{reference}** on the same utterances. {marker} marks a slice the condition hurts significantly "
    "more than the rest of its dimension: the interaction test is significant after Holm correction across "
    "dimensions × conditions *and* the interval of the slice's excess change lies above 0, *and* both hold again "
    "with each utterance's errors capped at its reference length (one runaway clip cannot decide a ▲)."
)


def _conditions_lines(prov: dict[str, Any]) -> list[str]:
    """Which simulated conditions the run heard, and which it had to skip (even with no comparison)."""
    conditions = prov.get("config", {}).get("conditions") or []
    if not conditions:
        return []
    counts = [len(c.get("transforms") or []) for c in conditions]
    listed = ", ".join(
        f"{md_text(c['name'])} ({n} transform{'' if n == 1 else 's'})" for c, n in zip(conditions, counts, strict=True)
    )
    lines = [f"- **Simulated conditions**: {listed}; the first is the reference."]
    lines += [
        f"- **Skipped condition** {md_text(entry['name'])}: {md_text(entry['reason'])}"
        for entry in prov.get("conditions_skipped") or []
    ]
    return lines


def _conditions_section(conditions: Degradation | None, stats: StatsOptions) -> list[str]:
    if not conditions:
        return []
    excluded = conditions.excluded_utterances
    reference = conditions.reference
    lines = [
        "",
        f"## Simulated conditions (paired, against {md_text(reference)})",
        "",
        _CONDITIONS_HOW_TO_READ.format(
            paired=conditions.paired_utterances,
            excluded=f"; {excluded} failed under at least one and are left out of these comparisons"
            if excluded
            else "",
            reference=md_text(reference),
            marker=DEGRADES_MORE.strip(),
        ),
        "",
        "| condition | transforms | pooled WER [CI] | ΔWER [CI] | utterances | failed |",
        "|---|---|---|---|---|---|",
    ]
    for c in conditions.conditions:
        delta = "–" if c.name == reference else f"{points(c.delta)} {interval(c.delta_ci, points)}".strip()
        lines.append(
            f"| {md_text(c.name)} | {md_text(c.description)} | {pct_ci(c.wer, c.wer_ci)} | {delta} "
            f"| {c.utterances} | {c.failed} |"
        )
    names = [c.name for c in conditions.conditions]
    for dim in conditions.dimensions:
        lines += ["", f"### {md_text(dim.name)} under each condition", ""]
        lines += ["| slice | " + " | ".join(md_text(n) for n in names) + " | speakers | words | flags |"]
        lines += ["|" + "---|" * (len(names) + 4)]
        for s in sorted(dim.slices, key=lambda s: (s.cells[0].wer is None, -(s.cells[0].wer or 0))):
            cells = [pct(s.cells[0].wer), *(condition_cell(c) for c in s.cells[1:])]
            lines.append(
                f"| {md_text(s.label)} | " + " | ".join(cells) + f" | {s.speakers} | {s.words} | {', '.join(s.flags)} |"
            )
        lines += ["", "Paired ΔWER per slice, with its interval:", ""]
        lines += ["| slice | " + " | ".join(md_text(n) for n in names[1:]) + " |"]
        lines += ["|" + "---|" * len(names)]
        for s in dim.slices:
            deltas = [f"{points(c.delta)} {interval(c.delta_ci, points)}".strip() for c in s.cells[1:]]
            lines.append(f"| {md_text(s.label)} | " + " | ".join(deltas) + " |")
        if dim.note:
            lines += ["", dim.note + "."]
            continue
        lines += [
            "",
            f"Differential degradation: the gap across {md_text(dim.name)} is "
            f"{points(dim.reference_gap).replace('+', '')} under {md_text(reference)}.",
            "",
            "| condition | ΔWER [CI] | gap [CI] | gap change [CI] | ratio change [CI] | most degraded | interaction |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(md_text(c) for c in shift_cells(shift)) + " |" for shift in dim.shifts]
    return lines


def _discovery_section(block: dict[str, Any] | None) -> list[str]:
    if not block:
        return []
    lines = ["", "## Discovered subgroups (asrfair discover)", "", md_text(discovery_summary(block))]
    if block["findings"]:
        lines += [
            "",
            "| rank | subgroup | WER | rest | difference [CI] | ratio [CI] | speakers | words "
            "| q (search, confirmation) |",
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        lines += [
            "| " + " | ".join(md_text(c) for c in finding_cells(i, f)) + " |"
            for i, f in enumerate(block["findings"], 1)
        ]
    return lines


def _model_section(model: ModelResult | None) -> list[str]:
    if not model:
        return []
    lines = ["", "## Tag effects controlled for each other (rate model)", ""]
    lines += [md_text(line) for line in model_lines(model)]  # they quote tag names and values
    if model.effects:
        lines += [
            "",
            "Error-rate ratio of each level against its factor's reference, the other factors held fixed:",
            "",
            "| factor | level | rate ratio | CI | p |",
            "|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(md_text(c) for c in effect_cells(e)) + " |" for e in model.effects]
    return lines


def _aggregates_table(result: RunResult, index: int) -> list[str]:
    """The dimension under each aggregate side by side, with the speaker spread and the flag."""
    headline = result.headline.aggregate
    blocks = {a: summary.dimensions[index] for a, summary in result.aggregates.blocks.items()}
    names = [f"{a} (headline)" if a == headline else a for a in blocks]
    lines = [
        "",
        "Under each aggregate (docs/statistics.md, *Aggregates*):",
        "",
        "| slice | " + " | ".join(f"{n} [CI]" for n in names) + " | badly served [CI] | speaker WER quartiles |",
        "|" + "---|" * (len(names) + 3),
    ]
    by_label = {a: {s.label: s for s in d.slices} for a, d in blocks.items()}
    for s in by_wer(blocks[headline].slices):
        cells = [pct_ci(by_label[a][s.label].wer, by_label[a][s.label].wer_ci) for a in blocks]
        spread = s.speakers_wer
        share = f"{badly_served(s)} {interval(spread.share_ci if spread else None)}".strip()
        lines.append(f"| {md_text(s.label)} | " + " | ".join(cells) + f" | {share} | {quartiles(s)} |")
    gaps = [
        f"{a}: gap {points(d.disparity.gap)} {interval(d.disparity.gap_ci, points)}".strip()
        for a, d in blocks.items()
        if d.disparity.gap is not None
    ]
    if gaps:
        lines += ["", "Disparity under each: " + "; ".join(gaps) + "."]
    sentence = sensitivity_sentence(result.aggregates.sensitivity[index])
    return lines + (["", f"**{md_text(sentence)}**"] if sentence else [])


def _row(s: SliceStats, headline: str) -> str:
    cells = [
        md_text(s.label) + star(s),
        slice_wer(s),
        vs_overall_text(s),
        detectable(s),
        *(pct(aggregate_value(s, a)) for a in others(headline)),
        badly_served(s),
        pct(s.sub_rate),
        pct(s.del_rate),
        pct(s.ins_rate),
        str(s.utterances),
        str(s.speakers),
        str(s.words),
        str(s.failed),
        ", ".join(s.flags) or "",
    ]
    return "| " + " | ".join(cells) + " |"


def _reference_row(s: SliceStats) -> str:
    ref = s.vs_reference
    difference = f"{points(ref.difference)} {interval(ref.difference_ci, points)}".strip()
    ratio_ci = interval(ref.ratio_ci, lambda v: ratio(v)[:-1], unbounded=True)
    ratio_text = "–" if ref.ratio is None else f"{ref.ratio:.2f}× {ratio_ci}"
    return f"| {md_text(s.label)} | {difference} | {ratio_text.strip()} |"


def failure_rates_by_slice(dimensions: list[Dimension]) -> list[str]:
    """A backend that fails more often for one accent is a finding of its own: rates per slice."""
    lines = []
    for dim in dimensions:
        if len(dim.by) != 1 or not any(s.failed for s in dim.slices):
            continue
        rates = sorted(
            ((s.failed / (s.failed + s.utterances), s) for s in dim.slices if s.failed + s.utterances),
            key=lambda pair: -pair[0],
        )
        parts = ", ".join(f"{md_text(s.label)} {pct(rate)} ({s.failed}/{s.failed + s.utterances})" for rate, s in rates)
        lines.append(f"- failure rate by {md_text(dim.name)}: {parts}")
    return ["", *lines] if lines else []


def _describe_backend(backend: dict[str, Any]) -> str:
    fingerprint = backend["fingerprint"]
    parts = [f"{k}={v}" for k, v in fingerprint.items() if k not in ("backend", "options")]
    parts += [f"{k}={v}" for k, v in fingerprint.get("options", {}).items() if v not in (None, {}, [])]
    return md_text(", ".join(parts))
