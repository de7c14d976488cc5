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

Uncertainty (see :mod:`harness.bootstrap` and :mod:`harness.significance`): every WER, every
disparity figure and every comparison with a reference group carries a percentile interval
from one shared speaker-clustered bootstrap; each dimension gets a speaker-level permutation
test, Holm-corrected across dimensions. A slice is marked significantly worse than its
dimension's overall WER only when (a) it is ranked, (b) its dimension's Holm-adjusted p-value is
below ``1 - confidence`` and (c) the interval of its difference from that overall excludes 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse

from harness.arrays import ratio_or_nan, unique_inverse
from harness.bootstrap import Resampler, percentile_interval
from harness.scoring import COUNT_COLUMNS
from harness.significance import holm, permutation_test
from harness.slices import UNRANKED, SliceCodes, SliceSpec, TagCodes, slice_codes

Interval = list[float | None]  # [low, high]


@dataclass(frozen=True)
class StatsOptions:
    min_speakers: int = 5
    min_words: int = 200
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    permutations: int = 1000


@dataclass(frozen=True)
class Comparison:
    """A slice against a baseline WER (the dimension's overall, or the reference group)."""

    difference: float | None
    difference_ci: Interval
    ratio: float | None = None
    ratio_ci: Interval | None = None


@dataclass(frozen=True)
class SliceStats:
    label: str
    values: dict[str, str]
    utterances: int
    failed: int
    speakers: int
    words: int
    errors: int
    substitutions: int
    deletions: int
    insertions: int
    wer: float | None
    sub_rate: float | None
    del_rate: float | None
    ins_rate: float | None
    speaker_mean_wer: float | None
    utterance_mean_wer: float | None
    supported: bool
    flags: list[str] = field(default_factory=list)
    wer_ci: Interval | None = None
    vs_overall: Comparison | None = None
    vs_reference: Comparison | None = None
    significantly_worse: bool = False


@dataclass(frozen=True)
class Disparity:
    """Spread of pooled WER over the ranked (well-supported) slices of one dimension."""

    ranked: int
    best: str | None = None
    best_wer: float | None = None
    worst: str | None = None
    worst_wer: float | None = None
    ratio: float | None = None  # worst / best; None when the best WER is 0
    ratio_ci: Interval | None = None
    gap: float | None = None  # worst - best, in WER points (absolute)
    gap_ci: Interval | None = None
    worst_vs_overall: float | None = None  # worst - the pooled WER of the dimension's utterances
    worst_vs_overall_ci: Interval | None = None
    reference: str | None = None
    with_failures: list[str] = field(default_factory=list)  # slices where some utterances failed
    note: str | None = None


@dataclass(frozen=True)
class Test:
    """Permutation test of "WER does not depend on this dimension" over its ranked slices."""

    kind: str  # between-speaker | within-speaker | mixed
    statistic: float
    permutations: int  # as run: capped for very many speakers or rows (docs/statistics.md)
    p_value: float
    min_p: float  # the smallest p-value this many permutations can give
    p_holm: float | None = None
    significant: bool = False


@dataclass(frozen=True)
class Dimension:
    name: str
    by: list[str]
    slices: list[SliceStats]
    overall_wer: float | None  # pooled over the utterances this dimension keeps (after `where`)
    overall_wer_ci: Interval | None
    disparity: Disparity
    test: Test | None = None


@dataclass(frozen=True)
class Summary:
    overall: SliceStats
    dimensions: list[Dimension]
    options: StatsOptions
    method: str = "speaker-clustered percentile bootstrap; speaker-level permutation test, Holm-corrected"
    aggregate: str = "pooled"


@dataclass(frozen=True)
class _Rows:
    """The utterance table as arrays (one element per row), built once per summarise."""

    ok: np.ndarray
    cluster: np.ndarray  # speaker code among scored rows; -1 for failed rows
    n_clusters: int
    no_speaker: np.ndarray
    counts: dict[str, np.ndarray]
    wer: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame) -> _Rows:
        ok = (table["status"] == "ok").to_numpy()
        units = cluster_units(table)
        cluster = np.full(len(table), -1, dtype=np.int64)
        codes, uniques = pd.factorize(units[ok])
        cluster[ok] = codes
        counts = {c: table[c].to_numpy(dtype=np.float64, na_value=0.0) for c in COUNT_COLUMNS}
        wer = table["wer"].to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(ok, cluster, len(uniques), table["speaker"].isna().to_numpy(), counts, wer)


@dataclass(frozen=True)
class _Pairs:
    """Sums per (speaker, slice) pair among scored rows: the bootstrap's sparse E and N."""

    cluster: np.ndarray
    slice: np.ndarray
    errors: np.ndarray
    words: np.ndarray


def summarise(table: pd.DataFrame, specs: Sequence[SliceSpec], options: StatsOptions) -> Summary:
    rows = _Rows.of(table)
    coder = TagCodes(table)
    everyone = SliceCodes(np.zeros(len(table), dtype=np.int64), ["overall"], [{}])
    coded = [everyone, *(slice_codes(table, spec, coder) for spec in specs)]
    estimates = [_point_estimates(rows, c, options) for c in coded]

    # One pass of bootstrap weights over every column: each group's slices, then (for dimensions)
    # the pooled column of everything the dimension keeps.
    columns, offset, layout = [], 0, []
    for index, (_slices, pairs) in enumerate(estimates):
        k = len(coded[index].labels)
        columns.append((pairs.cluster, pairs.slice + offset, pairs.errors, pairs.words))
        columns.append((pairs.cluster, np.full(pairs.cluster.size, offset + k), pairs.errors, pairs.words))
        layout.append((offset, k))
        offset += k + 1
    shape = (rows.n_clusters, offset)
    cl, col, e, n = (np.concatenate(parts) for parts in zip(*columns, strict=True))
    reps_all = Resampler(rows.n_clusters, options.bootstrap, options.seed).rates(
        sparse.coo_matrix((e, (cl, col)), shape=shape), sparse.coo_matrix((n, (cl, col)), shape=shape)
    )

    overall = replace(estimates[0][0][0], wer_ci=intervals(reps_all[:, :1], options.confidence)[0])
    dimensions = []
    for index, spec in enumerate(specs, start=1):
        slices, pairs = estimates[index]
        start, k = layout[index]
        reps, dim_reps = reps_all[:, start : start + k], reps_all[:, start + k]
        dim_wer = _rate(pairs.errors.sum(), int(pairs.words.sum()))
        slices = _with_intervals(slices, reps, dim_reps, dim_wer, spec.reference, options.confidence)
        ranked = [i for i, s in enumerate(slices) if _rankable(s)]
        test = _test(rows, coded[index].codes, ranked, options, seed_offset=index)
        dimensions.append(
            Dimension(
                spec.label,
                list(spec.by),
                slices,
                dim_wer,
                intervals(dim_reps[:, None], options.confidence)[0],
                _disparity(slices, ranked, reps, dim_reps, dim_wer, spec.reference, options.confidence),
                test,
            )
        )
    return Summary(overall, _holm_and_marks(dimensions, 1.0 - options.confidence), options)


def cluster_units(table: pd.DataFrame) -> pd.Series:
    """Speaker per utterance; an utterance without a speaker id is its own unit."""
    return table["speaker"].astype("object").fillna("utt:" + table["id"].astype(str))


def _rankable(s: SliceStats) -> bool:
    return s.supported and s.wer is not None and not UNRANKED.intersection(s.values.values())


def intervals(replicates: np.ndarray, confidence: float) -> list[Interval | None]:
    """One [low, high] per column; None when there are no replicates."""
    if replicates.shape[0] == 0:
        return [None] * replicates.shape[1]
    low, high = percentile_interval(replicates, confidence)
    return [[finite_or_none(lo), finite_or_none(hi)] for lo, hi in zip(low, high, strict=True)]


def _with_intervals(
    slices: list[SliceStats],
    reps: np.ndarray,
    dim_reps: np.ndarray,
    dim_wer: float | None,
    reference: str | None,
    confidence: float,
) -> list[SliceStats]:
    wer_cis = intervals(reps, confidence)
    diff_cis = intervals(reps - dim_reps[:, None], confidence)
    ref_index = next((i for i, s in enumerate(slices) if s.label == reference), None)
    out = []
    for i, s in enumerate(slices):
        vs_overall = Comparison(_diff(s.wer, dim_wer), diff_cis[i] or [None, None])
        vs_reference = None
        if ref_index is not None:
            ref = slices[ref_index]
            ref_reps = reps[:, ref_index]
            ratio_reps = ratio_replicates(reps[:, i], ref_reps)
            vs_reference = Comparison(
                _diff(s.wer, ref.wer),
                intervals((reps[:, i] - ref_reps)[:, None], confidence)[0] or [None, None],
                s.wer / ref.wer if s.wer is not None and ref.wer else None,
                intervals(ratio_reps[:, None], confidence)[0],
            )
        out.append(replace(s, wer_ci=wer_cis[i], vs_overall=vs_overall, vs_reference=vs_reference))
    return out


def _test(rows: _Rows, codes: np.ndarray, ranked: list[int], options: StatsOptions, seed_offset: int) -> Test | None:
    return ranked_test(
        rows.cluster,
        np.where(rows.ok, codes, -1),
        ranked,
        rows.counts["errors"],
        rows.counts["ref_words"],
        permutations=options.permutations,
        seed=options.seed + seed_offset,
    )


def ranked_test(
    cluster: np.ndarray,
    codes: np.ndarray,
    ranked: list[int],
    errors: np.ndarray,
    words: np.ndarray,
    *,
    permutations: int,
    seed: int,
) -> Test | None:
    """The permutation test over the ranked slices only; rows of other slices (code -1 or not
    ranked) take no part. None with fewer than two ranked slices or no permutations."""
    if len(ranked) < 2 or permutations < 1:
        return None
    remap = np.full(codes.max() + 2, -1)
    remap[ranked] = np.arange(len(ranked))
    label = remap[codes]  # codes of -1 map through the last entry to -1
    keep = label >= 0
    result = permutation_test(
        cluster[keep], label[keep], errors[keep], words[keep], permutations=permutations, seed=seed
    )
    if result is None:
        return None
    return Test(result.kind, result.statistic, result.permutations, result.p_value, 1 / (1 + result.permutations))


def _holm_and_marks(dimensions: list[Dimension], alpha: float) -> list[Dimension]:
    tested = [i for i, d in enumerate(dimensions) if d.test is not None]
    adjusted = holm([dimensions[i].test.p_value for i in tested])  # type: ignore[union-attr]
    out = list(dimensions)
    for i, p_holm in zip(tested, adjusted, strict=True):
        dim = dimensions[i]
        significant = p_holm < alpha
        test = replace(dim.test, p_holm=p_holm, significant=significant)  # type: ignore[type-var]
        slices = [
            replace(s, significantly_worse=significant and _rankable(s) and _above_zero(s.vs_overall))
            for s in dim.slices
        ]
        out[i] = replace(dim, test=test, slices=slices)
    return out


def _above_zero(comparison: Comparison | None) -> bool:
    low = comparison.difference_ci[0] if comparison else None
    return low is not None and low > 0


def _point_estimates(rows: _Rows, coded: SliceCodes, options: StatsOptions) -> tuple[list[SliceStats], _Pairs]:
    """Point estimates per slice, all from integer codes and bincounts."""
    k = len(coded.labels)
    inside = coded.codes >= 0
    scored, failed_rows = inside & rows.ok, inside & ~rows.ok
    code = coded.codes[scored]

    def per_slice(weights: np.ndarray | None = None, mask: np.ndarray = scored) -> np.ndarray:
        return np.bincount(coded.codes[mask], weights=None if weights is None else weights[mask], minlength=k)

    sums = {c: per_slice(rows.counts[c]) for c in COUNT_COLUMNS}
    utterances, failed = per_slice(), per_slice(mask=failed_rows)
    unlabelled = per_slice(mask=scored & rows.no_speaker)
    has_words = scored & (rows.counts["ref_words"] > 0)
    utterance_wer = ratio_or_nan(per_slice(np.nan_to_num(rows.wer), has_words), per_slice(mask=has_words))

    pair_ids, inverse = unique_inverse(rows.cluster[scored] * k + code)
    pairs = _Pairs(
        pair_ids // k,
        pair_ids % k,
        np.bincount(inverse, weights=rows.counts["errors"][scored]),
        np.bincount(inverse, weights=rows.counts["ref_words"][scored]),
    )
    speakers = np.bincount(pairs.slice, minlength=k)
    spoke = pairs.words > 0
    speaker_wer = ratio_or_nan(
        np.bincount(pairs.slice[spoke], weights=pairs.errors[spoke] / pairs.words[spoke], minlength=k),
        np.bincount(pairs.slice[spoke], minlength=k),
    )

    out = []
    for i in range(k):
        words = int(sums["ref_words"][i])
        support = []
        if speakers[i] < options.min_speakers:
            support.append(f"speakers<{options.min_speakers}")
        if words < options.min_words:
            support.append(f"words<{options.min_words}")
        notes = []
        if failed[i]:
            notes.append(f"failed {int(failed[i])}/{int(failed[i] + utterances[i])}")
        if unlabelled[i]:
            notes.append(f"{int(unlabelled[i])} without speaker id")
        out.append(
            SliceStats(
                label=coded.labels[i],
                values=coded.values[i],
                utterances=int(utterances[i]),
                failed=int(failed[i]),
                speakers=int(speakers[i]),
                words=words,
                errors=int(sums["errors"][i]),
                substitutions=int(sums["substitutions"][i]),
                deletions=int(sums["deletions"][i]),
                insertions=int(sums["insertions"][i]),
                wer=_rate(sums["errors"][i], words),
                sub_rate=_rate(sums["substitutions"][i], words),
                del_rate=_rate(sums["deletions"][i], words),
                ins_rate=_rate(sums["insertions"][i], words),
                speaker_mean_wer=finite_or_none(speaker_wer[i]),
                utterance_mean_wer=finite_or_none(utterance_wer[i]),
                supported=not support,
                flags=support + notes,
            )
        )
    return out, pairs


def _disparity(
    slices: list[SliceStats],
    ranked: list[int],
    reps: np.ndarray,
    dim_reps: np.ndarray,
    dim_wer: float | None,
    reference: str | None,
    confidence: float,
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
    # Each replicate recomputes the statistic over the same ranked slices, so both ends' noise counts.
    ranked_reps = reps[:, ranked]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate may draw no speaker of any slice
        high, low = np.nanmax(ranked_reps, axis=1), np.nanmin(ranked_reps, axis=1)
    ratio_reps = ratio_replicates(high, low)
    figures = np.column_stack([ratio_reps, high - low, reps[:, worst] - dim_reps]) if reps.shape[0] else reps[:, :0]
    cis = intervals(figures, confidence) if reps.shape[0] else [None, None, None]
    return Disparity(
        ranked=len(ranked),
        best=slices[best].label,
        best_wer=best_wer,
        worst=slices[worst].label,
        worst_wer=worst_wer,
        ratio=worst_wer / best_wer if best_wer > 0 else None,
        ratio_ci=cis[0],
        gap=worst_wer - best_wer,
        gap_ci=cis[1],
        worst_vs_overall=_diff(worst_wer, dim_wer),
        worst_vs_overall_ci=cis[2],
        reference=reference,
        with_failures=with_failures,
    )


def ratio_replicates(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Replicates of a ratio: +inf where only the denominator is 0 (the interval then has no
    upper end; JSON shows it as null), NaN where both are (no information)."""
    ratios = ratio_or_nan(numerator, denominator)
    return np.where((denominator <= 0) & (numerator > 0), np.inf, ratios)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _rate(numerator: float, denominator: int) -> float | None:
    return float(numerator) / denominator if denominator > 0 else None


def finite_or_none(value: object) -> float | None:
    """A finite float, or None (undefined, or an interval end that is unbounded)."""
    if value is None or pd.isna(value) or not np.isfinite(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]
