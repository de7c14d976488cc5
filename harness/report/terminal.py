"""The rich table printed at the end of a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness.report.format import (
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
    model_lines,
    normalization_cells,
    normalization_disparity,
    normalization_header,
    others,
    pct,
    pct_ci,
    points,
    pooled_over_conditions,
    robust_cells,
    robust_changes,
    robust_condition_cells,
    runaway_sentence,
    sensitivity_sentence,
    shift_cells,
    slice_wer,
    star,
    test_sentence,
)
from harness.report.format import shown as escape  # long names clipped for display
from harness.stats.multiplicity import p_text

if TYPE_CHECKING:
    from harness.results import RunResult
    from harness.stats.records import Degradation, ModelResult, NormalizerSensitivity, RobustView

_SHORT = {"pooled": "pooled", "speaker-mean": "spk-mean", "utterance-mean": "utt-mean"}


def print_summary(result: RunResult, console: Console) -> None:
    overall, headline = result.overall, result.headline.aggregate
    second, third = others(headline)
    columns = ("slice", "WER [CI]", "detectable", _SHORT[second], _SHORT[third], "badly served", "sub/del/ins")
    columns += ("utts", "spk")
    columns += ("words", "failed", "flags")
    console.print(
        f"[bold]{escape(result.provenance['run_name'])}[/]: {headline} WER [bold]{pct(overall.wer)}[/] "
        f"{interval(overall.wer_ci)} "
        f"over {overall.words} words, {overall.utterances} utterances, {overall.speakers} speakers; "
        f"failed {result.failures.count}"
        + ("." + escape(pooled) if (pooled := pooled_over_conditions(result.conditions, bool(result.runaway))) else "")
        + ("." + escape(empty) if (empty := empty_references_sentence(result.aggregates)) else "")
    )
    for caveat in result.caveats:
        console.print(f"[bold yellow]caveat:[/] {escape(caveat['text'])}")
    if sentence := runaway_sentence(result.runaway):
        console.print(escape(sentence))
    for warning in result.warnings:
        console.print(f"[bold red]sanity warning:[/] {escape(warning)}")
    conditions = result.conditions
    for index, dim in enumerate(result.dimensions):
        if len(dim.slices) == 1:  # nothing to compare: one line, not a table
            (only,) = dim.slices
            console.print(f"{escape(dim.name)}: one slice ({escape(only.label)}, WER {pct(only.wer)})")
            continue
        evidence = f" ({result.evidence(dim)})" if conditions else ""
        table = Table(title=f"WER by {escape(dim.name)}{evidence}", title_justify="left", title_style="bold")
        level = f"{_SHORT[headline]} WER [{result.options.confidence:.0%} CI]"
        for column in columns:
            table.add_column(
                level if column == "WER [CI]" else column, justify="left" if column in ("slice", "flags") else "right"
            )
        for s in by_wer(dim.slices):
            table.add_row(
                escape(s.label) + star(s),
                slice_wer(s),
                detectable(s),
                pct(aggregate_value(s, second)),
                pct(aggregate_value(s, third)),
                badly_served(s),
                f"{pct(s.sub_rate)} / {pct(s.del_rate)} / {pct(s.ins_rate)}",
                str(s.utterances),
                str(s.speakers),
                str(s.words),
                str(s.failed),
                ", ".join(s.flags),
                style="dim" if s.flags else None,
            )
        console.print(table)
        console.print(escape(disparity_sentence(dim.disparity).replace("**", "")))
        console.print(escape(test_sentence(dim.test, result.options.confidence)))
        if sentence := detectable_sentence(dim, result.options):
            console.print(escape(sentence))
        sentence = sensitivity_sentence(result.aggregates.sensitivity[index])
        if sentence:
            console.print(f"[bold yellow]{escape(sentence)}[/]")
    for entry in result.provenance.get("conditions_skipped") or []:
        console.print(f"[yellow]skipped condition {escape(entry['name'])}: {escape(entry['reason'])}[/]")
    print_robust(result.runaway, console)
    print_conditions(conditions, console)
    print_normalization(result.normalization, console)
    print_model(result.model, console)


def print_robust(block: RobustView | None, console: Console) -> None:
    """Each dimension's slices headline and capped, runaways per condition, what changes in words."""
    if not block:
        return
    console.print(
        f"[bold]Robust view[/] ({escape(block.scope)}): capped WER counts each utterance's errors up to its "
        "reference length; runaway = loop, length, rate or empty (docs/statistics.md)"
    )
    for dim in block.dimensions:
        if len(dim.slices) < 2:
            continue
        table = Table(title=f"{escape(dim.name)}: headline and capped", title_justify="left", title_style="bold")
        for column in ROBUST_HEADER:
            table.add_column(column, justify="left" if column in ("slice", "worst runaway clip") else "right")
        for s in dim.slices:
            table.add_row(*(escape(c) for c in robust_cells(s)))
        console.print(table)
    if block.conditions:
        table = Table(title="runaways per condition", title_justify="left", title_style="bold")
        for column in ROBUST_CONDITION_HEADER:
            table.add_column(column, justify="left" if column in ("condition", "worst runaway clip") else "right")
        for i, c in enumerate(block.conditions):
            table.add_row(*(escape(x) for x in robust_condition_cells(c, i == 0)))
        console.print(table)
    for change in robust_changes(block):
        console.print(f"[bold yellow]changes when capped: {escape(change)}[/]")


def print_normalization(block: NormalizerSensitivity | None, console: Console) -> None:
    """Each dimension's slices under every normaliser, flagged moves, the rewrites that explain them."""
    if not block:
        return
    names = block.normalizers
    console.print(
        f"[bold]Normaliser sensitivity[/] ({block.aggregate} WER; Δ = change against {escape(names[0])}, "
        "excess = Δ minus the typical slice's Δ; ⚑ = moves beyond the thresholds; rank 1 = worst)"
    )
    for dim in block.dimensions:
        if len(dim.slices) < 2:
            continue
        table = Table(title=f"{escape(dim.name)} under each normaliser", title_justify="left", title_style="bold")
        for column in normalization_header(block):
            table.add_column(
                escape(column), justify="left" if column in ("slice", "most frequent rewrites") else "right"
            )
        for s in dim.slices:
            table.add_row(*(escape(c) for c in normalization_cells(s)), style="bold yellow" if s.flagged else None)
        console.print(table)
        console.print(escape(normalization_disparity(dim, names)))
    for flag in block.flags:
        console.print(f"[bold yellow]normaliser-dependent:[/] {escape(flag)}")


def print_conditions(conditions: Degradation | None, console: Console) -> None:
    """Rows = slices, columns = conditions, cells = WER (ΔWER in points); then each shift."""
    if not conditions:
        return
    reference = conditions.reference
    names = [c.name for c in conditions.conditions]
    overview = Table(
        title=f"Simulated conditions (pooled WER, paired over {conditions.paired_utterances} utterances, "
        f"against {reference})",
        title_justify="left",
        title_style="bold",
    )
    for column in ("condition", "transforms", "pooled WER [CI]", "ΔWER [CI]", "failed"):
        overview.add_column(column, justify="left" if column in ("condition", "transforms") else "right")
    for c in conditions.conditions:
        delta = "–" if c.name == reference else f"{points(c.delta)} {interval(c.delta_ci, points)}"
        overview.add_row(escape(c.name), escape(c.description), pct_ci(c.wer, c.wer_ci), delta, str(c.failed))
    console.print(overview)
    for dim in conditions.dimensions:
        table = Table(title=f"{escape(dim.name)} under each condition", title_justify="left", title_style="bold")
        table.add_column("slice")
        for name in names:
            table.add_column(escape(name), justify="right")
        table.add_column("flags")
        for s in dim.slices:
            cells = [pct(s.cells[0].wer), *(condition_cell(c) for c in s.cells[1:])]
            table.add_row(escape(s.label), *cells, ", ".join(s.flags), style="dim" if s.flags else None)
        console.print(table)
        if dim.note:
            console.print(escape(dim.note))
            continue
        for shift in dim.shifts:
            condition, delta, gap, gap_change, _ratio, worst, interaction = shift_cells(shift)
            console.print(
                escape(
                    f"{condition}: ΔWER {delta}; gap {gap} (change {gap_change}); most degraded {worst}; "
                    f"interaction {interaction}"
                )
            )


def print_model(model: ModelResult | None, console: Console) -> None:
    if not model:
        return
    table = Table(title="Tag effects controlled for each other (rate model)", title_justify="left", title_style="bold")
    for column in ("factor", "level", "rate ratio", "CI", "p"):
        table.add_column(column, justify="left" if column in ("factor", "level") else "right")
    for effect in model.effects:
        table.add_row(*(escape(c) for c in effect_cells(effect)))
    if model.effects:
        console.print(table)
    for line in model_lines(model):
        console.print(escape(line))


def print_discovery(block: dict[str, Any], console: Console) -> None:
    console.print(escape(discovery_summary(block)))
    if block["findings"]:
        table = Table(title="Under-served subgroups, worst first", title_justify="left", title_style="bold")
        for column in ("rank", "subgroup", "WER", "rest", "difference [CI]", "ratio [CI]", "speakers", "words", "q"):
            table.add_column(column, justify="left" if column == "subgroup" else "right")
        for i, finding in enumerate(block["findings"], 1):
            table.add_row(*(escape(c) for c in finding_cells(i, finding)))
        console.print(table)
    for entry in block["pruned"]:
        console.print(f"[dim]pruned {escape(entry['subgroup'])}: {escape(entry['reason'])}[/]")


def print_verdict(verdict: Any, console: Console) -> None:
    now = verdict.now
    colour = "green" if verdict.holds else "yellow"
    verb = "holds" if verdict.holds else "does not hold"
    console.print(f"[bold {colour}]{verb}[/]: {escape(verdict.subgroup)} on {escape(verdict.run)}")
    console.print(escape(verdict.reason))
    claimed = verdict.claimed
    console.print(
        escape(
            f"claimed: WER {pct(claimed.get('wer'))} vs {pct(claimed.get('complement_wer'))} for the rest, "
            f"difference {points(claimed.get('difference'))} {interval(claimed.get('difference_ci'), points)}".strip()
        )
    )
    if now:
        console.print(
            escape(
                f"now:     WER {pct(now['wer'])} vs {pct(now['complement_wer'])} for the rest, difference "
                f"{points(now['difference'])} {interval(now.get('difference_ci'), points)} over "
                f"{now['speakers']} speakers, {now['words']} words (p {p_text(now['p_value'])})"
            )
        )
    for difference in verdict.differences:
        console.print(f"[dim]evaluated on {escape(difference)}[/]")
