"""study.html: one self-contained page for a study (same conventions as report.html: inline styles
and SVG, every data string escaped by Jinja's autoescape or the SVG helpers, nothing fetched).

Per dataset: the leaderboard (ties shown as ties: "2=" and a shared row shade), the claims, a
systems × slices heatmap per dimension, a Pareto view (overall WER, speed, cost against
worst-slice WER; systems no other beats on both axes are filled), and the paired comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from harness.report.format import pct, pct_ci, ratio
from harness.report.study_md import CRITERIA, cost_text, p_holm_text, paired_text, rtfx_text
from harness.report.svg import HeatCell, heatmap
from harness.study.results import DatasetResult, Entry, StudyResult


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float


def render_study_html(result: StudyResult) -> str:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    datasets = [_dataset(d, result) for d in result.datasets]
    return env.get_template("study.html.j2").render(
        result=result, datasets=datasets, criterion=CRITERIA[result.rank_by],
        level=f"{100 * result.confidence:g}%",
    )


def _dataset(d: DatasetResult, result: StudyResult) -> dict:
    rows = []
    for e in d.leaderboard:
        worst = next((w for w in e.worst if w.dimension == d.dimension), None)
        rows.append({
            "rank": f"{e.rank}=" if e.tied_with else str(e.rank),
            "tied": bool(e.tied_with),
            "tied_with": ", ".join(e.tied_with),
            "system": e.system,
            "wer": pct_ci(e.wer, e.wer_ci),
            "speaker_mean": pct(e.speaker_mean_wer),
            "worst": f"{worst.slice} {pct(worst.wer)}" if worst and worst.slice else "–",
            "gap": "–" if e.gap is None else paired_text_gap(e),
            "ratio": ratio(e.ratio),
            "badly": pct(e.badly_served),
            "failed": pct(e.failure_rate),
            "failure": e.failure,
            "runaway": pct(e.runaway_share),
            "rtfx": rtfx_text(e.throughput),
            "cost": cost_text(e.cost),
        })
    heatmaps = []
    for h in d.heatmaps:
        if len(h.slices) < 2:
            continue
        cells = {
            (row.system, s): HeatCell(w, pct(w), f"{n} spk", thin=not ranked)
            for row in h.rows
            for s, w, n, ranked in zip(h.slices, row.wers, h.speakers, h.ranked, strict=True)
        }
        heatmaps.append({"name": h.dimension, "svg": Markup(heatmap([r.system for r in h.rows], h.slices, cells))})
    pairs = []
    for p in d.pairs:
        dims = []
        for dim in p.dimensions:
            dims.append({
                "name": dim.name,
                "gap": "–" if dim.gap_a is None else f"{100 * dim.gap_a:.1f} → {100 * (dim.gap_b or 0):.1f} pp",
                "gap_change": paired_text(dim.gap_change),
                "pair": "–" if dim.worst_a is None or dim.best_a is None
                else f"{dim.worst_a} − {dim.best_a}: {paired_text(dim.pair_change)}",
                "fairer": dim.fairer or "–",
                "note": dim.note,
                "slices": [
                    {"name": s.slice, "ranked": s.ranked, "a": pct(s.wer_a), "b": pct(s.wer_b),
                     "delta": paired_text(s.delta), "delta_p": p_holm_text(s.delta), "delta_sig": s.delta.significant,
                     "change": paired_text(s.gap_change), "change_p": p_holm_text(s.gap_change),
                     "change_sig": s.gap_change.significant,
                     "signs": f"{s.speaker_tests.b_better} / {s.speaker_tests.a_better}",
                     "sign_p": _p(s.speaker_tests.sign_p), "wilcoxon_p": _p(s.speaker_tests.wilcoxon_p)}
                    for s in dim.slices
                ],
            })
        t = p.speaker_tests
        pairs.append({"a": p.a, "b": p.b, "delta": paired_text(p.delta), "p": p_holm_text(p.delta),
                      "sig": p.delta.significant, "signs": f"{t.b_better} / {t.a_better} ({t.ties} tied)",
                      "sign_p": _p(t.sign_p), "wilcoxon_p": _p(t.wilcoxon_p), "dims": dims})
    return {"d": d, "rows": rows, "heatmaps": heatmaps, "pairs": pairs, "pareto": _pareto(d.leaderboard, d.dimension,
                                                                                            result.currency)}


def paired_text_gap(e: Entry) -> str:
    ci = e.gap_ci
    text = f"{100 * (e.gap or 0):.1f} pp"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"


def _pareto(entries: Sequence[Entry], dimension: str | None, currency: str) -> list[Markup]:
    """Worst-slice WER (y, lower is better) against overall WER, speed (RTFx, higher is better) and cost."""
    worst = {e.system: next((w.wer for w in e.worst if w.dimension == dimension), None) for e in entries}
    panels = []
    axes = (
        ("overall WER", lambda e: e.wer, False, True),  # (title, value, log x: speed, higher is better; percent)
        ("speed (RTFx, log scale)", lambda e: e.throughput.rtfx, True, False),
        (f"cost ({currency})", lambda e: e.cost, False, False),
    )
    for title, value, log_x, percent in axes:
        points = [Point(e.system, value(e), worst[e.system]) for e in entries
                  if value(e) is not None and worst[e.system] is not None]
        if len(points) < 2:
            continue
        chart = scatter(points, title, f"worst {dimension} slice WER", log_x, log_x=log_x, percent_x=percent)
        panels.append(Markup(chart))
    return panels


def frontier(points: Sequence[Point], higher_x_better: bool) -> set[str]:
    """Systems no other system beats on both axes (lower y; lower or, with ``higher_x_better``, higher x)."""

    def better(p: Point, q: Point) -> bool:
        px, qx = (-p.x, -q.x) if higher_x_better else (p.x, q.x)
        return px <= qx and p.y <= q.y and (px < qx or p.y < q.y)

    return {q.label for q in points if not any(better(p, q) for p in points if p is not q)}


def scatter(points: Sequence[Point], x_title: str, y_title: str, higher_x_better: bool, *, log_x: bool = False,
            percent_x: bool = True) -> str:
    width, height, left, bottom, top_pad, right = 460, 300, 70, 50, 20, 20
    xs = [math.log10(p.x) if log_x else p.x for p in points if not log_x or p.x > 0]
    if not xs:
        return ""
    lo_x, hi_x = min(xs), max(xs)
    span_x = (hi_x - lo_x) or (abs(hi_x) or 1.0)
    lo_x, hi_x = lo_x - 0.1 * span_x, hi_x + 0.1 * span_x
    hi_y = max(p.y for p in points) * 1.15 or 0.1
    best = frontier(points, higher_x_better)

    def sx(v: float) -> float:
        v = math.log10(v) if log_x else v
        return left + (width - left - right) * (v - lo_x) / (hi_x - lo_x)

    def sy(v: float) -> float:
        return top_pad + (height - top_pad - bottom) * (1 - v / hi_y)

    parts = [f'<svg class="pareto" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(y_title)} against {escape(x_title)}</title>',
             f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"/>',
             f'<line class="axis" x1="{left}" y1="{top_pad}" x2="{left}" y2="{height - bottom}"/>',
             f'<text class="tick" x="{(left + width - right) / 2:.1f}" y="{height - 8}" text-anchor="middle">'
             f'{escape(x_title)}{" → better" if higher_x_better else " ← better"}</text>',
             f'<text class="tick" x="14" y="{(top_pad + height - bottom) / 2:.1f}" text-anchor="middle" '
             f'transform="rotate(-90 14 {(top_pad + height - bottom) / 2:.1f})">{escape(y_title)} ↓ better</text>']
    for frac in (0.0, 0.5, 1.0):
        yv = hi_y * frac
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{100 * yv:.0f}%</text>')
    for frac in (0.1, 0.5, 0.9):  # the data's range sits between 0.1 and 0.9 of the axis
        xv = lo_x + (hi_x - lo_x) * frac
        value = 10**xv if log_x else xv
        shown = f"{value:.1f}×" if log_x else (f"{100 * value:.1f}%" if percent_x else f"{value:.3g}")
        parts.append(f'<text class="tick" x="{left + (width - left - right) * frac:.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{escape(shown)}</text>')
    for p in points:
        if log_x and p.x <= 0:
            continue
        on = p.label in best
        shown = f"{100 * p.x:.1f}%" if percent_x else (f"{p.x:.1f}×" if log_x else f"{p.x:.4g}")
        parts.append(
            f'<circle class="point{" frontier" if on else ""}" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="6">'
            f"<title>{escape(p.label)}: {escape(shown)}, worst slice {100 * p.y:.1f}%"
            f"{' (Pareto-optimal)' if on else ''}</title></circle>"
            f'<text class="point-label" x="{sx(p.x) + 9:.1f}" y="{sy(p.y) + 4:.1f}">{escape(p.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
