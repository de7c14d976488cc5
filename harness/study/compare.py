"""Systems compared on the same utterances: paired differences, difference in disparity, ranking.

Pure statistics over scored utterance tables (one per system, as ``utterances.parquet`` holds them).
Only utterances every system scored, with reference words, are paired (complete cases, counted).
For two systems A and B (B − A throughout) and each dimension:

* ``ΔWER`` overall and per slice: one ratio ``Σ (E_B − E_A) / Σ N``, its interval from each speaker
  dropped from both systems at once (paired), skewness-corrected with Kish df — the machinery of
  the condition comparison (:mod:`harness.stats.degradation`), which the calibration suite measures;
* the **gap change** of a slice, ``(WER_B,s − WER_B) − (WER_A,s − WER_A)`` against the dimension's
  pooled WER under each system: B narrows (< 0) or widens (> 0) that slice's gap, same intervals;
* the change of the dimension's **worst − best gap** and of its **worst-slice WER**: non-smooth
  maxima, so their intervals are simultaneous bounds. With probability ≥ the confidence three
  Bonferroni families hold at once (α/3 each): A's pairwise differences, B's, and the paired
  differences of differences. A's true worst pair lies among the pairs whose upper end reaches the
  largest lower end (its candidates), so ``gap_B − gap_A ≥ DiD`` of that pair ≥ the smallest lower
  end over A's candidates; symmetrically the upper end is the largest upper end over B's
  candidates. On the same event each system's own maximum lies between its largest lower and
  largest upper end, so ``[L_B − U_A, U_B − L_A]`` holds too; the interval is the intersection.
  Valid and conservative; tight when each system's worst and best are clear.

p-values (t with the interval's df) are Holm-adjusted in two families per dataset: accuracy
(overall and ranked-slice ΔWER, all pairs × dimensions with two ranked slices or more) and
disparity (those slices' gap changes).
A claim needs the Holm-adjusted p below α **and** the interval excluding 0; "B is fairer" needs
the gap-change bounds at the Bonferroni level over pairs × dimensions to exclude 0. sclite-style
sign and Wilcoxon tests over speakers are reported beside them, never used for claims.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from harness.stats.by_slice import StatsOptions, finite_or_none, rankable, select, support_flags, unit_contrasts
from harness.stats.degradation import Paired as PairedRows
from harness.stats.degradation import difference_intervals, linearise, pair_conditions
from harness.stats.inference import Ratios, contrasts, hall_quantiles, t_quantile
from harness.stats.multiplicity import holm
from harness.stats.slices import SliceCodes, SliceSpec, TagCodes, slice_codes
from harness.study.results import (
    Claim,
    DimensionDifference,
    Interval,
    PairComparison,
    Paired,
    SliceDifference,
    SpeakerTests,
)

SYSTEM = "\0system"  # the pairing column: no manifest tag can be named so
METHOD = (
    "paired over utterances every system scored; leave-one-speaker-out t intervals of paired differences, "
    "skewness-corrected (Hall) with Kish df; worst−best gap and worst-slice changes: simultaneous Bonferroni "
    "bounds (α/3 per family); Holm across pairs × slices (accuracy, disparity); sign and Wilcoxon over speakers "
    "beside them"
)


@dataclass(frozen=True)
class Coded:
    """The utterances every system scored: one error row per system, in ``systems`` order."""

    rows: PairedRows
    systems: list[str]


def pair_systems(tables: Mapping[str, pd.DataFrame]) -> tuple[Coded, int]:
    """Complete cases across every system; also how many utterances some system did not score."""
    systems = list(tables)
    table = pd.concat([t.assign(**{SYSTEM: name}) for name, t in tables.items()], ignore_index=True)
    rows = pair_conditions(table, systems, column=SYSTEM)
    every = table.loc[table[SYSTEM].isin(systems), "id"].nunique()
    return Coded(rows, systems), int(every - len(rows.words) - rows.empty)


def compare_pair(
    coded: Coded, a: int, b: int, specs: Sequence[SliceSpec], options: StatsOptions
) -> PairComparison:
    """B − A (indices into ``coded.systems``), before Holm (see :func:`holm_and_claims`)."""
    p = coded.rows
    confidence = options.confidence
    delta = p.errors[b] - p.errors[a]
    zeros = np.zeros(p.words.size, dtype=np.int64)
    overall = _paired(linearise(p.cluster, zeros, 1, delta, p.words, p.n_clusters), [0], None, confidence)[0]
    coder = TagCodes(p.reference_rows)
    dims = [_dimension(spec, slice_codes(p.reference_rows, spec, coder), p, a, b, options) for spec in specs]
    return PairComparison(
        a=coded.systems[a],
        b=coded.systems[b],
        utterances=int(p.words.size),
        speakers=int(p.n_clusters),
        delta=overall,
        speaker_tests=speaker_tests(p.cluster, p.errors[a], p.errors[b], p.words),
        dimensions=dims,
    )


def _dimension(
    spec: SliceSpec, codes: SliceCodes, p: PairedRows, a: int, b: int, options: StatsOptions
) -> DimensionDifference:
    k = len(codes.labels)
    inside = codes.codes >= 0
    code = codes.codes[inside]
    words = np.bincount(code, weights=p.words[inside], minlength=k)
    errors = {s: np.bincount(code, weights=p.errors[s, inside], minlength=k) for s in (a, b)}
    wer = {s: np.where(words > 0, errors[s] / np.where(words > 0, words, 1), np.nan) for s in (a, b)}
    speakers = np.bincount(np.unique(p.cluster[inside] * k + code) % k, minlength=k)
    flags = [support_flags(int(speakers[i]), words[i], options) for i in range(k)]
    ranked = [i for i in range(k) if rankable(not flags[i], words[i] > 0, codes.values[i])]
    index = list(range(k))
    lin = {s: linearise(p.cluster, codes.codes, k, p.errors[s], p.words, p.n_clusters) for s in (a, b)}
    delta_lin = linearise(p.cluster, codes.codes, k, p.errors[b] - p.errors[a], p.words, p.n_clusters)
    deltas = _paired(delta_lin, index, None, options.confidence)
    changes = _paired(delta_lin, index, k, options.confidence)
    slices = []
    for i in range(k):
        rows = inside & (codes.codes == i)
        slices.append(
            SliceDifference(
                slice=codes.labels[i],
                ranked=i in ranked,
                speakers=int(speakers[i]),
                words=int(words[i]),
                wer_a=finite_or_none(wer[a][i]),
                wer_b=finite_or_none(wer[b][i]),
                delta=deltas[i],
                gap_change=changes[i],
                speaker_tests=speaker_tests(p.cluster[rows], p.errors[a, rows], p.errors[b, rows], p.words[rows]),
            )
        )
    dim_words = words.sum()
    overall_a, overall_b = (finite_or_none(errors[s].sum() / dim_words) if dim_words else None for s in (a, b))
    if len(ranked) < 2:
        none = Paired(None, None, note="fewer than two ranked slices")
        return DimensionDifference(
            spec.label, len(ranked), slices, overall_a, overall_b, None, None, none, None, None, none,
            note="fewer than two slices meet min_speakers/min_words; no disparity is compared",
        )
    first, second = np.triu_indices(len(ranked), 1)
    i, j = np.asarray(ranked)[first], np.asarray(ranked)[second]
    plus, minus = np.concatenate([i, j]), np.concatenate([j, i])  # ordered pairs: the gap is their max
    gap_ci = max_change(lin[a], lin[b], delta_lin, plus, minus, options.confidence)
    worst_ci = max_change(lin[a], lin[b], delta_lin, np.asarray(ranked), None, options.confidence)
    gap_a, gap_b = (float(np.ptp(wer[s][ranked])) for s in (a, b))
    worst_a, worst_b = (float(np.max(wer[s][ranked])) for s in (a, b))
    return DimensionDifference(
        name=spec.label,
        ranked=len(ranked),
        slices=slices,
        overall_a=overall_a,
        overall_b=overall_b,
        gap_a=gap_a,
        gap_b=gap_b,
        gap_change=Paired(gap_b - gap_a, gap_ci, note=None if gap_ci else "no spread between speakers"),
        worst_a=codes.labels[ranked[int(np.argmax(wer[a][ranked]))]],
        worst_b=codes.labels[ranked[int(np.argmax(wer[b][ranked]))]],
        worst_change=Paired(worst_b - worst_a, worst_ci, note=None if worst_ci else "no spread between speakers"),
    )


def _paired(r: Ratios, columns: Sequence[int], minus: int | None, confidence: float) -> list[Paired]:
    """Paired differences (columns of a ΔWER linearisation, minus ``minus``) with intervals and p."""
    cis, notes = difference_intervals(r, columns, confidence, True, minus=minus)
    coef = unit_contrasts(r.k, columns, [minus] * len(columns)) if minus is not None else select(r.k, columns)
    c = contrasts(r, coef, conservative=True)
    estimate = r.values[list(columns)] - (r.values[minus] if minus is not None else 0.0)
    out = []
    for n, ci in enumerate(cis):
        p = None
        if ci is not None and c.se[n] > 0:
            p = float(2 * scipy_stats.t.sf(abs(estimate[n]) / c.se[n], max(c.df[n], 1.0)))
        out.append(Paired(finite_or_none(estimate[n]), ci, p, note=notes[n]))
    return out


def max_change(
    ra: Ratios, rb: Ratios, rd: Ratios, plus: np.ndarray, minus: np.ndarray | None, confidence: float
) -> Interval | None:
    """Bounds on ``max_c θ_B,c − max_c θ_A,c`` over contrasts ``c`` (θ_plus − θ_minus, or θ_plus
    alone), simultaneous at ``confidence`` (module docstring). Ordered pairs count once per
    unordered pair in the Bonferroni divisor: (i, j) and (j, i) cover together."""
    alpha = 1 - confidence
    m = len(plus)
    family = m // 2 if minus is not None else m
    coef = unit_contrasts(ra.k, plus, minus) if minus is not None else select(ra.k, plus)
    level = 1 - alpha / (3 * family)
    candidates, bounds = [], []
    for r in (ra, rb):
        c = contrasts(r, coef)
        if (c.clusters < 2).any() or not np.isfinite(c.se).all():
            return None
        estimate = r.values[plus] - (r.values[minus] if minus is not None else 0.0)
        q = np.where(c.se > 0, t_quantile(1 - (1 - level) / 2, np.nan_to_num(c.df, nan=1.0)), 0.0)
        low, high = estimate - q * c.se, estimate + q * c.se
        candidates.append(high >= low.max())
        bounds.append((low.max(), high.max()))  # the system's own max lies between these
    c = contrasts(rd, coef, conservative=True)
    if (c.clusters < 2).any() or not np.isfinite(c.se).all():
        return None
    estimate = rd.values[plus] - (rd.values[minus] if minus is not None else 0.0)
    # A contrast without spread (both systems identical on those slices, speaker by speaker) is exact.
    q = np.where(c.se > 0, t_quantile(1 - (1 - level) / 2, np.nan_to_num(c.df, nan=1.0)), 0.0)
    q_low, q_high = hall_quantiles(q, c.skew) if c.skew is not None else (-q, q)
    low, high = estimate - q_high * c.se, estimate - q_low * c.se
    (low_a, high_a), (low_b, high_b) = bounds
    # Paired bounds through each system's candidates, or unpaired ones from each system's own max
    # (tighter when one system's slices are level and its worst pair could be any): both hold together.
    return [
        float(max(low[candidates[0]].min(), low_b - high_a)),
        float(min(high[candidates[1]].max(), high_b - low_a)),
    ]


def speaker_tests(cluster: np.ndarray, errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray) -> SpeakerTests:
    """Sign and Wilcoxon signed-rank tests on each speaker's own WER under A and B."""
    ids, inverse = np.unique(cluster, return_inverse=True)
    n = np.bincount(inverse, weights=words, minlength=ids.size)
    keep = n > 0
    wa = np.bincount(inverse, weights=errors_a, minlength=ids.size)[keep] / n[keep]
    wb = np.bincount(inverse, weights=errors_b, minlength=ids.size)[keep] / n[keep]
    d = wb - wa
    better_b, better_a = int((d < 0).sum()), int((d > 0).sum())
    untied = better_a + better_b
    sign = float(scipy_stats.binomtest(better_b, untied).pvalue) if untied else None
    wilcoxon = None
    if untied:
        with warnings.catch_warnings():  # small samples: scipy warns that the exact/normal choice changed
            warnings.simplefilter("ignore")
            wilcoxon = finite_or_none(scipy_stats.wilcoxon(d[d != 0]).pvalue)
    return SpeakerTests(int(keep.sum()), better_b, better_a, int(keep.sum()) - untied, sign, wilcoxon)


def gap_change_at(
    coded: Coded, a: int, b: int, spec: SliceSpec, options: StatsOptions, level: float
) -> Interval | None:
    """The gap-change bounds of one dimension at another confidence (the Bonferroni level of claims)."""
    p = coded.rows
    codes = slice_codes(p.reference_rows, spec, TagCodes(p.reference_rows))
    dim = _dimension(spec, codes, p, a, b, replace(options, confidence=level))
    return dim.gap_change.ci


def holm_and_claims(
    dataset: str, pairs: list[PairComparison], specs: Sequence[SliceSpec], coded: Coded, options: StatsOptions
) -> tuple[list[PairComparison], list[Claim]]:
    """Holm across pairs × slices (accuracy, disparity), the marks, and the claims they support."""
    alpha = 1 - options.confidence
    accuracy: list[tuple[int, int | None, int | None]] = []  # (pair, dimension, slice); None: overall
    disparity: list[tuple[int, int, int]] = []
    for n, pair in enumerate(pairs):
        accuracy.append((n, None, None))
        for d, dim in enumerate(pair.dimensions):
            if dim.ranked < 2:  # one slice is the whole dimension: its ΔWER is the overall's, tested once
                continue
            for s, sl in enumerate(dim.slices):
                if sl.ranked:
                    accuracy.append((n, d, s))
                    disparity.append((n, d, s))
    out = [replace(p, dimensions=[replace(d, slices=list(d.slices)) for d in p.dimensions]) for p in pairs]
    _adjust(out, accuracy, "delta", alpha)
    _adjust(out, disparity, "gap_change", alpha)
    # "Fairer": the gap change's bounds at the Bonferroni level over pairs × dimensions with a gap.
    tested = [(n, d) for n, p in enumerate(out) for d, dim in enumerate(p.dimensions) if dim.gap_change.ci]
    level = 1 - alpha / max(len(tested), 1)
    index = {name: i for i, name in enumerate(coded.systems)}
    for n, d in tested:
        pair = out[n]
        bounds = gap_change_at(coded, index[pair.a], index[pair.b], specs[d], options, level)
        if bounds is None or bounds[0] is None or bounds[1] is None or bounds[0] <= 0 <= bounds[1]:
            continue
        fairer = pair.b if bounds[1] < 0 else pair.a
        pair.dimensions[d] = replace(pair.dimensions[d], fairer=fairer)
    return out, [claim for pair in out for claim in _claims(dataset, pair)]


def _adjust(pairs: list[PairComparison], places: Sequence[tuple], field: str, alpha: float) -> None:
    def get(n: int, d: int | None, s: int | None) -> Paired:
        if d is None:
            return getattr(pairs[n], field)
        return getattr(pairs[n].dimensions[d].slices[s], field)

    tested = [place for place in places if get(*place).p is not None]
    adjusted = holm([get(*place).p for place in tested]) if tested else []
    for (n, d, s), p_holm in zip(tested, adjusted, strict=True):
        value = get(n, d, s)
        ci = value.ci
        excludes = ci is not None and ci[0] is not None and ci[1] is not None and (ci[0] > 0 or ci[1] < 0)
        new = replace(value, p_holm=float(p_holm), significant=bool(p_holm < alpha and excludes))
        if d is None:
            pairs[n] = replace(pairs[n], **{field: new})
        else:
            dim = pairs[n].dimensions[d]
            dim.slices[s] = replace(dim.slices[s], **{field: new})


def _pp(x: float | None) -> str:
    return "–" if x is None else f"{abs(100 * x):.1f} pp"


def _ci(ci: Interval | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _claims(dataset: str, pair: PairComparison) -> list[Claim]:
    a, b = pair.a, pair.b
    out = []
    if pair.delta.significant and pair.delta.estimate is not None:
        better, worse = (b, a) if pair.delta.estimate < 0 else (a, b)
        out.append(Claim(dataset, "accuracy", f"{better} has lower WER than {worse} overall: "
                         f"{_pp(pair.delta.estimate)} ({b} − {a}{_ci(pair.delta.ci)} pp)", a, b))
    for dim in pair.dimensions:
        for sl in dim.slices:
            if sl.delta.significant and sl.delta.estimate is not None:
                better, worse = (b, a) if sl.delta.estimate < 0 else (a, b)
                out.append(Claim(dataset, "slice-accuracy", f"{better} has lower WER than {worse} for "
                                 f"{dim.name}={sl.slice}: {_pp(sl.delta.estimate)} ({b} − {a}{_ci(sl.delta.ci)} pp)",
                                 a, b, dim.name, sl.slice))
            claim = _gap_claim(dataset, pair, dim, sl) if sl.gap_change.significant else None
            if claim is not None:
                out.append(claim)
        if dim.fairer is not None and dim.gap_a is not None and dim.gap_b is not None:
            out.append(Claim(dataset, "fairer", f"{dim.fairer} is fairer on {dim.name}: worst−best gap "
                             f"{100 * dim.gap_a:.1f} pp ({a}) vs {100 * dim.gap_b:.1f} pp ({b}), change"
                             f"{_ci(dim.gap_change.ci)} pp", a, b, dim.name))
    return out


def _gap_claim(dataset: str, pair: PairComparison, dim: DimensionDifference, sl: SliceDifference) -> Claim | None:
    """"B narrows the scottish gap by 6.0 pp [−10.0, −2.0]": the slice's distance to its dimension's
    pooled WER, under each system (both printed). Claimed only for a slice worse than the overall
    under A: a slice better than its overall moves whenever the overall does (another slice's gap)."""
    change = sl.gap_change.estimate or 0.0
    before = None if sl.wer_a is None or dim.overall_a is None else sl.wer_a - dim.overall_a
    after = None if sl.wer_b is None or dim.overall_b is None else sl.wer_b - dim.overall_b
    where = f"{dim.name}={sl.slice}"
    if before is None or after is None or before <= 0:
        return None  # the slice had no gap under A: the table shows the change, no sentence claims it
    kind, verb = ("gap-narrowed", "narrows") if change < 0 else ("gap-widened", "widens")
    text = (f"{pair.b} {verb} the {where} gap to the {dim.name} overall by {_pp(change)}"
            f"{_ci(sl.gap_change.ci)} against {pair.a} ({100 * before:+.1f} → {100 * after:+.1f} pp)")
    return Claim(dataset, kind, text, pair.a, pair.b, dim.name, sl.slice)


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} pp"
