"""study.md: a study's leaderboards, claims and paired comparisons as Markdown (CI comments)."""

from __future__ import annotations

from harness.report.format import clip, interval, md_text, pct, pct_ci, ratio
from harness.study.results import DatasetResult, Entry, PairComparison, Paired, StudyResult
from harness.transcribe.throughput import Throughput

CRITERIA = {"wer": "overall WER", "worst": "worst-slice WER", "gap": "worst − best gap"}


def render_study_markdown(result: StudyResult) -> str:
    level = f"{100 * result.confidence:g}%"
    lines = [
        f"# Study {md_text(result.name)}",
        "",
        f"{len(result.systems)} systems × {len(result.datasets)} datasets; ranked by {CRITERIA[result.rank_by]} "
        f"(lower is better; systems the paired {level} interval cannot tell apart share a rank). "
        f"{result.transcribed} transcribed, {result.from_cache} from cache.",
        "",
        "| system | backend | model | decoding | price / audio hour |",
        "|---|---|---|---|---|",
    ]
    for s in result.systems:
        decoding = clip(", ".join(f"{k}={v}" for k, v in sorted(s.decoding.items()) if v not in (None, [], {})), 80)
        price = "–" if s.price_per_audio_hour is None else f"{s.price_per_audio_hour:g} {md_text(result.currency)}"
        lines.append(f"| {md_text(s.label)} | {md_text(s.backend)} | {md_text(str(s.model or '–'))} | "
                     f"{md_text(decoding) or '–'} | {price} |")
    for dataset in result.datasets:
        lines += ["", *_dataset(dataset, result)]
    lines += ["", f"Method: {md_text(result.method)}.", ""]
    return "\n".join(lines)


def _dataset(d: DatasetResult, result: StudyResult) -> list[str]:
    dim = md_text(d.dimension or "–")
    lines = [
        f"## {md_text(d.name)}",
        "",
        f"| rank | system | WER [CI] | speaker-mean | worst {dim} slice | {dim} gap [CI] | ratio | badly served "
        f"| failed | runaway | RTFx | cost ({md_text(result.currency)}) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in d.leaderboard:
        lines.append("| " + " | ".join(_entry_cells(e, d.dimension)) + " |")
    lines += ["", "**Claims** (each holds after Holm correction and with its interval excluding 0):", ""]
    lines += [f"- {md_text(c.text)}" for c in d.claims] or ["- none: no difference between these systems is "
                                                            "supported by this data"]
    lines += ["", f"Paired comparisons on {d.paired_utterances} utterances every system scored"
              + (f" ({d.excluded_utterances} left out: not scored by every system)" if d.excluded_utterances else "")
              + ":", "",
              "| B vs A | ΔWER (B − A) [CI] | p (Holm) | speakers B better / A better | sign p | Wilcoxon p | "
              f"{dim} gap A → B | gap change [CI] | A's worst − best: change [CI] | fairer |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for pair in d.pairs:
        lines.append("| " + " | ".join(_pair_cells(pair, d.dimension)) + " |")
    for heat in d.heatmaps:
        if len(heat.slices) < 2:
            continue
        lines += ["", f"WER by {md_text(heat.dimension)} (systems × slices; unranked slices in italics):", "",
                  "| system | " + " | ".join(md_text(s) if r else f"*{md_text(s)}*"
                                           for s, r in zip(heat.slices, heat.ranked, strict=True)) + " |",
                  "|---|" + "---|" * len(heat.slices)]
        for row in heat.rows:
            lines.append(f"| {md_text(row.system)} | " + " | ".join(pct(w) for w in row.wers) + " |")
    return lines


def _entry_cells(e: Entry, dimension: str | None) -> list[str]:
    rank = f"{e.rank}=" if e.tied_with else str(e.rank)
    worst = next((w for w in e.worst if w.dimension == dimension), None)
    worst_text = f"{md_text(worst.slice)} {pct(worst.wer)}" if worst and worst.slice else "–"
    badly = "–" if e.badly_served is None else pct(e.badly_served)
    runaway = "–" if e.runaway_share is None else pct(e.runaway_share)
    failed = pct(e.failure_rate) + (" ⚠" if e.failure else "")
    gap = "–" if e.gap is None else f"{100 * e.gap:.1f} pp {interval(e.gap_ci, _pp_end)}".strip()
    return [rank, md_text(e.system), pct_ci(e.wer, e.wer_ci), pct(e.speaker_mean_wer), worst_text, gap,
            ratio(e.ratio), badly, failed, runaway, rtfx_text(e.throughput), cost_text(e.cost)]


def _pair_cells(pair: PairComparison, dimension: str | None) -> list[str]:
    t = pair.speaker_tests
    dim = next((x for x in pair.dimensions if x.name == dimension), None)
    gap = "–"
    change = "–"
    between = "–"
    if dim is not None and dim.gap_a is not None and dim.gap_b is not None:
        gap = f"{100 * dim.gap_a:.1f} → {100 * dim.gap_b:.1f} pp"
        change = paired_text(dim.gap_change)
        if dim.best_a is not None and dim.worst_a is not None:
            between = f"{md_text(dim.worst_a)} − {md_text(dim.best_a)}: {paired_text(dim.pair_change)}"
    return [f"{md_text(pair.b)} vs {md_text(pair.a)}", paired_text(pair.delta), p_holm_text(pair.delta),
            f"{t.b_better} / {t.a_better}", _p(t.sign_p), _p(t.wilcoxon_p), gap, change, between,
            md_text(dim.fairer) if dim is not None and dim.fairer else "–"]


def paired_text(value: Paired) -> str:
    if value.estimate is None:
        return "–"
    return f"{100 * value.estimate:+.1f} pp {interval(value.ci, _pp_end)}".strip()


def p_holm_text(value: Paired) -> str:
    if value.p is None:
        return "–"
    held = " ✓" if value.significant else ""
    return f"{value.p:.2g} ({value.p_holm:.2g}){held}" if value.p_holm is not None else f"{value.p:.2g}"


def rtfx_text(t: Throughput) -> str:
    if t.rtfx is None:
        return "–"
    text = f"{t.rtfx:.1f}×"
    if t.latency_s:
        text += f" (p50 {t.latency_s['p50']:.2f} s, p90 {t.latency_s['p90']:.2f} s)"
    return text


def cost_text(cost: float | None) -> str:
    return "–" if cost is None else f"{cost:.4g}"


def _pp_end(value: float) -> str:
    return f"{100 * value:+.1f}"


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"
