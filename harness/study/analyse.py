"""A study's runs → :class:`StudyResult`: leaderboards, heatmaps, paired comparisons and claims.

The leaderboard's figures are each system's full run (as ``asrfair run`` reports it); the paired
comparisons use the utterances every system scored. Systems are ranked by the chosen criterion;
one that the paired comparison cannot tell from the system ranked just above it (the interval of
their difference in that criterion contains 0) shares its rank: ties are shown as ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from harness.scoring.runaway import RUNAWAY_COLUMN
from harness.stats.by_slice import StatsOptions, summarise
from harness.stats.records import Summary
from harness.study import RankBy
from harness.study.compare import METHOD, compare_pair, holm_and_claims, pair_systems
from harness.study.results import (
    DatasetResult,
    Entry,
    Heatmap,
    HeatmapRow,
    PairComparison,
    StudyResult,
    SystemInfo,
    Worst,
)
from harness.study.spec import StudySpec

if TYPE_CHECKING:  # the runner sits above this module (it calls the pipeline); only its records are read here
    from harness.study.runner import StudyRuns, SystemRun


def analyse(spec: StudySpec, runs: StudyRuns, rank_by: RankBy | None = None) -> StudyResult:
    options = spec.stats.options()
    rank_by = rank_by or spec.rank_by
    systems = []
    for system in spec.systems:
        ran = [r.metrics["provenance"]["backend"] for r in runs.runs if r.system == system.label]
        backend = ran[0] if ran else {"name": system.backend.name}
        systems.append(
            SystemInfo(system.label, backend.get("name", system.backend.name), backend.get("model"),
                       backend.get("decoding") or {}, system.price_per_audio_hour)
        )
    prices = {s.label: s.price_per_audio_hour for s in spec.systems}
    datasets = [
        dataset_result(d.name, runs.of(d.name), spec.dimension, rank_by, prices, options) for d in spec.datasets
    ]
    return StudyResult(
        name=spec.name,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        rank_by=rank_by,
        confidence=options.confidence,
        currency=spec.currency,
        systems=systems,
        datasets=datasets,
        transcribed=runs.transcribed,
        from_cache=runs.from_cache,
        method=METHOD,
    )


def dataset_result(
    name: str,
    runs: Sequence[SystemRun],
    dimension: str | None,
    rank_by: RankBy,
    prices: dict[str, float | None],
    options: StatsOptions,
) -> DatasetResult:
    specs = runs[0].slices
    summaries = {r.system: summarise(r.table, specs, options) for r in runs}
    dim_index = _dimension_index(summaries[runs[0].system], dimension)
    coded, excluded = pair_systems({r.system: r.table for r in runs})
    pairs, claims = [], []
    if coded.rows.words.size:  # no utterance every system scored: nothing to pair (every system ties)
        pairs = [compare_pair(coded, a, b, specs, options) for a in range(len(runs)) for b in range(a + 1, len(runs))]
        pairs, claims = holm_and_claims(name, pairs, specs, coded, options)
    entries = [_entry(r, summaries[r.system], dim_index, prices.get(r.system)) for r in runs]
    leaderboard = rank(entries, pairs, rank_by, None if dim_index is None else specs[dim_index].label)
    return DatasetResult(
        name=name,
        dimension=None if dim_index is None else specs[dim_index].label,
        leaderboard=leaderboard,
        heatmaps=[_heatmap(d, summaries) for d in range(len(specs))],
        pairs=pairs,
        paired_utterances=int(coded.rows.words.size),
        excluded_utterances=excluded,
        claims=claims,
    )


def _dimension_index(summary: Summary, dimension: str | None) -> int | None:
    names = [d.name for d in summary.dimensions]
    if dimension is None:
        return 0 if names else None
    return names.index(dimension) if dimension in names else None


def _entry(run: SystemRun, summary: Summary, dim: int | None, price: float | None) -> Entry:
    overall = summary.overall
    table = run.table
    scored = table["status"] == "ok"
    runaway = table.loc[scored, RUNAWAY_COLUMN].notna() if RUNAWAY_COLUMN in table else None
    worst = []
    for d in summary.dimensions:
        label = d.disparity.worst
        row = next((s for s in d.slices if s.label == label), None)
        worst.append(Worst(d.name, label, d.disparity.worst_wer, row.wer_ci if row else None))
    disparity = summary.dimensions[dim].disparity if dim is not None else None
    hours = float(np.nansum(table["audio_s"].to_numpy(dtype=np.float64, na_value=np.nan))) / 3600
    spread = overall.speakers_wer
    return Entry(
        system=run.system,
        rank=0,
        tied_with=[],
        criterion=None,
        wer=overall.wer,
        wer_ci=overall.wer_ci,
        speaker_mean_wer=overall.speaker_mean_wer,
        worst=worst,
        gap=disparity.gap if disparity else None,
        gap_ci=disparity.gap_ci if disparity else None,
        ratio=disparity.ratio if disparity else None,
        ratio_ci=disparity.ratio_ci if disparity else None,
        badly_served=spread.share if spread else None,
        badly_served_ci=spread.share_ci if spread else None,
        failure_rate=float(run.metrics["failures"]["rate"]),
        runaway_share=float(runaway.mean()) if runaway is not None and len(runaway) else None,
        throughput=run.throughput,
        cost=price * hours if price is not None else None,
        utterances=overall.utterances,
        speakers=overall.speakers,
        words=overall.words,
        run_dir=str(run.run_dir),
        failure=run.failure,
    )


def rank(entries: list[Entry], pairs: list[PairComparison], rank_by: RankBy, dimension: str | None) -> list[Entry]:
    """Sorted by the criterion (lower is better; undefined last), competition ranks with ties."""

    def criterion(e: Entry) -> float | None:
        if rank_by == "wer":
            return e.wer
        if rank_by == "gap":
            return e.gap
        return next((w.wer for w in e.worst if w.dimension == dimension), None)

    valued = [replace(e, criterion=criterion(e)) for e in entries]
    valued.sort(key=lambda e: (e.criterion is None, e.criterion if e.criterion is not None else 0.0))
    ranks: list[int] = []
    for n, entry in enumerate(valued):
        tie = n > 0 and entry.criterion is not None and not _apart(valued[n - 1].system, entry.system, pairs,
                                                                   rank_by, dimension)
        ranks.append(ranks[-1] if tie else n + 1)
    out = []
    for n, entry in enumerate(valued):
        tied = [e.system for m, e in enumerate(valued) if ranks[m] == ranks[n] and m != n]
        out.append(replace(entry, rank=ranks[n], tied_with=tied))
    return out


def _apart(x: str, y: str, pairs: list[PairComparison], rank_by: RankBy, dimension: str | None) -> bool:
    """Whether the paired interval of the criterion's difference between two systems excludes 0."""
    pair = next((p for p in pairs if {p.a, p.b} == {x, y}), None)
    if pair is None:
        return False
    if rank_by == "wer":
        ci = pair.delta.ci
    else:
        dim = next((d for d in pair.dimensions if d.name == dimension), None)
        if dim is None:
            return False
        ci = (dim.gap_change if rank_by == "gap" else dim.worst_change).ci
    return bool(ci and ci[0] is not None and ci[1] is not None and (ci[0] > 0 or ci[1] < 0))


def _heatmap(d: int, summaries: dict[str, Summary]) -> Heatmap:
    first = next(iter(summaries.values())).dimensions[d]
    labels = [s.label for s in first.slices]
    ranked = [s.supported and s.wer is not None for s in first.slices]
    rows = []
    for system, summary in summaries.items():
        by_label = {s.label: s.wer for s in summary.dimensions[d].slices}
        rows.append(HeatmapRow(system, [by_label.get(label) for label in labels]))
    return Heatmap(first.name, labels, ranked, [s.speakers for s in first.slices], rows)
