"""``asrfair coverage`` and ``asrfair plan`` as terminal tables and as Markdown."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.report.format import clip, detectable_gap, md_text
from harness.report.format import shown as escape  # long names clipped for display
from harness.stats.coverage import MAX_EMPTY_LISTED, Coverage, CoverageCell, CoverageTable, cell_text, matrix
from harness.stats.power import MAX_SPEAKERS, Plan, SlicePlan

WIDEST_MATRIX = 12  # a pair with more values than this on both sides is listed, not drawn

THIN = "⚠"


def hours(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _summary(result: Coverage) -> str:
    kinds = [t.kind for t in result.tables]
    tags, pairs, files = kinds.count("tag"), kinds.count("pair"), kinds.count("slice file")
    counted = f"{len(result.tables)} tables: one per tag ({tags}) and per pair of tags ({pairs})" + (
        f" and {files} from --slices" if files else ""
    )
    return (
        f"{result.manifest}: {result.utterances} utterances, {result.speakers} speakers, "
        f"{hours(result.hours)} h. {counted}; a row is a cell (a tag's value, or a pair of values) with its "
        f"speakers, utterances, words and hours. {THIN} marks a cell under {result.min_speakers} speakers or "
        f"{result.min_words} words: a run reports it but never ranks it, and a gap there cannot be told from noise."
    )


def _one_valued(tags: tuple[str, ...]) -> str:
    if not tags:
        return ""
    return f"; {', '.join(tags)} {'has' if len(tags) == 1 else 'have'} one value"


def _repeated_line(result: Coverage) -> str:
    """The pair tables left out because they repeat a one-tag table row for row."""
    if not result.repeated:
        return ""
    shown = [f"{r.name} (= {r.duplicate_of}{_one_valued(r.single_valued)})" for r in result.repeated[:MAX_EMPTY_LISTED]]
    more = len(result.repeated) - len(shown)
    return (
        f"{len(result.repeated)} pair tables left out, each the same cells as a one-tag table: {', '.join(shown)}"
        + (f" (and {more} more)" if more > 0 else "")
    )


def _empty_line(table: CoverageTable) -> str:
    if not table.empty:
        return ""
    shown = [" × ".join(e.values()) for e in table.empty[:MAX_EMPTY_LISTED]]
    more = len(table.empty) - len(shown)
    return f"{len(table.empty)} empty combinations: {', '.join(shown)}" + (f" (and {more} more)" if more > 0 else "")


def print_coverage(result: Coverage, console: Console) -> None:
    console.print(escape(_summary(result)))
    if line := _repeated_line(result):
        console.print(escape(line))
    for table in result.tables:
        if _drawable(table):
            console.print(_matrix_table(table))
        else:
            console.print(_cell_table(table))
        if line := _empty_line(table):
            console.print(f"[yellow]{escape(line)}[/]")


def _drawable(table: CoverageTable) -> bool:
    if len(table.by) != 2 or table.kind != "pair":
        return False
    _, _, rows, columns, _ = matrix(table)
    return min(len(rows), len(columns)) <= WIDEST_MATRIX


def _cell_table(table: CoverageTable) -> Table:
    thin = sum(c.thin for c in table.cells)
    out = Table(
        title=f"{escape(clip(table.name))}: {len(table.cells)} cells, {thin} thin",
        title_justify="left",
        title_style="bold",
    )
    for column in ("cell", "speakers", "utterances", "words", "hours", "flags"):
        out.add_column(column, justify="left" if column in ("cell", "flags") else "right")
    for cell in table.cells:
        out.add_row(
            escape(clip(cell.label)) + (f" {THIN}" if cell.thin else ""),
            str(cell.speakers),
            str(cell.utterances),
            str(cell.words),
            hours(cell.hours),
            ", ".join(cell.reasons),
            style="yellow" if cell.thin else None,
        )
    return out


def _matrix_table(table: CoverageTable) -> Table:
    down, across, rows, columns, cells = matrix(table)
    thin = sum(c.thin for c in table.cells)
    out = Table(
        title=f"{escape(clip(table.name))}: speakers · words per cell; {thin} thin, {len(table.empty)} empty",
        title_justify="left",
        title_style="bold",
    )
    out.add_column(f"{escape(clip(down))} \\ {escape(clip(across))}")
    for column in columns:
        out.add_column(escape(clip(column)), justify="right")
    for row in rows:
        out.add_row(escape(clip(row)), *(_matrix_cell(cells.get((row, column))) for column in columns))
    return out


def _matrix_cell(cell: CoverageCell | None) -> str:
    if cell is None:
        return "[red]—[/]"
    text = escape(cell_text(cell))
    return f"[yellow]{text} {THIN}[/]" if cell.thin else text


def render_coverage_markdown(result: Coverage) -> str:
    lines = ["# asrfair coverage", "", md_text(_summary(result))]
    if line := _repeated_line(result):
        lines += ["", md_text(line)]
    if result.warnings:
        lines += ["", *(f"- **Warning**: {md_text(w)}" for w in result.warnings)]
    for table in result.tables:
        lines += ["", f"## {md_text(table.name)}", ""]
        if _drawable(table):
            down, across, rows, columns, cells = matrix(table)
            lines += ["| " + " | ".join(md_text(c) for c in [f"{down} \\ {across}", *columns]) + " |"]
            lines += ["|" + "---|" * (len(columns) + 1)]
            for row in rows:
                shown = [_md_cell(cells.get((row, column))) for column in columns]
                lines.append(f"| {md_text(row)} | " + " | ".join(shown) + " |")
        else:
            lines += ["| cell | speakers | utterances | words | hours | flags |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {md_text(c.label)}{' ' + THIN if c.thin else ''} | {c.speakers} | {c.utterances} | {c.words} "
                f"| {hours(c.hours)} | {', '.join(c.reasons)} |"
                for c in table.cells
            ]
        if line := _empty_line(table):
            lines += ["", md_text(line)]
    return "\n".join(lines) + "\n"


def _md_cell(cell: CoverageCell | None) -> str:
    if cell is None:
        return "—"
    return f"{md_text(cell_text(cell))}{' ' + THIN if cell.thin else ''}"


PLAN_COLUMNS = (
    "slice",
    "compared with",
    "speakers",
    "utts/speaker",
    "detectable now",
    "need",
    "record more",
    "floor",
    "need if both grow",
)


def _plan_header(result: Plan) -> str:
    per = (
        f"{result.utts_per_speaker:g} utterances per speaker"
        if result.utts_per_speaker
        else "utterances per speaker as now"
    )
    holm = f", Holm over {result.tests} dimensions: α/{result.tests} in the worst case" if result.tests > 1 else ""
    return (
        f"Speakers needed for a ★ on a {result.gap * 100:.1f} pp WER gap with power {result.power:.0%} at α "
        f"{result.alpha:.2g}{holm} ({per}), against the comparison group as it is; 'floor': speakers needed "
        "however many utterances each records; 'need if both grow': speakers in the slice and in its comparison "
        "group alike. "
        f"Model: {result.method}. Measured from 10-speaker pilots on simulated data (docs/statistics.md, "
        "Calibration): conservative, the ★ came with the stated power or more. 'need' for the slice alone is "
        "given only up to the comparison group's own speakers (beyond, its power rests on the comparison: grow both)."
    )


def _plan_cells(s: SlicePlan) -> list[str]:
    def count(value: int | None) -> str:
        # Past MAX_SPEAKERS a figure is the model's extrapolation from the pilot, not a plan anyone
        # records to (a 2-speaker pilot gives six-digit needs): said as a bound, not a number.
        if value is not None and value > MAX_SPEAKERS:
            return f"> {MAX_SPEAKERS}"
        return "–" if value is None else str(value)

    detectable = detectable_gap(s.detectable_now)
    need = count(s.need) if s.need is not None or s.note is None else "unreachable"
    return [
        s.label,
        s.compared_with,
        str(s.speakers),
        f"{s.per_speaker:.1f} → {s.planned_per_speaker:.1f}"
        if s.planned_per_speaker != s.per_speaker
        else f"{s.per_speaker:.1f}",
        detectable,
        need,
        count(s.record_more),
        count(s.floor),
        count(s.need_both),
    ]


def print_plan(result: Plan, console: Console) -> None:
    console.print(escape(_plan_header(result)))
    for dim in result.dimensions:
        if len(dim.slices) < 2:
            console.print(f"{escape(dim.name)}: {len(dim.slices)} ranked slice(s), nothing to compare")
            continue
        table = Table(title=f"{escape(dim.name)}", title_justify="left", title_style="bold")
        for column in PLAN_COLUMNS:
            table.add_column(column, justify="left" if column in ("slice", "compared with") else "right")
        for s in dim.slices:
            table.add_row(*(escape(c) for c in _plan_cells(s)), style="yellow" if s.record_more else None)
        console.print(table)
        for s in dim.slices:
            if s.note:
                console.print(f"[yellow]{escape(s.label)}: {escape(s.note)}[/]")


def render_plan_markdown(result: Plan) -> str:
    lines = ["# asrfair plan", "", md_text(_plan_header(result))]
    for dim in result.dimensions:
        if len(dim.slices) < 2:
            continue
        lines += [
            "",
            f"## {md_text(dim.name)}",
            "",
            "| " + " | ".join(PLAN_COLUMNS) + " |",
            "|" + "---|" * len(PLAN_COLUMNS),
        ]
        lines += ["| " + " | ".join(md_text(c) for c in _plan_cells(s)) + " |" for s in dim.slices]
        lines += [f"- {md_text(s.label)}: {md_text(s.note)}" for s in dim.slices if s.note]
    return "\n".join(lines) + "\n"
