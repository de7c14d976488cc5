"""The robust view beside the headline: capped WER, runaway counts and shares, what flips.

Built from a run's scored table (``runaway`` reasons from :mod:`harness.scoring.runaway`), the headline
summary and the same summary of the capped table, so every interval, ★ and ▲ of the robust
view comes from the very methods of the headline. docs/statistics.md ("Robust view") explains it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from harness.conditions import CONDITION_TAG
from harness.scoring.options import RunawayRules
from harness.scoring.runaway import REASONS, ROBUST, RUNAWAY_COLUMN
from harness.stats.by_slice import StatsOptions, rankable, summarise_aggregates
from harness.stats.degradation import where_tags
from harness.stats.records import (
    Aggregates,
    Clip,
    Degradation,
    Dimension,
    RobustCondition,
    RobustDimension,
    RobustShift,
    RobustSlice,
    RobustView,
    RunawayCount,
    Summary,
)
from harness.stats.slices import SliceSpec, TagCodes, slice_codes


def runaway_count(rows: pd.DataFrame) -> RunawayCount:
    """Runaway utterances among ``rows`` and the share of the scored ones' errors they carry."""
    ok = rows[rows["status"] == "ok"]
    reason = ok[RUNAWAY_COLUMN]
    errors = ok["errors"].to_numpy(dtype=np.float64)
    words = ok["ref_words"].to_numpy(dtype=np.float64)
    flagged = reason.notna().to_numpy()
    total, runaway_errors = float(errors.sum()), float(errors[flagged].sum())
    hyp_words = (ok["hits"] + ok["substitutions"] + ok["insertions"]).to_numpy(dtype=np.float64)
    return RunawayCount(
        scored=len(ok),
        runaway=int(flagged.sum()),
        reasons={r: int(n) for r, n in reason.value_counts().items()},
        errors=int(total),
        runaway_errors=int(runaway_errors),
        error_share=runaway_errors / total if total else None,
        capped_wer=float(np.minimum(errors, words).sum() / words.sum()) if words.sum() else None,
        empty=int((hyp_words == 0).sum()),
    )


def worst_clips(rows: pd.DataFrame, limit: int = 3) -> list[Clip]:
    """The runaway utterances among ``rows`` with the most errors, most first."""
    flagged = rows[(rows["status"] == "ok") & rows[RUNAWAY_COLUMN].notna()]
    top = flagged.sort_values(["errors", "id"], ascending=[False, True]).head(limit)
    return [
        Clip(str(r["id"]), str(r[RUNAWAY_COLUMN]), int(r["errors"]), int(r["ref_words"]), _condition(r))
        for _, r in top.iterrows()
    ]


def _condition(row: pd.Series) -> str | None:
    value = row.get("condition")
    return None if value is None or pd.isna(value) else str(value)


def clips_text(clips: Sequence[Clip]) -> str:
    """``id (loop, 222 errors on 7 words)``, comma-separated."""
    return ", ".join(f"{c.id} ({c.reason}, {c.errors} errors on {c.ref_words} words)" for c in clips)


def mostly_warnings(count: RunawayCount, rules: RunawayRules, where: str = "") -> list[str]:
    """Sanity warnings for a set of transcripts that are mostly empty or mostly runaway."""
    out = []
    if not count.scored:
        return out
    scope = f" {where}" if where else ""
    if count.empty / count.scored > rules.mostly:
        out.append(
            f"{count.empty} of {count.scored} transcripts{scope} are empty: check the backend (model, language, "
            "audio format) before reading any WER"
        )
    if count.runaway / count.scored > rules.mostly:
        out.append(
            f"{count.runaway} of {count.scored} transcripts{scope} are runaways ({reasons_text(count.reasons)}): "
            "the model is failing, not ranking slices"
        )
    return out


def reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{r} {reasons[r]}" for r in REASONS if reasons.get(r)) or "none"


def robust_dimensions(
    table: pd.DataFrame, specs: Sequence[SliceSpec], headline: Summary, robust: Summary
) -> list[RobustDimension]:
    """Per dimension of ``headline``: each slice's capped WER and runaway count, and what changes
    (worst slice, ranking, ★) between the headline and the capped view, in words."""
    coder = TagCodes(table)
    out = []
    for spec, dim, capped_dim in zip(specs, headline.dimensions, robust.dimensions, strict=True):
        codes = slice_codes(table, spec, coder)
        slices = []
        for i, (s, c) in enumerate(zip(dim.slices, capped_dim.slices, strict=True)):
            rows = table[codes.codes == i]
            slices.append(
                RobustSlice(
                    s.label, s.wer, c.wer, c.wer_ci, s.significantly_worse, c.significantly_worse,
                    runaway_count(rows), worst_clips(rows),
                )
            )
        views = {"headline": dim, ROBUST: capped_dim}
        ranking = {name: _ranking(d) for name, d in views.items()}
        worst = {name: d.disparity.worst for name, d in views.items()}
        starred = {name: sorted(s.label for s in d.slices if s.significantly_worse) for name, d in views.items()}
        changes = _changes(slices, worst, ranking, starred)
        out.append(RobustDimension(dim.name, slices, worst, ranking, starred, changes))
    return out


def _ranking(dim: Dimension) -> list[str]:
    ranked = [s for s in dim.slices if rankable(s.supported, s.wer is not None, s.values)]
    return [s.label for s in sorted(ranked, key=lambda s: -(s.wer or 0.0))]


def _changes(
    slices: list[RobustSlice],
    worst: dict[str, str | None],
    ranking: dict[str, list[str]],
    starred: dict[str, list[str]],
) -> list[str]:
    by_label = {s.label: s for s in slices}
    changes = []
    if worst["headline"] != worst[ROBUST]:
        changes.append(
            f"worst slice: {worst['headline']} in the headline, {worst[ROBUST]} with each utterance's errors capped"
            + _behind([worst["headline"]], by_label)
        )
    elif ranking["headline"] != ranking[ROBUST]:
        moved = [a for a, b in zip(ranking["headline"], ranking[ROBUST], strict=True) if a != b]
        changes.append(
            f"ranking: {' > '.join(ranking['headline'])} in the headline, {' > '.join(ranking[ROBUST])} capped"
            + _behind(moved, by_label)
        )
    if starred["headline"] != starred[ROBUST]:
        changes.append(
            f"★: {', '.join(starred['headline']) or 'none'} in the headline, {', '.join(starred[ROBUST]) or 'none'} "
            "capped" + _behind(sorted(set(starred["headline"]) ^ set(starred[ROBUST])), by_label)
        )
    return changes


def _behind(labels: Sequence[str | None], by_label: dict[str, RobustSlice]) -> str:
    """``; runaway clips in X: id (loop, 222 errors on 7 words)``: what moved the slices ``labels``."""
    parts = [
        f"{label}: {clips_text(by_label[label].worst_clips)} ({pct_text(by_label[label].count.error_share)} of its "
        "errors from runaways)"
        for label in labels
        if label in by_label and by_label[label].worst_clips
    ]
    return "; runaway clips in " + "; ".join(parts) if parts else ""


def pct_text(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}%"


def robust_conditions(table: pd.DataFrame, headline: Degradation, robust: Degradation) -> list[RobustCondition]:
    names = [c.name for c in headline.conditions]
    scored = table[(table["status"] == "ok") & table[CONDITION_TAG].isin(names)]
    per_id = scored.groupby("id")[CONDITION_TAG].nunique()
    paired = scored[scored["id"].isin(per_id.index[per_id == len(names)])]
    errors = paired.pivot(index="id", columns=CONDITION_TAG, values="errors").astype(np.float64)
    flagged = paired.pivot(index="id", columns=CONDITION_TAG, values=RUNAWAY_COLUMN).notna()
    out = []
    for overall, capped_overall in zip(headline.conditions, robust.conditions, strict=True):
        name = overall.name
        rows = table[table[CONDITION_TAG] == name]
        share = None
        if name != names[0] and len(errors):
            extra = errors[name] - errors[names[0]]
            share = float(extra[flagged[name]].sum() / extra.sum()) if extra.sum() else None
        out.append(
            RobustCondition(
                name, runaway_count(rows), overall.delta, capped_overall.delta, share, worst_clips(rows)
            )
        )
    return out


def robust_shifts(headline: Degradation, robust: Degradation) -> list[RobustShift]:
    out = []
    for dim, capped_dim in zip(headline.dimensions, robust.dimensions, strict=True):
        for column, (shift, capped_shift) in enumerate(zip(dim.shifts, capped_dim.shifts, strict=True), start=1):
            marked = {
                name: [s.label for s in d.slices if s.cells[column].degrades_more]
                for name, d in (("headline", dim), (ROBUST, capped_dim))
            }
            most = {"headline": shift.most_degraded, ROBUST: capped_shift.most_degraded}
            withdrawn = [label for label in marked["headline"] if label not in marked[ROBUST]]
            changes = []
            if most["headline"] != most[ROBUST]:
                changes.append(
                    f"most degraded under {shift.condition}: {most['headline']} in the headline, "
                    f"{most[ROBUST]} with each utterance's errors capped"
                )
            if marked["headline"] != marked[ROBUST]:
                changes.append(
                    f"▲ under {shift.condition}: {', '.join(marked['headline']) or 'none'} in the headline, "
                    f"{', '.join(marked[ROBUST]) or 'none'} capped"
                    + ("; a ▲ needs both, so none is shown for " + ", ".join(withdrawn) if withdrawn else "")
                )
            out.append(RobustShift(dim.name, shift.condition, most, marked, withdrawn, changes))
    return out


def agreed_marks(headline: Degradation, robust: Degradation) -> Degradation:
    """``headline`` with a ▲ kept only where the capped analysis marks the same slice too: one
    runaway clip can make a slice's extra errors significant, never its capped ones as well."""
    dimensions = []
    for dim, capped_dim in zip(headline.dimensions, robust.dimensions, strict=True):
        slices = []
        for s, c in zip(dim.slices, capped_dim.slices, strict=True):
            cells = [
                replace(cell, degrades_more=cell.degrades_more and other.degrades_more)
                for cell, other in zip(s.cells, c.cells, strict=True)
            ]
            slices.append(replace(s, cells=cells))
        dimensions.append(replace(dim, slices=slices))
    return replace(headline, dimensions=dimensions)



def robust_view(
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    headline: Summary,
    robust: Summary,
    rules: RunawayRules,
    scope: str,
    reference: str | None = None,
    changes: tuple[Degradation, Degradation] | None = None,
) -> RobustView:
    """``specs``, ``headline`` and ``robust`` as :func:`headline_aggregates` gives them (the capped
    one from the capped table); ``changes``: the headline and capped paired comparisons of a run
    with simulated conditions, whose ``reference`` the headline's overall covers."""
    dimensions = robust_dimensions(table, specs, headline, robust)
    conditions = robust_conditions(table, *changes) if changes else []
    shifts = robust_shifts(*changes) if changes else []
    flagged = any(d.changes for d in dimensions) or any(s.changes for s in shifts)
    rows = table if reference is None else table[table[CONDITION_TAG] == reference]
    return RobustView(
        rules, scope, runaway_count(rows), robust.overall.wer_ci, dimensions, conditions, shifts, flagged
    )


def sanity_warnings(view: RobustView, table: pd.DataFrame, headline: Summary, changes: Degradation | None) -> list[str]:
    """A run whose transcripts are mostly empty or runaway, or whose WER exceeds 100 % anywhere."""
    out = mostly_warnings(runaway_count(table), view.rules)
    for c in view.conditions:
        out += mostly_warnings(c.count, view.rules, f"under {c.condition}")
    over = [
        f"{d.name} {s.label} {100 * s.wer:.0f}%"
        for d in headline.dimensions
        for s in d.slices
        if s.wer is not None and s.wer > 1
    ]
    if changes:
        over += [
            f"{d.name} {s.label} under {cell.condition} {100 * cell.wer:.0f}%"
            for d in changes.dimensions
            for s in d.slices
            for cell in s.cells
            if cell.wer is not None and cell.wer > 1
        ]
    if headline.overall.wer is not None and headline.overall.wer > 1:
        over.insert(0, f"overall {100 * headline.overall.wer:.0f}%")
    if over:
        shown = ", ".join(over[:5]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
        out.append(
            f"WER exceeds 100% ({shown}): insertions outnumber reference words; see the runaway counts and the "
            "capped view"
        )
    return out


def scoped_specs(specs: Sequence[SliceSpec], reference: str | None) -> list[SliceSpec]:
    """With simulated conditions, each dimension that does not slice by condition keeps only the
    reference condition's rows (``where`` gains ``condition == reference``): recorded and
    simulated audio are never pooled in one slice. Dimensions by condition keep every condition
    (each of their slices is one condition, labelled)."""
    if reference is None:
        return list(specs)
    out = []
    for spec in specs:
        if CONDITION_TAG in spec.by or CONDITION_TAG in where_tags(spec):
            out.append(spec)
        elif isinstance(spec.where, str):
            out.append(spec.model_copy(update={"where": f"({spec.where}) and {CONDITION_TAG} == {reference!r}"}))
        else:
            out.append(spec.model_copy(update={"where": {**spec.where, CONDITION_TAG: (reference,)}}))
    return out


def headline_aggregates(
    table: pd.DataFrame, specs: Sequence[SliceSpec], options: StatsOptions, reference: str | None
) -> tuple[Aggregates, list[SliceSpec], str]:
    """The headline: with simulated conditions, the overall and every recorded dimension on the
    reference condition's rows only (see :func:`scoped_specs`), one Holm family over all
    dimensions as without conditions. Returns the aggregates, the scoped specs and the scope."""
    if reference is None or CONDITION_TAG not in table.columns:
        return summarise_aggregates(table, specs, options), list(specs), "every utterance"
    base = summarise_aggregates(table[table[CONDITION_TAG] == reference].reset_index(drop=True), [], options)
    options = replace(options, speaker_wer_threshold=base.speaker_wer_threshold)
    scoped = scoped_specs(specs, reference)
    full = summarise_aggregates(table, scoped, options)
    blocks = {name: replace(block, overall=base.blocks[name].overall) for name, block in full.blocks.items()}
    return replace(full, blocks=blocks, empty_references=base.empty_references), scoped, f"condition {reference} only"
