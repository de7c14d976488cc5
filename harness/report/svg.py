"""Inline SVG charts for the HTML report: WER per slice with interval whiskers, and heatmaps.

Hand-drawn rather than rendered by matplotlib: a report is written into every run directory, so
each chart must cost microseconds, stay a few kilobytes, keep its labels as real (searchable,
escaped) text, and follow the page's fonts and print styles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ROW = 24  # px per slice
LABEL_W = 230
PLOT_W = 420
VALUE_W = 150
PAD = 8


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    low: float | None
    high: float | None
    thin: bool  # under the support thresholds: drawn grey, never ranked
    marked: bool  # significantly worse (★)
    speakers: tuple[float, ...] = ()  # each speaker's own WER in the slice, drawn as faint ticks


def _ticks(top: float) -> list[float]:
    """About five round ticks from 0 to ``top`` (WER as a fraction)."""
    raw = top / 5 if top > 0 else 0.2
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def interval_chart(bars: Sequence[Bar], overall: float | None, overall_ci: Sequence[float | None] | None) -> str:
    """One row per slice: a dot at its WER, a whisker over its interval, a faint tick per speaker
    at that speaker's own WER, and the dimension's overall as a dashed line over its interval band."""
    values = [v for b in bars for v in (b.value, b.high, *b.speakers) if v is not None and math.isfinite(v)]
    values += [v for v in (overall, *(overall_ci or [])) if v is not None]
    top = max(values, default=0.1) * 1.08 or 0.1
    height = ROW * len(bars) + 34
    width = LABEL_W + PLOT_W + VALUE_W

    def x(value: float) -> float:
        return LABEL_W + PLOT_W * min(max(value, 0.0), top) / top

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>WER per slice with intervals</title>'
    ]
    for tick in _ticks(top):
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="4" y2="{height - 24}"/>'
            f'<text class="tick" x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle">{tick * 100:g}%</text>'
        )
    if overall is not None:
        if overall_ci and overall_ci[0] is not None and overall_ci[1] is not None:
            low, high = x(overall_ci[0]), x(overall_ci[1])
            parts.append(
                f'<rect class="band" x="{low:.1f}" y="4" width="{high - low:.1f}" height="{height - 28}">'
                "<title>overall interval</title></rect>"
            )
        parts.append(
            f'<line class="overall" x1="{x(overall):.1f}" x2="{x(overall):.1f}" y1="4" y2="{height - 24}">'
            f"<title>overall {overall * 100:.1f}%</title></line>"
        )
    for i, bar in enumerate(bars):
        y = 4 + ROW * i + ROW / 2
        kind = "thin" if bar.thin else ("marked" if bar.marked else "slice")
        label = escape(bar.label) + (" ★" if bar.marked else "")
        parts.append(f'<text class="label {kind}" x="{LABEL_W - PAD}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        if bar.value is None:
            parts.append(f'<text class="value" x="{LABEL_W + PAD}" y="{y + 4:.1f}">no WER</text>')
            continue
        parts += [
            f'<line class="speaker" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{y - 7:.1f}" y2="{y + 7:.1f}"/>'
            for v in bar.speakers
            if math.isfinite(v)
        ]
        if bar.low is not None and bar.high is not None:
            parts.append(
                f'<line class="whisker {kind}" x1="{x(bar.low):.1f}" x2="{x(bar.high):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            )
        parts.append(f'<circle class="dot {kind}" cx="{x(bar.value):.1f}" cy="{y:.1f}" r="5"/>')
        shown = f"{bar.value * 100:.1f}%"
        if bar.low is not None and bar.high is not None:
            shown += f" [{bar.low * 100:.1f}, {bar.high * 100:.1f}]"
        parts.append(f'<text class="value" x="{LABEL_W + PLOT_W + PAD}" y="{y + 4:.1f}">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class HeatCell:
    value: float | None  # drives the colour; None: no colour
    text: str  # first line
    detail: str = ""  # second line (support, or an interval)
    thin: bool = False
    note: str = ""  # shown on hover only


def heatmap(
    rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], HeatCell], *, palette: str = "errors"
) -> str:
    """A grid of cells coloured by value, each with its text and support; an empty combination is
    a hatched, labelled gap. Palettes: ``errors`` (white → red, worse is redder), ``change``
    (blue ← white → red, centred on 0), ``count`` (white → blue, more is bluer)."""
    cell_w, cell_h, left, head = 118, 44, 200, 60
    width, height = left + cell_w * len(columns) + 2, head + cell_h * len(rows) + 2
    known = [abs(c.value) for c in cells.values() if c.value is not None and math.isfinite(c.value)]
    scale = max(known, default=1.0) or 1.0
    parts = [
        f'<svg class="heatmap" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>heatmap</title>'
        '<defs><pattern id="gap" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern></defs>'
    ]
    for j, column in enumerate(columns):
        cx = left + cell_w * j + cell_w / 2
        parts.append(
            f'<text class="col" x="{cx:.1f}" y="{head - 10}" text-anchor="middle">{escape(_short(column))}'
            f"<title>{escape(column)}</title></text>"
        )
    for i, row in enumerate(rows):
        y = head + cell_h * i
        parts.append(
            f'<text class="row" x="{left - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{escape(_short(row, 28))}'
            f"<title>{escape(row)}</title></text>"
        )
        for j, column in enumerate(columns):
            x = left + cell_w * j
            cell = cells.get((row, column))
            if cell is None:
                parts.append(
                    f'<rect class="empty" x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="url(#gap)">'
                    f"<title>{escape(row)} × {escape(column)}: no utterances</title></rect>"
                )
                continue
            fill = _colour(cell.value, scale, palette)
            parts.append(
                f'<rect class="cell{" thin" if cell.thin else ""}" x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" '
                f'fill="{fill}"><title>{escape(row)} × {escape(column)}: {escape(cell.text)} {escape(cell.detail)}'
                f"{escape(' · ' + cell.note) if cell.note else ''}</title></rect>"
                f'<text class="cell-text" x="{x + cell_w / 2:.1f}" y="{y + 18}" text-anchor="middle">'
                f"{escape(cell.text)}{' ⚠' if cell.thin else ''}</text>"
                f'<text class="cell-detail" x="{x + cell_w / 2:.1f}" y="{y + 34}" text-anchor="middle">'
                f"{escape(cell.detail)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _colour(value: float | None, scale: float, palette: str) -> str:
    if value is None or not math.isfinite(value):
        return "#f4f4f4"
    share = min(abs(value) / scale, 1.0)
    fade = round(255 - 150 * share)
    if palette == "count" or (palette == "change" and value < 0):
        return f"rgb({fade},{round(255 - 90 * share)},255)"
    return f"rgb(255,{fade},{fade})"


def _short(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
