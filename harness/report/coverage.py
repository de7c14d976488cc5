"""``asrfair coverage`` as terminal tables and as Markdown: one table per tag, one matrix per pair."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.coverage import MAX_EMPTY_LISTED, Cell, Coverage, CoverageTable, cell_text, matrix

WIDEST_MATRIX = 12  # a pair with more values than this on both sides is listed, not drawn

THIN = "⚠"


def hours(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _summary(result: Coverage) -> str:
    return (
        f"{result.manifest}: {result.utterances} utterances, {result.speakers} speakers, "
        f"{hours(result.hours)} h. {THIN} marks a cell under {result.min_speakers} speakers or {result.min_words} "
        "words: a run reports it but never ranks it, and a gap there cannot be told from noise."
    )


def _empty_line(table: CoverageTable) -> str:
    if not table.empty:
        return ""
    shown = [" × ".join(e.values()) for e in table.empty[:MAX_EMPTY_LISTED]]
    more = len(table.empty) - len(shown)
    return f"{len(table.empty)} empty combinations: {', '.join(shown)}" + (f" (and {more} more)" if more > 0 else "")


def print_coverage(result: Coverage, console: Console) -> None:
    console.print(escape(_summary(result)))
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
        title=f"{escape(table.name)}: {len(table.cells)} cells, {thin} thin", title_justify="left", title_style="bold"
    )
    for column in ("cell", "speakers", "utterances", "words", "hours", "flags"):
        out.add_column(column, justify="left" if column in ("cell", "flags") else "right")
    for cell in table.cells:
        out.add_row(
            escape(cell.label) + (f" {THIN}" if cell.thin else ""),
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
        title=f"{escape(table.name)}: speakers · words per cell; {thin} thin, {len(table.empty)} empty",
        title_justify="left",
        title_style="bold",
    )
    out.add_column(f"{escape(down)} \\ {escape(across)}")
    for column in columns:
        out.add_column(escape(column), justify="right")
    for row in rows:
        out.add_row(escape(row), *(_matrix_cell(cells.get((row, column))) for column in columns))
    return out


def _matrix_cell(cell: Cell | None) -> str:
    if cell is None:
        return "[red]—[/]"
    text = escape(cell_text(cell))
    return f"[yellow]{text} {THIN}[/]" if cell.thin else text


def render_coverage_markdown(result: Coverage) -> str:
    lines = ["# asrfair coverage", "", _md(_summary(result))]
    if result.warnings:
        lines += ["", *(f"- **Warning**: {_md(w)}" for w in result.warnings)]
    for table in result.tables:
        lines += ["", f"## {_md(table.name)}", ""]
        if _drawable(table):
            down, across, rows, columns, cells = matrix(table)
            lines += ["| " + " | ".join(_md(c) for c in [f"{down} \\ {across}", *columns]) + " |"]
            lines += ["|" + "---|" * (len(columns) + 1)]
            for row in rows:
                shown = [_md_cell(cells.get((row, column))) for column in columns]
                lines.append(f"| {_md(row)} | " + " | ".join(shown) + " |")
        else:
            lines += ["| cell | speakers | utterances | words | hours | flags |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {_md(c.label)}{' ' + THIN if c.thin else ''} | {c.speakers} | {c.utterances} | {c.words} "
                f"| {hours(c.hours)} | {', '.join(c.reasons)} |"
                for c in table.cells
            ]
        if line := _empty_line(table):
            lines += ["", _md(line)]
    return "\n".join(lines) + "\n"


def _md_cell(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    return f"{_md(cell_text(cell))}{' ' + THIN if cell.thin else ''}"


def _md(text: str) -> str:
    """Data strings cannot break the table or inject markup."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
