"""``asrfair import``'s summary: what was written, what was rejected and why, values per tag."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.importers.writer import ImportSummary

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
    for tag, counts in summary.tags.items():
        console.print(_value_table(tag, counts, summary.written))
    for tag, counts in summary.unmapped.items():
        listed = ", ".join(f"{value} ({n})" for value, n in counts.most_common(SHOWN_VALUES))
        more = len(counts) - SHOWN_VALUES
        extra = f" and {more} more (--json lists all)" if more > 0 else ""
        console.print(
            f"[yellow]{escape(f'{tag}: {len(counts)} values not in the tag map: {listed}{extra}')}[/]", highlight=False
        )


def _value_table(tag: str, counts: dict[str, int], utterances: int) -> Table:
    shown = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    missing = utterances - sum(counts.values())
    title = f"{tag}: {len(counts)} values" + (f", absent on {missing} utterances" if missing else "")
    table = Table(title=escape(title), title_justify="left", title_style="bold")
    table.add_column("value")
    table.add_column("utterances", justify="right")
    for value, count in shown[:SHOWN_VALUES]:
        table.add_row(escape(value), str(count))
    if len(shown) > SHOWN_VALUES:
        rest = sum(count for _, count in shown[SHOWN_VALUES:])
        table.add_row(f"[dim]… {len(shown) - SHOWN_VALUES} more[/]", f"[dim]{rest}[/]")
    return table
