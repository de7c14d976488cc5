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
  condition hurt this slice more than the others;
* the **disparity shift**: the max − min gap and worst/best ratio across ranked slices under
  ``c`` against the same figures under the reference, each with an interval;
* an **interaction test**: the dimension test of :func:`harness.stats.ranked_test` applied to
  per-utterance error *differences* on the raw scale (the null: the condition's extra errors per
  word do not depend on the slice), its variances centred on the null (score-type),
  Holm-corrected across every dimension × condition.

A slice is marked as degraded more (``degrades_more``) only when it is ranked, its dimension's
Holm-adjusted interaction p-value is below ``1 − confidence`` and its excess interval lies
above 0 — the same rule as the ★ of :mod:`harness.stats`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from harness.arrays import ratio_or_nan, unique_inverse
from harness.bootstrap import Resampler, percentile_interval
from harness.conditions import CONDITION_TAG
from harness.inference import Ratios, contrasts, ratios
from harness.slices import SliceCodes, SliceSpec, TagCodes, slice_codes
from harness.stats import (
    Interval,
    StatsOptions,
    Test,
    above_zero,
    cluster_units,
    difference,
    finite_or_none,
    gap_bounds,
    holm_adjusted,
    rankable,
    ranked_test,
    rate_intervals,
    rate_or_none,
    select,
    support_flags,
    t_intervals,
    unit_contrasts,
)
from harness.where import parse_where, referenced

METHOD = (
    "paired over utterances scored under every condition; leave-one-speaker-out t intervals of paired "
    "differences, skewness-corrected (Hall) with Kish df; gap and ratio change: speaker-clustered bootstrap "
    "with shared weights across conditions; interaction: Welch heteroscedastic / cluster-robust Wald F test "
    "of per-utterance error differences with null-centred (score-type) variances, Holm-corrected across "
    "dimensions × conditions"
)


@dataclass(frozen=True)
class Cell:
    """One slice under one condition."""

    condition: str
    wer: float | None
    wer_ci: Interval | None
    delta: float | None  # WER(condition) − WER(reference), same utterances
    delta_ci: Interval | None
    excess: float | None  # delta − the dimension's pooled delta
    excess_ci: Interval | None
    degrades_more: bool = False
    note: str | None = None  # why an interval is missing (one speaker, no errors, the reference itself)


@dataclass(frozen=True)
class ConditionSlice:
    label: str
    values: dict[str, str]
    utterances: int
    speakers: int
    words: int
    supported: bool
    flags: list[str]
    cells: list[Cell]  # one per condition, the reference first


@dataclass(frozen=True)
class Shift:
    """A dimension's disparity under one condition against the reference condition."""

    condition: str
    delta: float | None  # the dimension's pooled ΔWER
    delta_ci: Interval | None
    gap: float | None  # worst − best ranked slice under this condition
    gap_ci: Interval | None
    gap_change: float | None  # gap here − gap under the reference
    gap_change_ci: Interval | None
    ratio: float | None
    ratio_ci: Interval | None
    ratio_change: float | None
    ratio_change_ci: Interval | None
    worst: str | None = None
    most_degraded: str | None = None  # ranked slice with the largest ΔWER
    interaction: Test | None = None


@dataclass(frozen=True)
class ConditionDimension:
    name: str
    by: list[str]
    ranked: int
    slices: list[ConditionSlice]
    reference_gap: float | None
    reference_ratio: float | None
    shifts: list[Shift]  # one per non-reference condition
    note: str | None = None


@dataclass(frozen=True)
class ConditionOverall:
    name: str
    description: str
    utterances: int  # rows under this condition, failed ones included
    failed: int
    wer: float | None  # pooled over the paired utterances
    wer_ci: Interval | None
    delta: float | None
    delta_ci: Interval | None


@dataclass(frozen=True)
class Degradation:
    reference: str
    conditions: list[ConditionOverall]
    paired_utterances: int
    excluded_utterances: int  # not scored under every condition
    dimensions: list[ConditionDimension]
    evidence: str = "simulated"
    method: str = METHOD
    paired_speakers: int = 0  # speaker clusters among the paired utterances
    no_reference_words: int = 0  # paired utterances without reference words: no WER, left out


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
    everyone = SliceCodes(np.zeros(len(paired.words), dtype=np.int64), ["overall"], [{}])
    coded = [everyone, *(slice_codes(paired.reference_rows, spec, coder) for spec in dims)]

    # Bootstrap columns: per group (overall, then each dimension), per condition, its slices
    # and then the group's pooled column.
    blocks, layout, offset = [], [], 0
    for codes in coded:
        k = len(codes.labels)
        starts = []
        inside = codes.codes >= 0
        for c in range(len(conditions)):
            for column, code in ((offset, codes.codes[inside]), (offset + k, np.zeros(int(inside.sum()), int))):
                blocks.append((paired.cluster[inside], column + code, paired.errors[c, inside], paired.words[inside]))
            starts.append(offset)
            offset += k + 1
        layout.append(starts)
    cl, col, e, n = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    shape = (paired.n_clusters, offset)
    reps = Resampler(paired.n_clusters, options.bootstrap, options.seed).rates(
        sparse.coo_matrix((e, (cl, col)), shape=shape), sparse.coo_matrix((n, (cl, col)), shape=shape)
    )

    overall = _overall(table, paired, conditions, descriptions, options)
    dimensions = [
        _dimension(spec, codes, paired, conditions, reps, starts, options)
        for spec, codes, starts in zip(dims, coded[1:], layout[1:], strict=True)
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


def _dimension(
    spec: SliceSpec,
    codes: SliceCodes,
    paired: Paired,
    conditions: Sequence[str],
    reps: np.ndarray,
    starts: list[int],
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

    slice_reps = [reps[:, s : s + k] for s in starts]
    dim_reps = [reps[:, s + k] for s in starts]
    slices = [(i, support_flags(int(speakers[i]), words[i], options)) for i in range(k)]
    ranked = [i for i, support in slices if rankable(not support, words[i] > 0, codes.values[i])]

    enabled = options.bootstrap > 0
    cells_by_slice: list[list[Cell]] = [[] for _ in range(k)]
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
            excess_cis, _ = difference_intervals(delta_lin, index, options.confidence, enabled, minus=k)
        dim_delta = dim_wer[c] - dim_wer[0]
        for i in range(k):
            delta = wer[c, i] - wer[0, i]
            cells_by_slice[i].append(
                Cell(
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
        gaps = [_spread(wer[c, ranked], slice_reps[c][:, ranked]) for c in range(len(conditions))]
        reference_gap, reference_ratio = gaps[0][0], gaps[0][2]
        for c in range(1, len(conditions)):
            gap, gap_reps, ratio, ratio_reps = gaps[c]
            _, base_gap_reps, base_ratio, base_ratio_reps = gaps[0]
            with np.errstate(invalid="ignore"):
                figures = np.column_stack(
                    [
                        dim_reps[c] - dim_reps[0],
                        gap_reps,
                        gap_reps - base_gap_reps,
                        ratio_reps,
                        ratio_reps - base_ratio_reps,
                    ]
                )
            cis = _percentile(figures, options.confidence)
            delta_lin = linearise(
                paired.cluster, codes.codes, k, paired.errors[c] - paired.errors[0], paired.words, paired.n_clusters
            )
            delta_ci = difference_intervals(delta_lin, [k], options.confidence, enabled)[0][0]
            gap_ci, ratio_ci, _ = gap_bounds(wer_lin[c], ranked, options.confidence) if enabled else (None,) * 3
            deltas = wer[c, ranked] - wer[0, ranked]
            shifts.append(
                Shift(
                    condition=conditions[c],
                    delta=finite_or_none(dim_wer[c] - dim_wer[0]),
                    delta_ci=delta_ci,
                    gap=gap,
                    gap_ci=gap_ci,
                    gap_change=difference(gap, reference_gap),
                    gap_change_ci=cis[2],
                    ratio=ratio,
                    ratio_ci=ratio_ci,
                    ratio_change=difference(ratio, base_ratio),
                    ratio_change_ci=cis[4],
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


def _percentile(replicates: np.ndarray, confidence: float) -> list[Interval | None]:
    """Percentile interval per column of bootstrap replicates; None without replicates."""
    if replicates.shape[0] == 0:
        return [None] * replicates.shape[1]
    low, high = percentile_interval(replicates, confidence)
    return [[finite_or_none(lo), finite_or_none(hi)] for lo, hi in zip(low, high, strict=True)]


def _extremes(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest column of each replicate, ignoring slices a replicate drew no speaker of."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate may draw no speaker of any slice
        return np.nanmax(replicates, axis=1), np.nanmin(replicates, axis=1)


def _ratio_replicates(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Replicates of a ratio: +inf where only the denominator is 0, NaN where both are."""
    ratios_ = ratio_or_nan(numerator, denominator)
    return np.where((denominator <= 0) & (numerator > 0), np.inf, ratios_)


def _spread(wers: np.ndarray, reps: np.ndarray) -> tuple[float | None, np.ndarray, float | None, np.ndarray]:
    """Max − min gap and max / min ratio of the ranked slices, with their replicates."""
    high, low = _extremes(reps)
    best, worst = float(np.min(wers)), float(np.max(wers))
    ratio = worst / best if best > 0 else None
    return worst - best, high - low, ratio, _ratio_replicates(high, low)


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
