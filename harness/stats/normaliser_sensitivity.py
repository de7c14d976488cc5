"""Normaliser sensitivity: the same run scored under several normalisers, side by side.

Whether a dialect's "errors" are the model's or the scorer's depends on the normaliser (Whisper's
English normaliser rewrites ``gonna`` → ``going to``, ``colour`` → ``color``). This module takes
one run's utterances scored under each normaliser (the headline's first) and says which slices
move *differently from the rest of their dimension*, or change rank, when only the normaliser
changes, and which word forms each normaliser rewrote in each slice, so a reviewer can see why.

A uniform shift (every slice 3 points lower) changes every number but no comparison between
slices, so a slice is flagged on its **excess shift**: its own WER change minus the *typical*
change of its dimension (the median over the ranked slices, so that the one slice a normaliser
treats differently does not drag the yardstick and flag all the others), or when its rank moves
by ``rank_change`` places or more.

Rewrites are counted only where they change one side of an utterance: a rewrite applied alike to
the reference and the transcript cannot move WER, however frequent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np
import pandas as pd

from harness.stats.by_slice import rankable
from harness.stats.records import (
    Dimension,
    DimensionShift,
    NormalizerSensitivity,
    Rewrite,
    SliceShift,
    SliceStats,
    Summary,
)
from harness.stats.slices import SliceSpec, TagCodes, slice_codes

TOP_REWRITES = 5
EMPTY = "∅"  # the side of a rewrite where a normaliser dropped the words



@dataclass(frozen=True)
class ScoredView:
    """One normaliser's scoring of the run: its stamp, the scored table, its summary."""

    stamp: str
    table: pd.DataFrame
    summary: Summary


def normalizer_sensitivity(
    views: Sequence[ScoredView],
    specs: Sequence[SliceSpec],
    *,
    wer_threshold: float,
    rank_change: int,
    top: int = TOP_REWRITES,
) -> NormalizerSensitivity:
    """Compare ``views[1:]`` with ``views[0]`` (the headline normaliser); every view scores the
    same rows in the same order."""
    headline = views[0]
    stamps = [v.stamp for v in views]
    coder = TagCodes(headline.table)
    diffs = [_utterance_rewrites(headline.table, view.table) for view in views[1:]]
    dimensions, flags = [], []
    for d, spec in enumerate(specs):
        blocks = [view.summary.dimensions[d] for view in views]
        codes = slice_codes(headline.table, spec, coder)
        rewrites = {
            label: [_top(diff, codes.codes == i, top) for diff in diffs] for i, label in enumerate(codes.labels)
        }
        dimension = _dimension(blocks, stamps, rewrites, wer_threshold, rank_change)
        dimensions.append(dimension)
        flags += [f"{dimension.name}: {reason}" for reason in dimension.reasons]
        flags += [f"{dimension.name}={s.label}: {reason}" for s in dimension.slices for reason in s.reasons]
    everyone = np.ones(len(headline.table), dtype=bool)
    return NormalizerSensitivity(
        stamps,
        headline.summary.aggregate,
        wer_threshold,
        rank_change,
        [view.summary.overall.wer for view in views],
        dimensions,
        [_top(diff, everyone, top) for diff in diffs],
        flags,
    )


def _dimension(
    blocks: list[Dimension],
    stamps: list[str],
    rewrites: dict[str, list[list[Rewrite]]],
    wer_threshold: float,
    rank_change: int,
) -> DimensionShift:
    head = blocks[0]
    overall = [b.overall_wer for b in blocks]
    by_label = [{s.label: s for s in b.slices} for b in blocks]
    ranks = [_ranks(b.slices) for b in blocks]
    wers = {s.label: [view[s.label].wer for view in by_label] for s in head.slices}
    shifts = {label: [_minus(w, values[0]) for w in values] for label, values in wers.items()}
    typical = [
        _typical([shifts[label][i] for label in ranks[0]], _minus(overall[i], overall[0])) for i in range(len(blocks))
    ]
    slices = []
    for s in head.slices:
        rank = [r.get(s.label) for r in ranks]
        shift = shifts[s.label]
        excess = [_minus(x, t) for x, t in zip(shift, typical, strict=True)]
        reasons = []
        for i in range(1, len(blocks)):
            if excess[i] is not None and abs(excess[i]) > wer_threshold:
                reasons.append(
                    f"under {stamps[i]} WER moves {_pp(shift[i])} where the typical slice moves {_pp(typical[i])} "
                    f"(excess {_pp(excess[i])}, more than {wer_threshold * 100:.1f} pp)"
                )
            if rank[0] is not None and rank[i] is not None and abs(rank[i] - rank[0]) >= rank_change:
                reasons.append(f"rank {rank[0]} → {rank[i]} (1 = worst) under {stamps[i]}")
        slices.append(
            SliceShift(s.label, wers[s.label], rank, shift, excess, bool(reasons), reasons, rewrites[s.label])
        )
    worst = [b.disparity.worst for b in blocks]
    gap = [b.disparity.gap for b in blocks]
    significant = [bool(b.test and b.test.significant) for b in blocks]
    reasons = []
    for i in range(1, len(blocks)):
        if worst[i] != worst[0] and worst[0] is not None and worst[i] is not None:
            reasons.append(f"the worst slice is {worst[0]} under {stamps[0]} but {worst[i]} under {stamps[i]}")
        change = _minus(gap[i], gap[0])
        if change is not None and abs(change) > wer_threshold:
            reasons.append(f"the worst − best gap moves {_pp(change)} under {stamps[i]}")
        if significant[i] != significant[0]:
            verdict = "significant" if significant[i] else "not significant"
            reasons.append(f"the dependence on {head.name} is {verdict} under {stamps[i]}, unlike under {stamps[0]}")
    return DimensionShift(
        head.name,
        overall,
        typical,
        worst,
        gap,
        [b.disparity.gap_ci for b in blocks],
        [b.disparity.ratio for b in blocks],
        significant,
        slices,
        bool(reasons),
        reasons,
    )


def _typical(shifts: list[float | None], fallback: float | None) -> float | None:
    """The median shift of the ranked slices; the dimension's overall shift when none is ranked."""
    known = [x for x in shifts if x is not None]
    return float(np.median(known)) if known else fallback


def _ranks(slices: list[SliceStats]) -> dict[str, int]:
    ranked = [s for s in slices if rankable(s.supported, s.wer is not None, s.values)]
    ranked.sort(key=lambda s: -(s.wer or 0.0))
    return {s.label: i for i, s in enumerate(ranked, start=1)}


def _utterance_rewrites(headline: pd.DataFrame, other: pd.DataFrame) -> list[list[tuple[str, str, str]]]:
    """Per row, the spans the two normalisers leave differently on one side only (reference or
    hypothesis): those are the rewrites that can move the utterance's errors."""
    out: list[list[tuple[str, str, str]]] = []
    pairs = zip(
        headline["ref_norm"].tolist(),
        other["ref_norm"].tolist(),
        headline["hyp_norm"].tolist(),
        other["hyp_norm"].tolist(),
        strict=True,
    )
    for ref_a, ref_b, hyp_a, hyp_b in pairs:
        if not isinstance(hyp_a, str) or not isinstance(hyp_b, str):  # failed: not scored, nothing moved
            out.append([])
            continue
        ref, hyp = _spans(ref_a, ref_b), _spans(hyp_a, hyp_b)
        out.append(
            [("reference", *span) for span in (ref - hyp).elements()]
            + [("hypothesis", *span) for span in (hyp - ref).elements()]
        )
    return out


def _spans(a: str, b: str) -> Counter[tuple[str, str]]:
    """The word spans on which two normalisations of one text differ."""
    if a == b:
        return Counter()
    words_a, words_b = a.split(), b.split()
    matcher = SequenceMatcher(None, words_a, words_b, autojunk=False)
    return Counter(
        (" ".join(words_a[i1:i2]) or EMPTY, " ".join(words_b[j1:j2]) or EMPTY)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )


def _top(diff: list[list[tuple[str, str, str]]], mask: np.ndarray, top: int) -> list[Rewrite]:
    counts = Counter(span for row in np.flatnonzero(mask) for span in diff[row])
    return [Rewrite(side, a, b, n) for (side, a, b), n in counts.most_common(top)]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _pp(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f} pp"
