"""Conditions compared on the same utterances: how much worse, and worse for whom.

Every utterance is heard under every condition, so comparisons are *paired*: an utterance's
errors under a condition are compared with its own errors under the reference condition (the
first listed, usually ``clean``). Only utterances scored under every condition take part
(complete cases); the others are counted and reported, never silently mixed in, so that in a
table every cell of a row covers the same words and ΔWER is exactly the difference of cells.

For each slice dimension (accent, dialect, ...) and each condition ``c``:

* ``ΔWER_s(c) = WER_s(c) − WER_s(reference)`` per slice, with a t interval from the
  leave-one-speaker-out variance of the paired difference (each speaker dropped from both
  conditions at once, which is what makes the interval paired), its quantiles corrected for the
  skewness of the speakers' contributions;
* the **excess** ``ΔWER_s(c) − ΔWER(c)`` against the dimension's pooled ΔWER: does the
  condition hurt this slice more than the others (:func:`harness.stats.inference.excess_intervals`);
* the **disparity shift**: the max − min gap and worst/best ratio across ranked slices under
  ``c`` against the same figures under the reference, each with an interval from simultaneous
  pairwise intervals (:func:`harness.stats.by_slice.gap_bounds`, :func:`change_bounds`);
* an **interaction test**: the dimension test of :func:`harness.stats.by_slice.ranked_test` applied to
  per-utterance error *differences* on the raw scale (the null: the condition's extra errors per
  word do not depend on the slice), its variances centred on the null (score-type),
  Holm-corrected across every dimension × condition.

A slice is marked as degraded more (``degrades_more``) only when it is ranked, its dimension's
Holm-adjusted interaction p-value is below ``1 − confidence`` and its excess interval lies
above 0 — the same rule as the ★ of :mod:`harness.stats.by_slice`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from harness.conditions import CONDITION_TAG
from harness.stats.arrays import unique_inverse
from harness.stats.by_slice import (
    StatsOptions,
    above_zero,
    cluster_units,
    difference,
    finite_or_none,
    gap_bounds,
    holm_adjusted,
    pairwise,
    rankable,
    ranked_test,
    rate_intervals,
    rate_or_none,
    select,
    support_flags,
    t_intervals,
    unit_contrasts,
)
from harness.stats.inference import Ratios, contrasts, excess_intervals, ratios, t_quantile
from harness.stats.records import (
    ConditionCell,
    ConditionDimension,
    ConditionOverall,
    ConditionSlice,
    Degradation,
    Interval,
    Shift,
    Test,
)
from harness.stats.slices import SliceCodes, SliceSpec, TagCodes, slice_codes
from harness.stats.where import parse_where, referenced


@dataclass(frozen=True)
class Paired:
    """Complete cases as arrays: one row per utterance, one error column per condition."""

    reference_rows: pd.DataFrame
    errors: np.ndarray  # (conditions × utterances)
    words: np.ndarray
    cluster: np.ndarray
    n_clusters: int
    empty: int = 0  # complete cases left out for having no reference word


def degradation(
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    conditions: Sequence[str],
    descriptions: Mapping[str, str],
    options: StatsOptions,
) -> Degradation | None:
    """Paired comparison of ``conditions`` (the first is the reference); None without two."""
    if CONDITION_TAG not in table.columns or len(conditions) < 2:
        return None
    paired = pair_conditions(table, conditions)
    dims = compared_dimensions(specs)
    coder = TagCodes(paired.reference_rows)
    coded = [slice_codes(paired.reference_rows, spec, coder) for spec in dims]

    overall = _overall(table, paired, conditions, descriptions, options)
    dimensions = [
        _dimension(spec, codes, paired, conditions, options) for spec, codes in zip(dims, coded, strict=True)
    ]
    return Degradation(
        reference=conditions[0],
        conditions=overall,
        paired_utterances=len(paired.words),
        paired_speakers=paired.n_clusters,
        excluded_utterances=int(table.loc[table[CONDITION_TAG].isin(conditions), "id"].nunique())
        - len(paired.words)
        - paired.empty,
        dimensions=_holm_and_marks(dimensions, 1.0 - options.confidence),
        no_reference_words=paired.empty,
    )


def compared_dimensions(specs: Sequence[SliceSpec]) -> list[SliceSpec]:
    """The dimensions a paired comparison reports, in order: those that do not slice by condition."""
    return [s for s in specs if CONDITION_TAG not in s.by and CONDITION_TAG not in where_tags(s)]


def where_tags(spec: SliceSpec) -> set[str]:
    if isinstance(spec.where, str):
        return {tag for tag, _ in referenced(parse_where(spec.where))}
    return set(spec.where)


def pair_conditions(table: pd.DataFrame, conditions: Sequence[str], column: str = CONDITION_TAG) -> Paired:
    """Complete cases: rows of utterances scored under every one of ``conditions`` (the values of
    ``column``; a study pairs systems the same way)."""
    scored = table[(table["status"] == "ok") & table[column].isin(conditions)]
    per_id = scored.groupby("id")[column].nunique()
    complete = per_id.index[per_id == len(conditions)]
    rows = scored[scored["id"].isin(complete)]
    reference = rows[rows[column] == conditions[0]].sort_values("id").reset_index(drop=True)
    # A filler-only utterance (no reference word after normalisation) has no WER under any condition.
    spoken = reference["ref_words"].to_numpy(dtype=np.float64) > 0
    empty = int((~spoken).sum())
    reference = reference[spoken].reset_index(drop=True)
    errors = (
        rows.pivot(index="id", columns=column, values="errors")
        .reindex(index=reference["id"], columns=list(conditions))
        .to_numpy(dtype=np.float64)
        .T
    )
    cluster, uniques = pd.factorize(cluster_units(reference))
    return Paired(
        reference,
        errors,
        reference["ref_words"].to_numpy(dtype=np.float64),
        cluster.astype(np.int64),
        len(uniques),
        empty,
    )


def _overall(
    table: pd.DataFrame,
    paired: Paired,
    conditions: Sequence[str],
    descriptions: Mapping[str, str],
    options: StatsOptions,
) -> list[ConditionOverall]:
    words = paired.words.sum()
    zeros = np.zeros(paired.words.size, dtype=np.int64)
    enabled = options.bootstrap > 0
    out = []
    for c, name in enumerate(conditions):
        rows = table[table[CONDITION_TAG] == name]
        wer = rate_or_none(paired.errors[c].sum(), words)
        base = rate_or_none(paired.errors[0].sum(), words)
        wer_r = linearise(paired.cluster, zeros, 1, paired.errors[c], paired.words, paired.n_clusters)
        wer_ci = rate_intervals(wer_r, [0], options.confidence, enabled)[0][0]
        delta_ci = None
        if c:
            delta_r = linearise(
                paired.cluster, zeros, 1, paired.errors[c] - paired.errors[0], paired.words, paired.n_clusters
            )
            delta_ci = difference_intervals(delta_r, [0], options.confidence, enabled)[0][0]
        out.append(
            ConditionOverall(
                name=name,
                description=descriptions.get(name, ""),
                utterances=len(rows),
                failed=int((rows["status"] != "ok").sum()),
                wer=wer,
                wer_ci=wer_ci,
                delta=difference(wer, base),
                delta_ci=delta_ci,
            )
        )
    return out


def linearise(
    cluster: np.ndarray, code: np.ndarray, k: int, errors: np.ndarray, words: np.ndarray, n_clusters: int
) -> Ratios:
    """Rows of ``k`` slices (code ≥ 0) linearised, with their pooled overall as column ``k``."""
    inside = code >= 0
    return ratios(
        np.concatenate([cluster[inside], cluster[inside]]),
        np.concatenate([code[inside], np.full(int(inside.sum()), k)]),
        np.concatenate([errors[inside], errors[inside]]),
        np.concatenate([words[inside], words[inside]]),
        n_clusters,
        k,
    )


def difference_intervals(
    r: Ratios, columns: Sequence[int], confidence: float, enabled: bool, minus: int | None = None
) -> tuple[list[Interval | None], list[str | None]]:
    """Raw-scale t intervals of the ratios in ``columns`` (minus column ``minus``): differences. A ΔWER
    sums products of skewed speaker factors (error rate × susceptibility × volume): the df count
    speakers by their squared influences (Kish) and the quantiles are corrected for skewness (Hall);
    with either alone 60 speakers per slice covered 0.87–0.89 (docs/statistics.md)."""
    m = len(columns)
    coef = unit_contrasts(r.k, columns, [minus] * m) if minus is not None else select(r.k, columns)
    c = contrasts(r, coef, conservative=True)
    estimate = r.values[list(columns)] - (r.values[minus] if minus is not None else 0.0)
    return t_intervals(estimate, c.se, c, confidence, enabled, skew=True)


def _excess(paired: Paired, code: np.ndarray, k: int, condition: int, confidence: float) -> list[Interval | None]:
    """Score intervals of each slice's excess ΔWER over the dimension's (harness.stats.inference.excess_intervals)."""
    diff = paired.errors[condition] - paired.errors[0]
    result = excess_intervals(paired.cluster, code, k, diff, paired.words, confidence)
    return [None if ci is None else [ci[0], ci[1]] for ci in result.intervals]


def _dimension(
    spec: SliceSpec,
    codes: SliceCodes,
    paired: Paired,
    conditions: Sequence[str],
    options: StatsOptions,
) -> ConditionDimension:
    k = len(codes.labels)
    inside = codes.codes >= 0
    code = codes.codes[inside]
    words = np.bincount(code, weights=paired.words[inside], minlength=k)
    errors = np.stack(
        [np.bincount(code, weights=paired.errors[c, inside], minlength=k) for c in range(len(conditions))]
    )
    utterances = np.bincount(code, minlength=k)
    speakers = np.bincount(unique_inverse(paired.cluster[inside] * k + code)[0] % k, minlength=k)
    wer = np.where(words > 0, errors / np.where(words > 0, words, 1), np.nan)  # (conditions × slices)
    dim_words = words.sum()
    dim_wer = errors.sum(axis=1) / dim_words if dim_words else np.full(len(conditions), np.nan)

    slices = [(i, support_flags(int(speakers[i]), words[i], options)) for i in range(k)]
    ranked = [i for i, support in slices if rankable(not support, words[i] > 0, codes.values[i])]

    enabled = options.bootstrap > 0
    cells_by_slice: list[list[ConditionCell]] = [[] for _ in range(k)]
    index = list(range(k))
    wer_lin = [linearise(paired.cluster, codes.codes, k, e, paired.words, paired.n_clusters) for e in paired.errors]
    for c, name in enumerate(conditions):
        wer_cis, wer_notes = rate_intervals(wer_lin[c], index, options.confidence, enabled)
        none: list[Interval | None] = [None] * k
        delta_cis, excess_cis, notes = none, none, wer_notes
        if c:
            delta_lin = linearise(
                paired.cluster, codes.codes, k, paired.errors[c] - paired.errors[0], paired.words, paired.n_clusters
            )
            delta_cis, notes = difference_intervals(delta_lin, index, options.confidence, enabled)
            excess_cis = _excess(paired, codes.codes, k, c, options.confidence) if enabled else none
        dim_delta = dim_wer[c] - dim_wer[0]
        for i in range(k):
            delta = wer[c, i] - wer[0, i]
            cells_by_slice[i].append(
                ConditionCell(
                    condition=name,
                    wer=finite_or_none(wer[c, i]),
                    wer_ci=wer_cis[i],
                    delta=finite_or_none(delta),
                    delta_ci=delta_cis[i],
                    excess=finite_or_none(delta - dim_delta),
                    excess_ci=excess_cis[i],
                    note=wer_notes[i] or notes[i],
                )
            )

    shifts = []
    reference_gap = reference_ratio = None
    note = None
    if len(ranked) >= 2:
        extremes = [_spread(wer[c, ranked]) for c in range(len(conditions))]
        reference_gap, reference_ratio = extremes[0]
        for c in range(1, len(conditions)):
            gap, ratio = extremes[c]
            delta_lin = linearise(
                paired.cluster, codes.codes, k, paired.errors[c] - paired.errors[0], paired.words, paired.n_clusters
            )
            delta_ci = difference_intervals(delta_lin, [k], options.confidence, enabled)[0][0]
            gap_ci, ratio_ci, _ = gap_bounds(wer_lin[c], ranked, options.confidence) if enabled else (None,) * 3
            gap_change_ci, ratio_change_ci = (
                change_bounds(wer_lin[c], wer_lin[0], delta_lin, ranked, options.confidence) if enabled else (None,) * 2
            )
            deltas = wer[c, ranked] - wer[0, ranked]
            shifts.append(
                Shift(
                    condition=conditions[c],
                    delta=finite_or_none(dim_wer[c] - dim_wer[0]),
                    delta_ci=delta_ci,
                    gap=gap,
                    gap_ci=gap_ci,
                    gap_change=difference(gap, reference_gap),
                    gap_change_ci=gap_change_ci,
                    ratio=ratio,
                    ratio_ci=ratio_ci,
                    ratio_change=difference(ratio, reference_ratio),
                    ratio_change_ci=ratio_change_ci,
                    worst=codes.labels[ranked[int(np.argmax(wer[c, ranked]))]],
                    most_degraded=codes.labels[ranked[int(np.argmax(deltas))]],
                    interaction=_interaction(paired, codes.codes, ranked, c, options),
                )
            )
    else:
        note = "fewer than two slices meet min_speakers/min_words; no differential degradation is claimed"
        for c in range(1, len(conditions)):
            delta_lin = linearise(
                paired.cluster, codes.codes, k, paired.errors[c] - paired.errors[0], paired.words, paired.n_clusters
            )
            delta_ci = difference_intervals(delta_lin, [k], options.confidence, enabled)[0][0]
            shifts.append(
                Shift(conditions[c], finite_or_none(dim_wer[c] - dim_wer[0]), delta_ci, *([None] * 8))  # type: ignore[arg-type]
            )

    return ConditionDimension(
        name=spec.label,
        by=list(spec.by),
        ranked=len(ranked),
        slices=[
            ConditionSlice(
                label=codes.labels[i],
                values=codes.values[i],
                utterances=int(utterances[i]),
                speakers=int(speakers[i]),
                words=int(words[i]),
                supported=not support,
                flags=support,
                cells=cells_by_slice[i],
            )
            for i, support in slices
        ],
        reference_gap=reference_gap,
        reference_ratio=reference_ratio,
        shifts=shifts,
        note=note,
    )


def _spread(wers: np.ndarray) -> tuple[float | None, float | None]:
    """Max − min gap and max / min ratio of the ranked slices."""
    best, worst = float(np.min(wers)), float(np.max(wers))
    return worst - best, (worst / best if best > 0 else None)


def change_bounds(
    now: Ratios, base: Ratios, delta: Ratios, ranked: Sequence[int], confidence: float
) -> tuple[Interval | None, Interval | None]:
    """Intervals for the change of the true gap ``max_ij (μ_i − μ_j)`` and ratio between the
    reference condition (``base``) and a condition (``now``) over the ``ranked`` slices, from
    simultaneous t intervals (Bonferroni) of every ordered pair's difference under each condition
    and of every pair's ΔWER difference ``Δ_i − Δ_j`` (paired: ``delta``), ``α/3`` to each family.
    When all cover, the change lies between the bounds below, so the interval holds with ≥ the
    confidence (a max is not smooth, so no single-contrast interval would):

    * unpaired: each gap lies in its :func:`harness.stats.by_slice.gap_bounds` interval, so the change lies
      in ``[low_now − high_base, high_now − low_base]``;
    * paired: if (k, l) is the reference's widest pair, the change is at least ``D_now(i, j) −
      D_base(k, l)`` for any pair, i.e. ``Δ_k − Δ_l``, ``(Δ_i − Δ_l) + D_base(i, k)`` or
      ``(Δ_k − Δ_j) + D_base(l, j)``; (k, l) is unknown, so the lower end is the least of these
      over the pairs that could be the widest (k can be the largest, l the smallest, and the pair
      reach the largest lower end). The upper end mirrors it over the condition's widest pair.

    The ratio's change uses the unpaired construction on ratios (two families, ``α/2`` each); a
    ratio without an upper end (a ranked slice without errors) gives no interval for its change."""
    alpha = 1 - confidence
    ranked = np.asarray(ranked)
    m = len(ranked)
    first, second = np.triu_indices(m, 1)

    def ordered(r: Ratios, level: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Lower and upper ends of μ_i − μ_j, (m × m), simultaneous at ``level``."""
        diff, _ = pairwise(r, ranked, first, second)
        if (diff.clusters < 2).any() or not (diff.se > 0).all():
            return None
        half = t_quantile(1 - (1 - level) / (2 * len(first)), diff.df) * diff.se
        estimate = r.values[ranked][:, None] - r.values[ranked][None, :]
        spread = np.zeros((m, m))
        spread[first, second] = spread[second, first] = half
        return estimate - spread, estimate + spread

    level = 1 - alpha / 3
    pairs_now, pairs_base, pairs_delta = ordered(now, level), ordered(base, level), ordered(delta, level)
    gap_ci = None
    if pairs_now is not None and pairs_base is not None and pairs_delta is not None:
        gap_now = max(0.0, pairs_now[0].max()), pairs_now[1].max()
        gap_base = max(0.0, pairs_base[0].max()), pairs_base[1].max()
        low = max(gap_now[0] - gap_base[1], _paired_end(pairs_base, pairs_delta[0]))
        high = min(gap_now[1] - gap_base[0], -_paired_end(pairs_now, -pairs_delta[1]))
        gap_ci = [float(low), float(high)]
    _, ratio_now, _ = gap_bounds(now, ranked, 1 - alpha / 2)
    _, ratio_base, _ = gap_bounds(base, ranked, 1 - alpha / 2)
    ratio_ci = None
    if ratio_now is not None and ratio_base is not None and None not in (*ratio_now, *ratio_base):
        ratio_ci = [ratio_now[0] - ratio_base[1], ratio_now[1] - ratio_base[0]]  # type: ignore[operator]
    return gap_ci, ratio_ci


def _paired_end(pairs: tuple[np.ndarray, np.ndarray], delta_low: np.ndarray) -> float:
    """The paired lower bound of :func:`change_bounds`: ``pairs`` the (lower, upper) ends of the
    reference's pairwise differences μ_i − μ_j, ``delta_low`` the lower ends of ``Δ_i − Δ_j``. The
    upper bound is minus this on the condition's pairs with ``delta_low`` = −(upper ends): since
    ``−high(μ_a − μ_i) = low(μ_i − μ_a)``, its terms have the same form."""
    low, high = pairs
    can_max = (high >= 0).all(axis=1)  # μ_k ≥ every μ_j is possible
    can_min = (high >= 0).all(axis=0)  # μ_l ≤ every μ_j is possible
    candidates = can_max[:, None] & can_min[None, :] & (high >= low.max())
    np.fill_diagonal(candidates, False)
    ks, ls = np.nonzero(candidates)
    if not ks.size:
        return -math.inf
    m = low.shape[0]
    best = np.full(ks.size, -math.inf)
    step = max(1, 4_000_000 // m)  # candidates × slices per block: bounded memory at hundreds of slices
    for start in range(0, ks.size, step):
        top, bottom = ks[start : start + step], ls[start : start + step]
        # (Δ_i − Δ_l) + D(i, k) (i = k gives Δ_k − Δ_l) and (Δ_k − Δ_j) + D(l, j), k top, l bottom
        via_i = (delta_low[:, bottom] + low[:, top]).max(axis=0)
        via_j = (delta_low[top, :] + low[bottom, :]).max(axis=1)
        best[start : start + step] = np.maximum(via_i, via_j)
    return float(best.min())


def _interaction(
    paired: Paired, codes: np.ndarray, ranked: list[int], condition: int, options: StatsOptions
) -> Test | None:
    """The dimension test on per-utterance error differences: does the extra error depend on the slice?"""
    # ΔWER can be negative or zero: the interaction is tested on the raw scale.
    return ranked_test(
        paired.cluster,
        codes,
        ranked,
        paired.errors[condition] - paired.errors[0],
        paired.words,
        enabled=options.permutations > 0,
        log=False,
        null=True,
    )


def _holm_and_marks(dimensions: list[ConditionDimension], alpha: float) -> list[ConditionDimension]:
    places = [(d, s) for d, dim in enumerate(dimensions) for s in range(len(dim.shifts))]
    adjusted = holm_adjusted([dimensions[d].shifts[s].interaction for d, s in places], alpha)
    out = [replace(dim, shifts=list(dim.shifts)) for dim in dimensions]
    for (d, s), test in zip(places, adjusted, strict=True):
        if test is None:
            continue
        out[d].shifts[s] = replace(out[d].shifts[s], interaction=test)
        if not test.significant:
            continue
        column = s + 1  # cells hold the reference first
        slices = []
        for sl in out[d].slices:
            cell = sl.cells[column]
            if above_zero(cell.excess_ci) and rankable(sl.supported, True, sl.values):
                cells = list(sl.cells)
                cells[column] = replace(cell, degrades_more=True)
                sl = replace(sl, cells=cells)
            slices.append(sl)
        out[d] = replace(out[d], slices=slices)
    return out
