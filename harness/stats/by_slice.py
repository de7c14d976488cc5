"""WER per slice and disparity per dimension, pooled from per-utterance counts.

The headline WER of any set of utterances is *pooled*: Σ(S+D+I) / Σ reference words, so every
regrouping is exact and equals ``jiwer.wer`` over the same pairs. Two other aggregates are
reported beside it, never instead of it: the speaker mean (each speaker's pooled WER, averaged;
every person counts once) and the utterance mean (mean of per-utterance WER over utterances
with at least one reference word; short clips weigh as much as long ones).

Failed utterances are excluded from the counts and reported per slice as ``failed``. Slices
below ``min_speakers`` or ``min_words`` are reported but flagged, and never ranked as best or
worst. An utterance without a speaker id counts as its own speaker (and is flagged).
A ``(missing)`` slice (utterances without the tag) is reported but not ranked either.

Uncertainty (see :mod:`harness.stats.inference`, docs/statistics.md): every WER, every disparity
figure and every comparison with a reference group carries a t interval with the speaker as the
unit (leave-one-speaker-out variance, Welch–Satterthwaite df), or none with the reason; the
disparity's are simultaneous over all pairs of ranked slices. Each dimension gets a Welch /
cluster-robust Wald F test on log WER, Holm-corrected across dimensions. A slice is marked significantly worse than its
dimension's overall WER only when (a) it is ranked, (b) its dimension's Holm-adjusted p-value is
below ``1 - confidence`` and (c) the interval of its difference from that overall excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scipy import stats as scipy_stats

from harness.scoring.table import COUNT_COLUMNS
from harness.stats.arrays import ratio_or_nan, unique_inverse
from harness.stats.inference import (
    NULL_FLOOR_BELOW,
    Contrasts,
    Ratios,
    contrasts,
    hall_quantiles,
    own_strata,
    ratios,
    t_quantile,
    wald_test,
    wilson,
)
from harness.stats.multiplicity import holm
from harness.stats.options import StatsOptions
from harness.stats.records import (
    Aggregates,
    Dimension,
    Disparity,
    Interval,
    Sensitivity,
    SliceComparison,
    SliceStats,
    SpeakerSpread,
    Summary,
    Test,
)
from harness.stats.slices import UNRANKED, SliceCodes, SliceSpec, TagCodes, slice_codes

AGGREGATES = ("pooled", "speaker-mean", "utterance-mean")
BADLY_SERVED = "badly-served"  # share of speakers whose own WER exceeds the threshold



@dataclass(frozen=True)
class _SliceRows:
    """The utterance table as arrays (one element per row), built once per summarise."""

    ok: np.ndarray  # scored, with at least one reference word
    empty: np.ndarray  # scored, but no reference word after normalisation
    cluster: np.ndarray  # speaker code among scored rows; -1 for failed rows
    n_clusters: int
    no_speaker: np.ndarray
    counts: dict[str, np.ndarray]
    wer: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame) -> _SliceRows:
        counts = {c: table[c].to_numpy(dtype=np.float64, na_value=0.0) for c in COUNT_COLUMNS}
        status_ok = (table["status"] == "ok").to_numpy()
        # An utterance with no reference word after normalisation (a filler-only clip) has no WER:
        # it is left out of every aggregate, numerator and denominator, and counted instead.
        empty = status_ok & (counts["ref_words"] <= 0)
        ok = status_ok & ~empty
        units = cluster_units(table)
        cluster = np.full(len(table), -1, dtype=np.int64)
        codes, uniques = pd.factorize(units[ok])
        cluster[ok] = codes
        wer = table["wer"].to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(ok, empty, cluster, len(uniques), table["speaker"].isna().to_numpy(), counts, wer)


@dataclass(frozen=True)
class _Pairs:
    """Sums per (speaker, slice) pair among scored rows: the sparse E and N of every aggregate."""

    cluster: np.ndarray
    slice: np.ndarray
    errors: np.ndarray
    words: np.ndarray
    wer_sum: np.ndarray  # Σ per-utterance WER over the pair's utterances with N > 0
    wer_count: np.ndarray  # how many such utterances
    k: int  # slices

    @classmethod
    def of(cls, rows: _SliceRows, codes: np.ndarray, k: int) -> _Pairs:
        scored = (codes >= 0) & rows.ok
        has_words = rows.counts["ref_words"][scored] > 0
        pair_ids, inverse = unique_inverse(rows.cluster[scored] * k + codes[scored])
        return cls(
            pair_ids // k,
            pair_ids % k,
            np.bincount(inverse, weights=rows.counts["errors"][scored]),
            np.bincount(inverse, weights=rows.counts["ref_words"][scored]),
            np.bincount(inverse, weights=np.where(has_words, np.nan_to_num(rows.wer[scored]), 0.0)),
            np.bincount(inverse, weights=has_words.astype(np.float64)),
            k,
        )

    def per_slice(self, aggregate: str, threshold: float, k: int) -> np.ndarray:
        """Each of ``k`` slices' value under ``aggregate``: Σ numerator / Σ denominator (NaN: none)."""
        keep, numerator, denominator = self.ratio_terms(aggregate, threshold)
        return ratio_or_nan(
            np.bincount(self.slice[keep], weights=numerator[keep], minlength=k),
            np.bincount(self.slice[keep], weights=denominator[keep], minlength=k),
        )

    def ratio_terms(self, aggregate: str, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keep, numerator, denominator) per pair: each aggregate is Σ numerator / Σ denominator."""
        spoke = self.words > 0
        own_wer = np.divide(self.errors, self.words, out=np.zeros(self.errors.shape), where=spoke)
        if aggregate == "pooled":
            return np.ones(self.cluster.size, bool), self.errors, self.words
        if aggregate == "speaker-mean":
            return spoke, own_wer, np.ones_like(own_wer)
        if aggregate == "utterance-mean":
            return self.wer_count > 0, self.wer_sum, self.wer_count
        if aggregate == BADLY_SERVED:
            return spoke, (own_wer > threshold).astype(np.float64), np.ones_like(own_wer)
        raise ValueError(f"unknown aggregate {aggregate!r}")


def summarise(table: pd.DataFrame, specs: Sequence[SliceSpec], options: StatsOptions) -> Summary:
    """The headline block (``options.aggregate``); :func:`summarise_aggregates` gives all three."""
    return summarise_aggregates(table, specs, options).headline


def summarise_aggregates(table: pd.DataFrame, specs: Sequence[SliceSpec], options: StatsOptions) -> Aggregates:
    rows = _SliceRows.of(table)
    coder = TagCodes(table)
    everyone = SliceCodes(np.zeros(len(table), dtype=np.int64), ["overall"], [{}])
    coded = [everyone, *(slice_codes(table, spec, coder) for spec in specs)]
    slice_pairs = [_Pairs.of(rows, c.codes, len(c.labels)) for c in coded]
    # Each dimension's own overall, per speaker over everything the dimension keeps.
    dim_pairs = [_Pairs.of(rows, np.where(c.codes >= 0, 0, -1), 1) for c in coded]
    base = [_point_estimates(rows, c, p, options) for c, p in zip(coded, slice_pairs, strict=True)]
    overall_pooled = base[0][0].wer
    threshold = options.speaker_wer_threshold
    if threshold is None:
        threshold = 2 * overall_pooled if overall_pooled is not None else 0.0

    spreads = [
        _speaker_spreads(slice_pairs[g], len(coded[g].labels), threshold, options.confidence)
        for g in range(len(coded))
    ]
    with_intervals = options.bootstrap > 0

    blocks = {}
    for aggregate in AGGREGATES:
        lin = [
            _linearise(slice_pairs[g], dim_pairs[g], aggregate, threshold, rows.n_clusters) for g in range(len(coded))
        ]
        overall_ci, overall_note = rate_intervals(lin[0], [0], options.confidence, with_intervals)
        overall = replace(
            base[0][0],
            wer=finite_or_none(lin[0].values[0]),
            wer_ci=overall_ci[0],
            interval_note=overall_note[0],
            speakers_wer=spreads[0][0],
        )
        dimensions = []
        for g, spec in enumerate(specs, start=1):
            k = len(coded[g].labels)
            values = lin[g].values
            slices = [
                replace(s, wer=finite_or_none(v), speakers_wer=spread)
                for s, v, spread in zip(base[g], values[:k], spreads[g], strict=True)
            ]
            mover = aggregate in FIXED_WEIGHT_AGGREGATES and _small_between(lin[g])
            slices = _with_intervals(
                slices, lin[g], spec.reference, options.confidence, with_intervals, options.power, mover=mover
            )
            ranked = [i for i, s in enumerate(slices) if _rankable(s)]
            dim_ci, _ = rate_intervals(lin[g], [k], options.confidence, with_intervals)
            dimensions.append(
                Dimension(
                    spec.label,
                    list(spec.by),
                    slices,
                    finite_or_none(values[k]),
                    dim_ci[0],
                    _disparity(slices, ranked, lin[g], spec.reference, options.confidence, with_intervals, mover=mover),
                    _test(slice_pairs[g], ranked, aggregate, threshold, options),
                )
            )
        method = Summary.method + (MOVER_METHOD if aggregate in FIXED_WEIGHT_AGGREGATES else "")
        blocks[aggregate] = Summary(
            overall, _holm_and_marks(dimensions, options), options, method=method, aggregate=aggregate
        )
    excluded = int(rows.empty.sum())
    return Aggregates(options.aggregate, blocks, _sensitivity(blocks), threshold, excluded)


def _linearise(pairs: _Pairs, dim_pairs: _Pairs, aggregate: str, threshold: float, n_clusters: int) -> Ratios:
    """The slices' and the dimension overall's ratios under ``aggregate``, linearised per speaker."""
    keep, num, den = pairs.ratio_terms(aggregate, threshold)
    dim_keep, dim_num, dim_den = dim_pairs.ratio_terms(aggregate, threshold)
    k = int(pairs.k)
    return ratios(
        np.concatenate([pairs.cluster[keep], dim_pairs.cluster[dim_keep]]),
        np.concatenate([pairs.slice[keep], np.full(int(dim_keep.sum()), k)]),
        np.concatenate([num[keep], dim_num[dim_keep]]),
        np.concatenate([den[keep], dim_den[dim_keep]]),
        n_clusters,
        k,
    )


def cluster_units(table: pd.DataFrame) -> pd.Series:
    """Speaker per utterance; an utterance without a speaker id is its own unit."""
    return table["speaker"].astype("object").fillna("utt:" + table["id"].astype(str))


def _rankable(s: SliceStats) -> bool:
    return rankable(s.supported, s.wer is not None, s.values)


def rate_intervals(
    r: Ratios, columns: Sequence[int], confidence: float, enabled: bool = True
) -> tuple[list[Interval | None], list[str | None]]:
    """Log-scale t intervals of the ratios in ``columns``, with the reason where there is none."""
    c = contrasts(r, select(r.k, columns))
    values = r.values[list(columns)]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_se = c.se / values
    return t_intervals(np.log(np.where(values > 0, values, np.nan)), log_se, c, confidence, enabled, log=True)


def t_intervals(
    estimate: np.ndarray,
    se: np.ndarray,
    c: Contrasts,
    confidence: float,
    enabled: bool = True,
    *,
    log: bool = False,
    level: float | None = None,
    skew: bool = False,
) -> tuple[list[Interval | None], list[str | None]]:
    """``estimate ± t_{df}·se`` (exponentiated with ``log``); with ``skew`` the t quantiles are
    corrected for the estimate's skewness (:func:`harness.stats.inference.hall_quantiles`). None with a
    reason where degenerate: one speaker, no errors (a log-scale rate of 0), or no spread between speakers."""
    level = confidence if level is None else level
    q = t_quantile(1 - (1 - level) / 2, c.df)
    q_low, q_high = hall_quantiles(q, c.skew) if skew and c.skew is not None else (-q, q)
    out: list[Interval | None] = []
    notes: list[str | None] = []
    for i in range(len(estimate)):
        note = None
        if not enabled:
            pass
        elif c.clusters[i] < 2:
            note = "one speaker"
        elif log and not np.isfinite(estimate[i]):
            note = "no errors"
        elif not np.isfinite(estimate[i]):
            pass
        elif not se[i] > 0 or not np.isfinite(c.df[i]):
            note = "no spread between speakers"
        if note is not None or not enabled or not np.isfinite(estimate[i]):
            out.append(None)
            notes.append(note)
            continue
        low, high = estimate[i] - q_high[i] * se[i], estimate[i] - q_low[i] * se[i]
        out.append([float(np.exp(low)), float(np.exp(high))] if log else [float(low), float(high)])
        notes.append(None)
    return out, notes


def select(k: int, columns: Sequence[int]) -> sparse.csc_matrix:
    """Contrast columns picking each of ``columns`` alone."""
    m = len(columns)
    return sparse.csc_matrix((np.ones(m), (np.asarray(columns, dtype=np.int64), np.arange(m))), shape=(k + 1, m))


def unit_contrasts(
    k: int, plus: Sequence[int], minus: Sequence[int], scale: np.ndarray | None = None
) -> sparse.csc_matrix:
    """Contrast columns ``e_plus[j] − e_minus[j]`` (each term divided by ``scale`` at its index)."""
    m = len(plus)
    rows = np.concatenate([np.asarray(plus, dtype=np.int64), np.asarray(minus, dtype=np.int64)])
    data = np.concatenate([np.ones(m), -np.ones(m)])
    if scale is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            data = data / np.where(scale[rows] > 0, scale[rows], np.nan)
        data = np.nan_to_num(data)
    return sparse.csc_matrix((data, (rows, np.tile(np.arange(m), 2))), shape=(k + 1, m))


def _with_intervals(
    slices: list[SliceStats],
    r: Ratios,
    reference: str | None,
    confidence: float,
    enabled: bool,
    power: float,
    *,
    mover: bool = False,
) -> list[SliceStats]:
    """Each slice's interval, its difference from the dimension's overall and from the reference.
    With ``mover`` (a fixed-weight aggregate in a dimension with a small between-speaker slice) the
    between-speaker differences are :func:`mover_bounds` of the slices' own log-scale limits."""
    k = r.k
    index = list(range(k))
    wer_cis, wer_notes = rate_intervals(r, index, confidence, enabled)
    diff = r.values[:k] - r.values[k]
    small = _small_between(r)
    vs = contrasts(r, unit_contrasts(k, index, [k] * k))
    if small:
        vs = _null_floor(vs, _vs_overall_null(r))
    vs_test = contrasts(r, unit_contrasts(k, index, [k] * k), conservative=True)
    diff_cis, diff_notes = t_intervals(diff, vs.se, vs, confidence, enabled)
    if mover and enabled:
        diff_cis = _mover_vs_overall(r, index, confidence, diff_cis)
    ref_index = next((i for i, s in enumerate(slices) if s.label == reference), None)
    if ref_index is not None:
        ref_diff = r.values[:k] - r.values[ref_index]
        vr = _vs_reference(r, ref_index) if small else contrasts(r, unit_contrasts(k, index, [ref_index] * k))
        vr_test = contrasts(r, unit_contrasts(k, index, [ref_index] * k), conservative=True)
        ref_cis, ref_notes = t_intervals(ref_diff, vr.se, vr, confidence, enabled)
        if mover and enabled:
            ref_cis = _mover_vs_reference(r, ref_index, _as_limits(wer_cis), ref_cis)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(r.values[:k] / r.values[ref_index])
        vl = contrasts(r, unit_contrasts(k, index, [ref_index] * k, scale=r.values))
        ratio_cis, _ = t_intervals(log_ratio, vl.se, vl, confidence, enabled, log=True)
    out = []
    for i, s in enumerate(slices):
        vs_overall = SliceComparison(
            finite_or_none(diff[i]),
            diff_cis[i] or [None, None],
            se=finite_or_none(vs.se[i]) if vs.clusters[i] >= 2 else None,
            df=finite_or_none(vs.df[i]),
            note=diff_notes[i],
            detect_df=finite_or_none(vs_test.df[i]),
        )
        vs_reference = None
        if ref_index is not None:
            ref = slices[ref_index]
            vs_reference = SliceComparison(
                difference(s.wer, ref.wer),
                ref_cis[i] or [None, None],
                s.wer / ref.wer if s.wer is not None and ref.wer else None,
                ratio_cis[i],
                se=finite_or_none(vr.se[i]) if vr.clusters[i] >= 2 else None,
                df=finite_or_none(vr.df[i]),
                detect_df=finite_or_none(vr_test.df[i]),
                note=ref_notes[i] if i != ref_index else "the reference itself",
            )
        out.append(
            replace(
                s, wer_ci=wer_cis[i], interval_note=wer_notes[i], vs_overall=vs_overall, vs_reference=vs_reference
            )
        )
    if ref_index is not None:
        gaps = detectable_gaps(
            [s.vs_reference for s in out], confidence, 1, power, [s.wer for s in out]  # type: ignore[misc]
        )
        stated = [_stated_gap(g, s.speakers) for s, g in zip(out, gaps, strict=True)]
        out = [
            replace(s, vs_reference=replace(s.vs_reference, min_detectable=g, detect_note=why))  # type: ignore[arg-type]
            for s, (g, why) in zip(out, stated, strict=True)
        ]
    return out


# Aggregates whose speakers each weigh the same (1): centring a slice's influences on another rate
# shifts them all alike, so the null-centred variance (:func:`_null_floor`) equals the Wald one and
# cannot widen a small heavy-tailed slice's differences; these take :func:`mover_bounds` there.
FIXED_WEIGHT_AGGREGATES = frozenset({"speaker-mean"})
MOVER_METHOD = (
    "; in a dimension with a between-speaker slice of 2–9 speakers, differences between slices and against "
    "the overall by MOVER from each side's log-scale t limits"
)


def log_limits(r: Ratios, columns: Sequence[int], level: float) -> tuple[np.ndarray, np.ndarray]:
    """Each column's log-scale t limits at ``level`` (as :func:`rate_intervals`); NaN where it has none
    (one speaker, no errors, no spread)."""
    c = contrasts(r, select(r.k, columns))
    return _log_scale(r.values[list(columns)], c, level)


def _log_scale(values: np.ndarray, c: Contrasts, level: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`t_intervals` on the log scale at ``level``, as arrays."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cis, _ = t_intervals(np.log(np.where(values > 0, values, np.nan)), c.se / values, c, level, log=True)
    return _as_limits(cis)


def _as_limits(cis: Sequence[Interval | None]) -> tuple[np.ndarray, np.ndarray]:
    """Intervals as (low, high) arrays, NaN where there is none."""
    low = np.array([ci[0] if ci else np.nan for ci in cis], dtype=float)
    high = np.array([ci[1] if ci else np.nan for ci in cis], dtype=float)
    return low, high


def mover_bounds(
    first: tuple[np.ndarray, np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Limits for ``μ₁ − μ₂`` of independent estimates from their own (value, low, high) limits — MOVER
    (Zou & Donner 2008): ``d − √((m₁ − l₁)² + (u₂ − m₂)²)``, ``d + √((u₁ − m₁)² + (m₂ − l₂)²)``. With
    log-scale limits a slice that reads low still reaches up: six heavy-tailed speakers' speaker-mean
    differences covered 0.85–0.86 with the t interval, 0.92 with these (docs/statistics.md)."""
    (m1, l1, u1), (m2, l2, u2) = first, second
    d = m1 - m2
    return d - np.hypot(m1 - l1, u2 - m2), d + np.hypot(u1 - m1, m2 - l2)


def _mover_vs_reference(
    r: Ratios, ref: int, limits: tuple[np.ndarray, np.ndarray], cis: list[Interval | None]
) -> list[Interval | None]:
    """:func:`mover_bounds` of each between-speaker slice against a between-speaker reference, from
    the slices' log-scale ``limits`` (their intervals at the comparison's level)."""
    between = _between_columns(r)
    if ref not in between:
        return cis
    low, high = limits
    values = r.values[: r.k]
    out = list(cis)
    for i in between:
        if i == ref or cis[i] is None:
            continue
        lo, hi = mover_bounds((values[i], low[i], high[i]), (values[ref], low[ref], high[ref]))
        if np.isfinite(lo) and np.isfinite(hi):
            out[i] = [float(lo), float(hi)]
    return out


def _mover_vs_overall(
    r: Ratios, columns: Sequence[int], level: float, cis: list[Interval | None]
) -> list[Interval | None]:
    """Each column against the dimension's overall, in a dimension where every speaker is in one
    slice: ``μ_i − μ = (1 − w_i)(μ_i − μ_rest)``, ``w_i`` the slice's share of the weight (its
    speakers, for the speaker-mean), by :func:`mover_bounds` of the slice against the rest of the
    dimension — the other slices' weighted mean, its log-scale limits from their variances (Welch–
    Satterthwaite df)."""
    k = r.k
    if r.totals is None:
        return cis
    present = np.flatnonzero(r.totals[:k] > 0)
    if not np.isin(present, _between_columns(r)).all():
        return cis
    own = contrasts(r, select(k, range(k)))
    weight = np.where(r.totals[:k] > 0, r.totals[:k], 0.0)
    values = np.nan_to_num(r.values[:k])
    variance = np.where(np.isfinite(own.se), own.se**2, 0.0)
    df = np.where(np.isfinite(own.df), own.df, np.maximum(own.clusters - 1, 1))
    low, high = _log_scale(r.values[:k], own, level)  # the slices' own limits, as log_limits gives them
    total = weight.sum()
    out = list(cis)
    for n, i in enumerate(columns):
        others = weight.copy()
        others[i] = 0.0
        if not others.sum() > 0 or not np.isfinite(low[i]):
            continue
        w = others / others.sum()
        rest = float(w @ values)
        parts = w**2 * variance
        rest_var = parts.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            rest_df = rest_var**2 / np.sum(np.where(parts > 0, parts**2 / df, 0.0))
        clusters = float(np.sum(np.where(others > 0, own.clusters, 0)))
        summary = Contrasts(np.array([np.sqrt(rest_var)]), np.array([rest_df]), np.array([clusters]))
        rest_low, rest_high = _log_scale(np.array([rest]), summary, level)
        lo, hi = mover_bounds((values[i], low[i], high[i]), (rest, rest_low[0], rest_high[0]))
        if np.isfinite(lo) and np.isfinite(hi):
            share = weight[i] / total
            out[n] = [float((1 - share) * lo), float((1 - share) * hi)]
    return out


def _mover_gap(r: Ratios, ranked: np.ndarray, level: float) -> Interval | None:
    """The gap's interval from every pair's :func:`mover_bounds` at ``level`` (Bonferroni over the
    pairs, as :func:`gap_bounds`); None where a slice has no limits."""
    low, high = log_limits(r, ranked, level)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None
    first, second = np.triu_indices(len(ranked), 1)
    values = r.values[ranked]
    lo, hi = mover_bounds(
        (values[first], low[first], high[first]), (values[second], low[second], high[second])
    )
    nearest = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return [float(np.max(nearest)), float(np.max(np.maximum(np.abs(lo), np.abs(hi))))]


def _null_floor(wald: Contrasts, null: Contrasts | None) -> Contrasts:
    """Per contrast, the larger of the Wald variance and the null-centred one. The df stay the Wald
    ones, as in :func:`pairwise` (centred on the null a heavy speaker's residual can count for fewer
    or more speakers; the larger variance must not buy a narrower interval); the null's where the
    Wald variance has none (no spread)."""
    if null is None:
        return wald
    use = np.isfinite(null.se) & (null.se > np.nan_to_num(wald.se, nan=np.inf))
    return replace(
        wald,
        se=np.where(use, null.se, wald.se),
        df=np.where(use & ~np.isfinite(wald.df), null.df, wald.df),
        skew=None if wald.skew is None or null.skew is None else np.where(use, null.skew, wald.skew),
    )


def _between_columns(r: Ratios) -> np.ndarray:
    """The slice columns whose speakers are theirs alone (a between-speaker slice): :func:`own_strata`
    of each column, at once."""
    entries = r.pattern.tocoo()
    foreign = np.bincount(entries.col[r.stratum[entries.row] != entries.col], minlength=r.k + 1)[: r.k]
    return np.flatnonzero(foreign == 0).astype(np.int64)


def _small_between(r: Ratios) -> bool:
    """Whether the dimension has a between-speaker slice of 2 to ``NULL_FLOOR_BELOW`` − 1 speakers."""
    speakers = np.asarray(r.pattern.sum(axis=0)).ravel()[_between_columns(r)]
    return bool(((speakers >= 2) & (speakers < NULL_FLOOR_BELOW)).any())


def _vs_overall_null(r: Ratios) -> Contrasts | None:
    """Each between-speaker slice against the dimension's overall with the slice's influences centred on
    the overall's rate (the null of no difference, score-type), as the disparity pairs and the
    excess ΔWER: a small heavy-tailed slice whose heavy speakers are absent reads low *and* gets a
    small Wald variance, and its vs-overall interval covered 0.896 in ``volume+spread``
    (docs/statistics.md). None where no slice is between-speaker."""
    columns = _between_columns(r)
    if r.slope is None or not columns.size:
        return None
    shift = np.zeros(r.k + 1)
    shift[columns] = np.nan_to_num(r.values[r.k] - r.values[columns])
    centred = replace(r, influence=(r.influence - r.slope @ sparse.diags(shift)).tocsr())
    out = contrasts(centred, unit_contrasts(r.k, list(range(r.k)), [r.k] * r.k))
    keep = np.zeros(r.k, bool)
    keep[columns] = True
    return replace(out, se=np.where(keep, out.se, np.nan))


def _vs_reference(r: Ratios, ref: int) -> Contrasts:
    """Each slice against the reference slice; between-speaker pairs as the disparity's (the larger of
    the Wald and the null-centred variance, :func:`pairwise`), others from their influences."""
    k = r.k
    out = contrasts(r, unit_contrasts(k, list(range(k)), [ref] * k))
    between = _between_columns(r)
    if ref not in between:
        return out
    others = between[between != ref]
    if not others.size:
        return out
    columns = np.append(others, ref)
    pair, _ = pairwise(r, columns, np.arange(others.size), np.full(others.size, others.size))
    se, df = out.se.copy(), out.df.copy()
    se[others], df[others] = pair.se, pair.df
    return replace(out, se=se, df=df)


def detectable_gaps(
    comparisons: Sequence[SliceComparison],
    confidence: float,
    tests: int,
    power: float,
    levels: Sequence[float | None] | None = None,
    test: Test | None = None,
) -> list[float | None]:
    """Per comparison, the smallest true difference the ★ rule finds with ``power``, conservatively
    (``m`` the tests of the Holm family, its worst case). The ★ needs the vs-overall interval above
    0 and the dimension ``test`` significant; the gap is the larger of the two parts' gaps.
    Interval: ``M_t × se(δ)`` with ``M_t = t_{1−α/2m}(ν) + t_power(ν)``, ``ν`` the dimension test's
    conservative df; a slice's standard error grows with its WER (speaker effects are
    multiplicative), ``se(δ) = se × (level + δ) / level``, so ``δ = M_t se / (1 − M_t se / level)``.
    Test: its F (own df) reaches ``power`` at noncentrality λ (noncentral F); with inverse-variance
    weights, one slice shifted by Δ on the log scale gives λ ≈ (Δ / se_log)², se_log = se / level,
    so ``δ = level × (exp(√λ se / level) − 1)``. None where the interval part has no gap (M_t se ≥
    level) or the difference has no standard error.

    ``se`` is not the estimate but its upper ``SE_UPPER_LEVEL`` confidence bound (χ² on the
    difference's own df): a gap from the estimate held its power on average over a design but not
    per dataset — a dataset whose standard error came out small printed a gap that a fresh dataset
    detected in about 0.70 of draws (stated 0.80; docs/statistics.md, *Detectable gap*)."""
    se = np.array([c.se if c.se is not None else np.nan for c in comparisons], dtype=float)
    df = np.array([c.detect_df or c.df or np.nan for c in comparisons], dtype=float)
    own_df = np.array([c.df if c.df is not None and np.isfinite(c.df) else np.nan for c in comparisons], dtype=float)
    se = se * se_upper_factor(np.where(np.isfinite(own_df), own_df, df))
    level = np.array([v if v else np.inf for v in (levels or [None] * len(comparisons))], dtype=float)
    usable = (se > 0) & np.isfinite(df)
    alpha = (1 - confidence) / max(tests, 1)
    safe_df = np.where(usable, df, 1.0)
    safe_se = np.where(usable, se, 0.0)
    base = (t_quantile(1 - alpha / 2, safe_df) + t_quantile(power, safe_df)) * safe_se
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gap = np.where(base < level, base / (1 - base / level), np.nan)
        root = _f_test_multiple(test, alpha, power)
        if root is not None:
            shift = root * safe_se
            f_gap = np.where(np.isfinite(level), level * np.expm1(shift / level), shift)
            gap = np.where(np.isnan(gap), gap, np.maximum(gap, f_gap))
    return [finite_or_none(v) if ok else None for v, ok in zip(gap, usable, strict=True)]


# The detectable gap rests on an upper confidence bound of the standard error, not on the estimate:
# a dataset whose standard error came out small would print a gap a fresh dataset of the same design
# detects too rarely (0.70 power at 20–60 speakers a slice with the estimate; the 80 % bound gave
# 0.76 at 60 speakers in 60 datasets, the 95 % bound 0.84; docs/statistics.md).
SE_UPPER_LEVEL = 0.95


def se_upper_factor(df: np.ndarray, level: float = SE_UPPER_LEVEL) -> np.ndarray:
    """√(ν / χ²_{1−level}(ν)): the one-sided ``level`` upper confidence bound of a standard error
    with ``ν`` degrees of freedom, as a multiple of the estimate (NaN where ν is not finite)."""
    nu = np.where(np.isfinite(df), np.maximum(df, 1.0), np.nan)
    return np.sqrt(nu / scipy_stats.chi2.ppf(1 - level, nu))


def _f_test_multiple(test: Test | None, alpha: float, power: float) -> float | None:
    """√λ: the noncentrality at which the dimension's F test (its own df) rejects at ``alpha`` with
    ``power``. Welch's F divides by ``1 + 2(m−2)/(3 df2)`` (its df2 is ``(m²−1)/3Λ``), which raises
    the bar; Hotelling's F is a noncentral F as it stands. None without a test or its df; inf where
    no noncentrality up to 10⁶ reaches the power."""
    if test is None or len(test.df) != 2 or not all(np.isfinite(test.df)) or min(test.df) <= 0:
        return None
    df1, df2 = test.df
    critical = float(scipy_stats.f.isf(alpha, df1, df2))
    if test.method.startswith("Welch"):
        critical *= 1 + 2 * (df1 - 1) / (3 * df2)  # m − 2 = df1 − 1
    def shortfall(lam: float) -> float:
        return float(scipy_stats.ncf.sf(critical, df1, df2, lam)) - power
    # ncf at λ = 0 is unreliable in scipy (negative sf): bracket from a tiny λ. A df2 so small that
    # no reasonable λ reaches the power (or ncf gives nan): no gap is detectable (infinite).
    low, high = 1e-6, 1.0
    while not shortfall(high) >= 0:
        if high > 1e6:
            return math.inf
        low, high = high, high * 2
    if not shortfall(low) < 0:
        return math.inf
    return math.sqrt(optimize.brentq(shortfall, low, high, xtol=1e-6))


def detectable_gap(comparison: SliceComparison, confidence: float, tests: int, power: float) -> float | None:
    """:func:`detectable_gaps` of one comparison."""
    return detectable_gaps([comparison], confidence, tests, power)[0]


def _test(pairs: _Pairs, ranked: list[int], aggregate: str, threshold: float, options: StatsOptions) -> Test | None:
    """The dimension's test over its ranked slices, on the (speaker, slice) sums of ``aggregate``."""
    keep, numerator, denominator = pairs.ratio_terms(aggregate, threshold)
    codes = np.where(keep, pairs.slice, -1)
    return ranked_test(pairs.cluster, codes, ranked, numerator, denominator, enabled=options.permutations > 0)


def ranked_test(
    cluster: np.ndarray,
    codes: np.ndarray,
    ranked: list[int],
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    enabled: bool = True,
    log: bool = True,
    null: bool = False,
) -> Test | None:
    """The test over the ranked slices only (rows of other slices, code -1 or not ranked, take no
    part); rows are summed per (speaker, slice) first. None with fewer than two ranked slices or
    when switched off (``stats.permutations: 0``)."""
    if len(ranked) < 2 or not enabled:
        return None
    remap = np.full(max(int(codes.max()) + 2, 1), -1)
    remap[ranked] = np.arange(len(ranked))
    label = remap[codes]  # codes of -1 map through the last entry to -1
    keep = label >= 0
    k = len(ranked)
    pair_ids, inverse = unique_inverse(cluster[keep] * k + label[keep])
    a = np.bincount(inverse, weights=numerator[keep])
    b = np.bincount(inverse, weights=denominator[keep])
    pair_cluster, pair_label = pair_ids // k, pair_ids % k
    _, speaker = unique_inverse(pair_cluster)
    n_speakers = int(speaker.max()) + 1 if speaker.size else 0
    r = ratios(
        np.concatenate([speaker, speaker]),
        np.concatenate([pair_label, np.full(pair_label.size, k)]),
        np.concatenate([a, a]),
        np.concatenate([b, b]),
        n_speakers,
        k,
        null,
    )
    result = wald_test(r, log=log)
    if result is None:
        return None
    several = np.bincount(speaker) > 1
    kind = "between-speaker" if not several.any() else "within-speaker" if several.all() else "mixed"
    return Test(kind, result.statistic, 0, result.p_value, 0.0, method=result.method, df=list(result.df))


# Below this many speakers in a slice no detectable gap is printed: the figure rests on the slice's own
# standard error, too noisy there to keep its promise. Measured per dataset (planting each dataset's
# printed gap): at 10 speakers a slice ★ found it in 0.28 ± 0.11 of datasets (stated 0.80). With the
# standard error's upper bound (SE_UPPER_LEVEL) 0.81 ± 0.07 at 20 and 0.755 ± 0.044 at 60
# (docs/statistics.md, Calibration).
MIN_SPEAKERS_DETECTABLE = 20
TOO_FEW_TO_DETECT = f"too few speakers to state a detectable gap (fewer than {MIN_SPEAKERS_DETECTABLE})"


def _stated_gap(gap: float | None, speakers: int) -> tuple[float | None, str | None]:
    """The detectable gap a slice of ``speakers`` may print, and why not: below the floor the reason is
    the speakers, whether or not a gap could be computed (the same words on every such slice)."""
    if speakers < MIN_SPEAKERS_DETECTABLE:
        return None, TOO_FEW_TO_DETECT
    return gap, None


def _holm_and_marks(dimensions: list[Dimension], options: StatsOptions) -> list[Dimension]:
    alpha = 1.0 - options.confidence
    tests = holm_adjusted([d.test for d in dimensions], alpha)
    family = sum(t is not None for t in tests)
    out = []
    for dim, test in zip(dimensions, tests, strict=True):
        comparisons = [s.vs_overall or SliceComparison(None, [None, None]) for s in dim.slices]
        gaps = detectable_gaps(
            comparisons, options.confidence, family, options.power, [s.wer for s in dim.slices], test
        )
        slices = []
        for s, gap in zip(dim.slices, gaps, strict=True):
            stated, why = _stated_gap(gap, s.speakers)
            vs = replace(s.vs_overall, min_detectable=stated, detect_note=why) if s.vs_overall is not None else None
            star = bool(test and test.significant and _rankable(s) and vs and above_zero(vs.difference_ci))
            slices.append(replace(s, vs_overall=vs, significantly_worse=star))
        out.append(replace(dim, test=test, slices=slices))
    return out


def holm_adjusted(tests: Sequence[Test | None], alpha: float) -> list[Test | None]:
    """The tests with their Holm-adjusted p-values (over those present) and significance at ``alpha``."""
    present = [i for i, t in enumerate(tests) if t is not None]
    out = list(tests)
    for i, p_holm in zip(present, holm([tests[i].p_value for i in present]), strict=True):  # type: ignore[union-attr]
        out[i] = replace(tests[i], p_holm=p_holm, significant=p_holm < alpha)  # type: ignore[type-var]
    return out


def above_zero(interval: Interval | None) -> bool:
    """Whether an interval lies wholly above 0 (a missing interval does not)."""
    return interval is not None and interval[0] is not None and interval[0] > 0


def rankable(supported: bool, has_value: bool, values: dict[str, str]) -> bool:
    """Ranked as best/worst or marked: enough support, a value, and not a (missing)/(outside) slice."""
    return supported and has_value and not UNRANKED.intersection(values.values())


def support_flags(speakers: int, words: float, options: StatsOptions) -> list[str]:
    """Why a slice is too thin to rank: too few speakers and/or reference words."""
    flags = []
    if speakers < options.min_speakers:
        flags.append(f"speakers<{options.min_speakers}")
    if words < options.min_words:
        flags.append(f"words<{options.min_words}")
    return flags


def _point_estimates(rows: _SliceRows, coded: SliceCodes, pairs: _Pairs, options: StatsOptions) -> list[SliceStats]:
    """Point estimates per slice, all from integer codes and bincounts."""
    k = len(coded.labels)
    inside = coded.codes >= 0
    scored, empty = inside & rows.ok, inside & rows.empty
    failed_rows = inside & ~rows.ok & ~rows.empty

    def per_slice(weights: np.ndarray | None = None, mask: np.ndarray = scored) -> np.ndarray:
        return np.bincount(coded.codes[mask], weights=None if weights is None else weights[mask], minlength=k)

    sums = {c: per_slice(rows.counts[c]) for c in COUNT_COLUMNS}
    failed, no_words = per_slice(mask=failed_rows), per_slice(mask=empty)
    utterances = per_slice() + no_words  # filler-only utterances are scored, but have no WER
    unlabelled = per_slice(mask=scored & rows.no_speaker)
    speakers = np.bincount(pairs.slice, minlength=k)
    means = {aggregate: pairs.per_slice(aggregate, 0.0, k) for aggregate in AGGREGATES[1:]}

    out = []
    for i in range(k):
        words = int(sums["ref_words"][i])
        support = support_flags(int(speakers[i]), words, options)
        notes = []
        if failed[i]:
            notes.append(f"failed {int(failed[i])}/{int(failed[i] + utterances[i])}")
        if unlabelled[i]:
            notes.append(f"{int(unlabelled[i])} without speaker id")
        pooled = rate_or_none(sums["errors"][i], words)
        out.append(
            SliceStats(
                label=coded.labels[i],
                values=coded.values[i],
                utterances=int(utterances[i]),
                failed=int(failed[i]),
                no_reference_words=int(no_words[i]),
                speakers=int(speakers[i]),
                words=words,
                errors=int(sums["errors"][i]),
                substitutions=int(sums["substitutions"][i]),
                deletions=int(sums["deletions"][i]),
                insertions=int(sums["insertions"][i]),
                wer=pooled,
                sub_rate=rate_or_none(sums["substitutions"][i], words),
                del_rate=rate_or_none(sums["deletions"][i], words),
                ins_rate=rate_or_none(sums["insertions"][i], words),
                pooled_wer=pooled,
                speaker_mean_wer=finite_or_none(means["speaker-mean"][i]),
                utterance_mean_wer=finite_or_none(means["utterance-mean"][i]),
                supported=not support,
                flags=support + notes,
            )
        )
    return out


def _speaker_spreads(pairs: _Pairs, k: int, threshold: float, confidence: float) -> list[SpeakerSpread]:
    """Per slice: how many of its speakers the model serves badly, and the quartiles of their WERs."""
    spoke = pairs.words > 0
    own = pairs.errors[spoke] / pairs.words[spoke]
    slice_of = pairs.slice[spoke]
    order = np.lexsort((own, slice_of))
    bounds = np.searchsorted(slice_of[order], np.arange(k + 1))
    out = []
    for i in range(k):
        group = own[order][bounds[i] : bounds[i + 1]]
        quartiles = np.quantile(group, [0.25, 0.5, 0.75]).tolist() if group.size else [None] * 3
        above = int((group > threshold).sum())
        # Speakers are independent: a Wilson interval on the count keeps its level near 0 % and 100 %.
        share_ci = wilson(above, int(group.size), confidence)
        out.append(
            SpeakerSpread(
                threshold=threshold,
                above=above,
                speakers=int(group.size),
                share=above / group.size if group.size else None,
                share_ci=list(share_ci) if share_ci else None,
                quartiles=[finite_or_none(q) for q in quartiles],
            )
        )
    return out


def _sensitivity(blocks: dict[str, Summary]) -> list[Sensitivity]:
    """Per dimension: does the worst slice, the ranking or the significant finding change with the
    aggregate? Each change is said in words, naming the aggregates on each side."""
    out = []
    for index, dim in enumerate(blocks["pooled"].dimensions):
        per = {a: b.dimensions[index] for a, b in blocks.items()}
        worst = {a: d.disparity.worst for a, d in per.items()}
        ranking = {a: [s.label for s in sorted(_ranked(d), key=lambda s: -(s.wer or 0.0))] for a, d in per.items()}
        significant = {a: bool(d.test and d.test.significant) for a, d in per.items()}
        starred = {a: sorted(s.label for s in d.slices if s.significantly_worse) for a, d in per.items()}
        changes = []
        if len(set(worst.values())) > 1:
            changes.append("worst slice: " + ", ".join(f"{w} under {a}" for a, w in worst.items()))
        elif len({tuple(r) for r in ranking.values()}) > 1:
            changes.append("ranking: " + "; ".join(f"{a}: {' > '.join(r)}" for a, r in ranking.items()))
        if len(set(significant.values())) > 1:
            yes = [a for a, v in significant.items() if v]
            no = [a for a, v in significant.items() if not v]
            changes.append(f"significant under {', '.join(yes)}, not under {', '.join(no)}")
        elif len({tuple(v) for v in starred.values()}) > 1:
            changes.append("★: " + "; ".join(f"{a}: {', '.join(v) or 'none'}" for a, v in starred.items()))
        out.append(Sensitivity(dim.name, bool(changes), changes, worst, ranking, significant, starred))
    return out


def _ranked(dim: Dimension) -> list[SliceStats]:
    return [s for s in dim.slices if _rankable(s)]


def _disparity(
    slices: list[SliceStats],
    ranked: list[int],
    r: Ratios,
    reference: str | None,
    confidence: float,
    enabled: bool,
    *,
    mover: bool = False,
) -> Disparity:
    with_failures = [s.label for s in slices if s.failed]
    if not slices:
        return Disparity(ranked=0, note="no utterance falls in this dimension (check its where:)")
    if len(slices) < 2:
        return Disparity(ranked=len(ranked), with_failures=with_failures, note="only one slice; nothing to compare")
    if len(ranked) < 2:
        return Disparity(
            ranked=len(ranked),
            reference=reference,
            with_failures=with_failures,
            note="fewer than two slices meet min_speakers/min_words; no disparity is claimed",
        )
    wers = np.array([slices[i].wer for i in ranked], dtype=float)
    best, worst = ranked[int(np.argmin(wers))], ranked[int(np.argmax(wers))]
    best_wer, worst_wer = float(wers.min()), float(wers.max())
    gap_ci, ratio_ci, worst_ci = gap_bounds(r, ranked, confidence, mover=mover) if enabled else (None, None, None)
    return Disparity(
        ranked=len(ranked),
        best=slices[best].label,
        best_wer=best_wer,
        worst=slices[worst].label,
        worst_wer=worst_wer,
        ratio=worst_wer / best_wer if best_wer > 0 else None,
        ratio_ci=ratio_ci,
        gap=worst_wer - best_wer,
        gap_ci=gap_ci,
        worst_vs_overall=difference(worst_wer, finite_or_none(r.values[r.k])),
        worst_vs_overall_ci=worst_ci,
        reference=reference,
        with_failures=with_failures,
        detected=None if gap_ci is None else gap_ci[0] > 0,
    )


def gap_bounds(
    r: Ratios, ranked: Sequence[int], confidence: float, *, mover: bool = False
) -> tuple[Interval | None, Interval | None, Interval | None]:
    """Intervals for the true gap max_ij (μ_i − μ_j), ratio max_ij μ_i / μ_j and worst-vs-overall
    max_i (μ_i − μ) over the ranked slices, from simultaneous (Bonferroni) t intervals: all pairwise
    differences (log ratios) cover together with ≥ ``confidence``, so the true maximum lies between
    the largest lower and the largest upper end. A gap whose lower end is 0 is not detectable.
    With ``mover`` and between-speaker slices the differences are :func:`mover_bounds` instead."""
    alpha = 1 - confidence
    ranked = list(ranked)
    first, second = np.triu_indices(len(ranked), 1)
    i, j = np.asarray(ranked)[first], np.asarray(ranked)[second]
    values = r.values
    pairs = len(i)
    diff, diff_log = pairwise(r, np.asarray(ranked), first, second)
    if (diff.clusters < 2).any() or not (diff.se > 0).all():
        return None, None, None
    q = t_quantile(1 - alpha / (2 * pairs), diff.df)
    gaps = np.abs(values[i] - values[j])
    gap_ci = [float(max(0.0, np.max(gaps - q * diff.se))), float(np.max(gaps + q * diff.se))]
    if mover and own_strata(r, np.asarray(ranked)):
        gap_ci = _mover_gap(r, np.asarray(ranked), 1 - alpha / pairs) or gap_ci
    positive = (values[i] > 0) & (values[j] > 0)
    ratio_ci = None
    if positive.any():
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            logs = np.abs(np.log(values[i] / values[j]))
            ql = t_quantile(1 - alpha / (2 * pairs), diff_log.df)
            ok = positive & (diff_log.se > 0)
            low = float(np.exp(max(0.0, np.max(np.where(ok, logs - ql * diff_log.se, 0.0)))))
            high = finite_or_none(np.exp(np.max(logs[ok] + ql[ok] * diff_log.se[ok]))) if ok.all() else None
        ratio_ci = [low, high]
    cw = contrasts(r, unit_contrasts(r.k, ranked, [r.k] * len(ranked)))
    worst_ci = None
    if (cw.clusters >= 2).all() and (cw.se > 0).all():
        qw = t_quantile(1 - alpha / (2 * len(ranked)), cw.df)
        d = values[ranked] - values[r.k]
        worst_ci = [float(np.max(d - qw * cw.se)), float(np.max(d + qw * cw.se))]
        if mover:
            moved = _mover_vs_overall(r, list(ranked), 1 - alpha / len(ranked), [None] * len(ranked))
            if all(m is not None for m in moved):
                worst_ci = [max(m[0] for m in moved), max(m[1] for m in moved)]  # type: ignore[index]
    return gap_ci, ratio_ci, worst_ci


def pairwise(
    r: Ratios, ranked: np.ndarray, first: np.ndarray, second: np.ndarray
) -> tuple[Contrasts, Contrasts]:
    """Contrasts of every pair of ``ranked`` columns, raw and on the log scale. In a between-speaker
    design each slice is its own stratum, so the pair's variance and Welch–Satterthwaite df follow
    from the slices' own (linear in the number of slices, not quadratic); otherwise in full.

    In the between-speaker design each pair's variance is the larger of the Wald one (each slice's
    influences centred on its own rate) and the one centred on the pair's pooled rate (the null of
    no difference, score-type): with the Wald variance alone, a small heavy-tailed slice whose heavy
    speakers are absent from a dataset reads low *and* gets a small variance, and the gap's interval
    excluded 0 in 0.19 of datasets where the true gap was 0 (6 speakers against 60 under a
    condition; docs/statistics.md). A slice's variance is a quadratic in the centre, so this costs
    O(1) per pair."""
    i, j = ranked[first], ranked[second]
    if not own_strata(r, ranked):
        raw = contrasts(r, unit_contrasts(r.k, i, j))
        return raw, contrasts(r, unit_contrasts(r.k, i, j, scale=r.values))
    own = contrasts(r, select(r.k, ranked))
    values = r.values[ranked]
    cross, spread = _centre_terms(r, ranked)
    pooled = None
    if r.totals is not None:
        words = r.totals[ranked]
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = (values[first] * words[first] + values[second] * words[second]) / (words[first] + words[second])
    out = []
    for log_scale in (False, True):
        v = own.se**2
        v1, v2 = v[first], v[second]
        with np.errstate(invalid="ignore", divide="ignore"):
            if log_scale:
                v1 = v1 / np.where(values[first] > 0, values[first], np.nan) ** 2
                v2 = v2 / np.where(values[second] > 0, values[second], np.nan) ** 2
            if pooled is not None:
                shift1, shift2 = pooled - values[first], pooled - values[second]
                n1 = np.maximum(own.se[first] ** 2 + 2 * shift1 * cross[first] + shift1**2 * spread[first], 0.0)
                n2 = np.maximum(own.se[second] ** 2 + 2 * shift2 * cross[second] + shift2**2 * spread[second], 0.0)
                if log_scale:
                    centre = np.where(pooled > 0, pooled, np.nan) ** 2
                    n1, n2 = n1 / centre, n2 / centre
                use_null = np.isfinite(n1 + n2) & ~(n1 + n2 <= v1 + v2)
                v1, v2 = np.where(use_null, n1, v1), np.where(use_null, n2, v2)
            # A slice without spread has no df of its own; centred on the pair's rate it has a
            # variance, counted on its speakers.
            counted = np.maximum(own.clusters - 1, 1)
            own_df = np.where(np.isfinite(own.df), own.df, counted)
            df1, df2 = own_df[first], own_df[second]
            # A slice without spread (no errors at all) adds nothing to either sum.
            df = (v1 + v2) ** 2 / (np.where(v1 > 0, v1**2 / df1, 0.0) + np.where(v2 > 0, v2**2 / df2, 0.0))
        out.append(Contrasts(np.sqrt(v1 + v2), df, np.minimum(own.clusters[first], own.clusters[second])))
    return out[0], out[1]


def _centre_terms(r: Ratios, ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ranked column (its own stratum), ``cov(d, e)`` and ``var(e)`` of its influences ``d`` and
    their slope ``e`` in the centre, scaled as the variance in :func:`harness.stats.inference.contrasts`:
    centred on c instead of its rate R the variance is ``V + 2(c − R)·cov + (c − R)²·var``."""
    m = len(ranked)
    if r.slope is None:
        return np.zeros(m), np.zeros(m)
    pick = select(r.k, ranked)
    d, e = (r.influence @ pick).tocoo(), (r.slope @ pick).tocoo()
    # same sparsity: both have an entry for every (speaker, column) the speaker takes part in
    d_dense = sparse.csr_matrix((d.data, (d.row, d.col)), shape=(r.influence.shape[0], m))
    e_dense = sparse.csr_matrix((e.data, (e.row, e.col)), shape=(r.influence.shape[0], m))
    n = np.asarray((r.pattern @ pick).sum(axis=0)).ravel()
    s_d, s_e = np.asarray(d_dense.sum(axis=0)).ravel(), np.asarray(e_dense.sum(axis=0)).ravel()
    s_de = np.asarray(d_dense.multiply(e_dense).sum(axis=0)).ravel()
    s_ee = np.asarray(e_dense.multiply(e_dense).sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(n >= 2, (n - 1) / np.maximum(n, 1), 0.0)
        cross = factor * (s_de - s_d * s_e / np.maximum(n, 1))
        spread = factor * (s_ee - s_e**2 / np.maximum(n, 1))
    return cross, np.maximum(spread, 0.0)


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def rate_or_none(numerator: float, denominator: float) -> float | None:
    return float(numerator) / denominator if denominator > 0 else None


def finite_or_none(value: object) -> float | None:
    """A finite float, or None (undefined, or an interval end that is unbounded)."""
    if value is None or pd.isna(value) or not np.isfinite(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]
