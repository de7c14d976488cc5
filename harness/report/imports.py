"""``asrfair import``'s summary: what was written, what was rejected and why, values per tag."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.data.importers.writer import ImportSummary

SHOWN_VALUES = 12  # per tag in the terminal; --json lists every value


def print_import_summary(summary: ImportSummary, console: Console) -> None:
    split = f" ({summary.split})" if summary.split else ""
    console.print(
        escape(
            f"{summary.format}{split} → {summary.manifest}: {summary.written} utterances, "
            f"{len(summary.speakers)} speakers from {summary.rows} rows; {summary.rows - summary.written} rejected"
        )
    )
    if summary.rejected:
        table = Table(title="rejected rows", title_justify="left", title_style="bold")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        for reason, count in summary.rejected.most_common():
            table.add_row(escape(reason), str(count), style="yellow")
        console.print(table)
        console.print(escape(f"each rejected row, with its source line: {summary.rejects}"))
    if summary.tags:
        console.print(_tags_table(summary))
    for tag, counts in summary.unmapped.items():
        listed = ", ".join(f"{value} ({n})" for value, n in counts.most_common(SHOWN_VALUES))
        more = len(counts) - SHOWN_VALUES
        extra = f" and {more} more (--json lists all)" if more > 0 else ""
        console.print(
            f"[yellow]{escape(f'{tag}: {len(counts)} values not in the tag map: {listed}{extra}')}[/]", highlight=False
        )


def _tags_table(summary: ImportSummary) -> Table:
    """One row per tag: how many values, how many utterances lack it, the largest values with counts."""
    table = Table(title="utterances per tag value", title_justify="left", title_style="bold")
    table.add_column("tag")
    table.add_column("values", justify="right")
    table.add_column("absent", justify="right")
    table.add_column("largest values (utterances)", overflow="fold", max_width=80)
    for tag, counts in summary.tags.items():
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{value} ({n})" for value, n in ranked[:SHOWN_VALUES])
        if len(ranked) > SHOWN_VALUES:
            shown += f", … {len(ranked) - SHOWN_VALUES} more"
        absent = summary.written - sum(counts.values())
        table.add_row(escape(tag), str(len(counts)), str(absent) if absent else "", escape(shown))
    return table
