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
  maxima, so their intervals are simultaneous bounds. With ``x_il = θ_B,i − θ_A,l`` over ranked
  slices, ``max_i θ_B,i − max_l θ_A,l = min_l max_i x_il`` and ``min_j θ_B,j − min_l θ_A,l =
  max_l min_j x_jl`` exactly, both monotone in every ``x``; so bounds that hold for all ``x_il`` at
  once bound the worst-slice change and, their difference, the gap change (up to 7 slices the gap
  uses the same identity over ordered pairs, ``(θ_B,i − θ_B,j) − (θ_A,k − θ_A,l)``, which counts
  each slice's uncertainty once). The bounds are max-T: the critical value is the 1 − α quantile of ``max |T|`` over the
  contrasts under the speakers' joint covariance (the same speaker under A and B), drawn with
  Gaussian multipliers on the speakers, and used as each contrast's level with its Kish df and
  skewness correction. (A Bonferroni split over A's pairs, B's and the differences of differences
  was valid but never found a 10 → 3 point narrowing: docs/study.md, *Calibration*.) These
  bounds are valid but wide whenever a system's worst slice is uncertain (B's slices level);
* the change of the gap **between A's worst and best slices** (by A's estimates), ``(θ_B,w − θ_B,b)
  − (θ_A,w − θ_A,b)``: a paired difference of differences, its bounds max-T over every pair of
  ranked slices so that they hold whichever pair the data picked. It says B narrows the gap A
  had; it does not say B's own worst − best gap is smaller (that is "fairer").

p-values (t with the interval's df) are Holm-adjusted in two families per dataset: accuracy
(overall and ranked-slice ΔWER, all pairs × dimensions with two ranked slices or more) and
disparity (those slices' gap changes).
A claim needs the Holm-adjusted p below α **and** the interval excluding 0; "B is fairer" needs
the worst − best gap-change bounds, and "B narrows the gap between A's worst and best slices" the
pair change's, at the Bonferroni level over pairs × dimensions to exclude 0. sclite-style sign and
Wilcoxon tests over speakers are reported beside them, never used for claims.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse
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
    "skewness-corrected (Hall) with Kish df; worst−best gap and worst-slice changes: simultaneous max-T bounds "
    "over every B slice − A slice contrast (Gaussian multipliers on speakers); Holm across pairs × slices "
    "(accuracy, disparity); sign and Wilcoxon over speakers beside them"
)
MAX_PAIRS = 42  # ordered pairs (7 slices) up to which the gap's bounds use pairs of pairs
MAX_T_DRAWS = 4000  # Gaussian multiplier draws for the max-|T| quantile (Monte-Carlo error ≈ 0.003 at 0.95)


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
    gap_ci, worst_ci = extreme_changes(lin[a], lin[b], ranked, options.confidence, options.seed)
    chosen = pair_change(lin[a], lin[b], ranked, options.confidence, options.seed)
    between = Paired(None, None, note="A's ranked slices are level")
    best_a = None
    if chosen is not None:
        w, bst, ci = chosen
        best_a = codes.labels[bst]
        change = (wer[b][w] - wer[b][bst]) - (wer[a][w] - wer[a][bst])
        between = Paired(finite_or_none(change), ci, note=None if ci else "no spread between speakers")
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
        best_a=best_a,
        pair_change=between,
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


def extreme_changes(
    ra: Ratios, rb: Ratios, ranked: Sequence[int], confidence: float, seed: int = 0
) -> tuple[Interval | None, Interval | None]:
    """Bounds on the change of the worst − best gap and of the worst slice over the ``ranked``
    columns, each simultaneous at ``confidence`` (module docstring)."""
    ranked = np.asarray(ranked)
    r = ranked.size
    joint = _joint(ra, rb)
    eye = np.eye(ra.k + 1)[:, ranked]
    slices = _max_t_bounds(joint, eye, eye, confidence, seed)  # [i, l]: θ_B,i − θ_A,l
    if slices is None:
        return None, None
    low, high = slices
    # max_i B_i − max_l A_l = min_l max_i (B_i − A_l); min_j B_j − min_l A_l = max_l min_j (B_j − A_l)
    worst = (float(low.max(axis=0).min()), float(high.max(axis=0).min()))
    best = (float(low.min(axis=0).max()), float(high.min(axis=0).max()))
    gap = [worst[0] - best[1], worst[1] - best[0]]
    if r * (r - 1) <= MAX_PAIRS:
        # Tighter: the gap is the max over ordered pairs, and (B_i − B_j) − (A_k − A_l) counts
        # each slice's uncertainty once (the difference of the bounds above counts B's twice).
        first, second = (a.ravel() for a in np.nonzero(~np.eye(r, dtype=bool)))
        pairs = eye[:, first] - eye[:, second]
        bounds = _max_t_bounds(joint, pairs, pairs, confidence, seed)
        if bounds is not None:
            gap = [float(bounds[0].max(axis=0).min()), float(bounds[1].max(axis=0).min())]
    return gap, [worst[0], worst[1]]


def pair_change(
    ra: Ratios, rb: Ratios, ranked: Sequence[int], confidence: float, seed: int = 0
) -> tuple[int, int, Interval | None] | None:
    """A's worst and best ranked columns (by A's estimates) and bounds on the change of the gap
    between them, ``(θ_B,w − θ_B,b) − (θ_A,w − θ_A,b)``: max-T over every pair's paired difference of
    differences, so the bounds hold whichever pair the data picked. None when A's slices are level."""
    ranked = np.asarray(ranked)
    worst, best = int(ranked[np.argmax(ra.values[ranked])]), int(ranked[np.argmin(ra.values[ranked])])
    if worst == best:
        return None
    first, second = np.triu_indices(ranked.size, 1)
    eye = np.eye(ra.k + 1)
    pairs = eye[:, ranked[first]] - eye[:, ranked[second]]
    # Kish df on squared influences: with the milder count study-equal at 60 speakers a slice covered
    # 0.927 (a heavy-tailed slice); with this one 0.967, and a 10 → 3 point narrowing is still found.
    bounds = simultaneous(_joint(ra, rb), np.vstack([-pairs, pairs]), confidence, seed, conservative=True)
    if bounds is None:
        return worst, best, None
    at = int(np.flatnonzero(((ranked[first] == worst) & (ranked[second] == best))
                            | ((ranked[first] == best) & (ranked[second] == worst)))[0])
    sign = 1.0 if ranked[first[at]] == worst else -1.0
    ends = sorted((sign * float(bounds[0][at]), sign * float(bounds[1][at])))
    return worst, best, [ends[0], ends[1]]


def _joint(ra: Ratios, rb: Ratios) -> Ratios:
    """A's and B's linearisations as one (θ_A then θ_B): the same speakers and strata, so a contrast
    across systems has each speaker's paired influence."""
    return Ratios(
        np.concatenate([ra.values, rb.values]),
        sparse.hstack([ra.influence, rb.influence]).tocsr(),
        sparse.hstack([ra.pattern, rb.pattern]).tocsr(),
        ra.strata,
        ra.stratum,
    )


def _max_t_bounds(
    joint: Ratios, of_b: np.ndarray, of_a: np.ndarray, confidence: float, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower and upper ends, ``(columns of of_b) × (columns of of_a)``, of the contrasts
    ``θ_B·of_b[:, i] − θ_A·of_a[:, l]`` on ``joint`` (θ_A then θ_B), simultaneous at ``confidence``."""
    n_b, n_a = of_b.shape[1], of_a.shape[1]
    bounds = simultaneous(joint, np.vstack([-np.tile(of_a, n_b), np.repeat(of_b, n_a, axis=1)]), confidence, seed)
    return None if bounds is None else (bounds[0].reshape(n_b, n_a), bounds[1].reshape(n_b, n_a))


def simultaneous(
    r: Ratios, coef: np.ndarray, confidence: float, seed: int, conservative: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """Max-T bounds on the contrasts ``coef`` (columns) of ``r``, simultaneous at ``confidence``:
    each contrast's skewness-corrected t interval (Kish df) at the level :func:`_max_t_level` gives."""
    coef = sparse.csc_matrix(coef)
    c = contrasts(r, coef, conservative=conservative)
    if (c.clusters < 2).any() or not np.isfinite(c.se).all():
        return None
    estimate = coef.T @ r.values
    q = np.zeros(estimate.size)
    spread = c.se > 0  # a contrast without spread (identical systems on a slice) is exact
    if spread.any():
        level = _max_t_level(r, coef[:, np.flatnonzero(spread)], confidence, seed)
        q[spread] = t_quantile(1 - (1 - level) / 2, c.df[spread])
    q_low, q_high = hall_quantiles(q, c.skew) if c.skew is not None else (-q, q)
    return estimate - q_high * c.se, estimate - q_low * c.se


def _max_t_level(r: Ratios, coef: sparse.spmatrix, confidence: float, seed: int) -> float:
    """The per-contrast confidence at which ``max_c |T_c| ≤ q`` holds with ``confidence`` when the
    contrasts are jointly normal with the covariance of the speakers' centred influences (stratified
    as in :func:`harness.stats.inference.contrasts`): Gaussian multipliers on the speakers."""
    present = r.stratum >= 0
    d = np.asarray((r.influence[present] @ coef).todense())
    stratum = r.stratum[present]
    n = np.bincount(stratum).astype(np.float64)
    means = np.zeros((n.size, d.shape[1]))
    np.add.at(means, stratum, d)
    means /= np.maximum(n, 1)[:, None]
    factor = np.sqrt(np.where(n > 1, (n - 1) / np.maximum(n, 1), 1.0))[stratum]
    centred = (d - means[stratum]) * factor[:, None]  # speakers × contrasts
    sd = np.sqrt((centred**2).sum(axis=0))
    if not (sd > 0).any():
        return confidence
    standard = centred[:, sd > 0] / sd[sd > 0]
    draws = np.random.default_rng(seed).standard_normal((MAX_T_DRAWS, standard.shape[0]))
    top = np.zeros(MAX_T_DRAWS)
    for start in range(0, standard.shape[1], 2048):  # bounded memory at many slices
        top = np.maximum(top, np.abs(draws @ standard[:, start : start + 2048]).max(axis=1))
    z = float(np.quantile(top, confidence))
    return float(1 - 2 * scipy_stats.norm.sf(z))


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


def changes_at(
    coded: Coded, a: int, b: int, spec: SliceSpec, ranked: Sequence[int], options: StatsOptions, level: float
) -> tuple[Interval | None, Interval | None]:
    """The worst − best gap change and A's worst-vs-best pair change of one dimension at another
    confidence (the Bonferroni level of claims)."""
    p = coded.rows
    codes = slice_codes(p.reference_rows, spec, TagCodes(p.reference_rows))
    k = len(codes.labels)
    ra, rb = (linearise(p.cluster, codes.codes, k, p.errors[s], p.words, p.n_clusters) for s in (a, b))
    chosen = pair_change(ra, rb, ranked, level, options.seed)
    return extreme_changes(ra, rb, ranked, level, options.seed)[0], None if chosen is None else chosen[2]


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
        ranked = [s for s, sl in enumerate(pair.dimensions[d].slices) if sl.ranked]
        bounds, between = changes_at(coded, index[pair.a], index[pair.b], specs[d], ranked, options, level)
        dim = pair.dimensions[d]
        if _excludes_zero(between):
            dim = replace(dim, pair_change=replace(dim.pair_change, significant=True))
        if _excludes_zero(bounds):
            dim = replace(dim, fairer=pair.b if bounds[1] < 0 else pair.a)  # type: ignore[index]
        pair.dimensions[d] = dim
    return out, [claim for pair in out for claim in _claims(dataset, pair)]


def _excludes_zero(ci: Interval | None) -> bool:
    return ci is not None and ci[0] is not None and ci[1] is not None and (ci[0] > 0 or ci[1] < 0)


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
        claim = _pair_claim(dataset, pair, dim) if dim.pair_change.significant else None
        if claim is not None:
            out.append(claim)
        if dim.fairer is not None and dim.gap_a is not None and dim.gap_b is not None:
            out.append(Claim(dataset, "fairer", f"{dim.fairer} is fairer on {dim.name}: worst−best gap "
                             f"{100 * dim.gap_a:.1f} pp ({a}) vs {100 * dim.gap_b:.1f} pp ({b}), change"
                             f"{_ci(dim.gap_change.ci)} pp", a, b, dim.name))
    return out


def _pair_claim(dataset: str, pair: PairComparison, dim: DimensionDifference) -> Claim | None:
    """"B narrows the accent gap between A's worst and best slices (scottish − american) by 6.0 pp":
    a statement about those two slices, not that B's own worst − best gap is smaller ("fairer")."""
    change, worst, best = dim.pair_change.estimate, dim.worst_a, dim.best_a
    s = {sl.slice: sl for sl in dim.slices}
    if change is None or worst is None or best is None or None in (s[worst].wer_b, s[best].wer_b):
        return None
    before, after = s[worst].wer_a - s[best].wer_a, s[worst].wer_b - s[best].wer_b  # type: ignore[operator]
    kind, verb = ("pair-narrowed", "narrows") if change < 0 else ("pair-widened", "widens")
    text = (f"{pair.b} {verb} the {dim.name} gap between {pair.a}'s worst and best slices ({worst} − {best}) "
            f"by {_pp(change)}{_ci(dim.pair_change.ci)} pp: {100 * before:.1f} → {100 * after:.1f} pp")
    return Claim(dataset, kind, text, pair.a, pair.b, dim.name)


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
