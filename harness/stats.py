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
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import sparse

from harness.arrays import ratio_or_nan, unique_inverse
from harness.bootstrap import Resampler, percentile_interval
from harness.scoring import COUNT_COLUMNS
from harness.significance import holm, permutation_test
from harness.slices import UNRANKED, SliceCodes, SliceSpec, TagCodes, slice_codes

Interval = list[float | None]  # [low, high]


AGGREGATES = ("pooled", "speaker-mean", "utterance-mean")
BADLY_SERVED = "badly-served"  # share of speakers whose own WER exceeds the threshold


@dataclass(frozen=True)
class StatsOptions:
    min_speakers: int = 5
    min_words: int = 200
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    permutations: int = 1000
    aggregate: str = "pooled"  # the headline; all three are always computed
    speaker_wer_threshold: float | None = None  # badly served above this; None: 2 × overall pooled WER
    power: float = 0.8  # of the minimum detectable gap


@dataclass(frozen=True)
class SpeakerSpread:
    """How a slice's speakers fare one by one: the badly-served share and the WER quartiles."""

    threshold: float
    above: int  # speakers whose own WER in this slice exceeds the threshold
    speakers: int  # speakers with at least one reference word here
    share: float | None
    share_ci: Interval | None
    quartiles: list[float | None]  # per-speaker WER: 25th, 50th, 75th percentile


@dataclass(frozen=True)
class Comparison:
    """A slice against a baseline WER (the dimension's overall, or the reference group)."""

    difference: float | None
    difference_ci: Interval
    ratio: float | None = None
    ratio_ci: Interval | None = None
    # The smallest |difference| this data detects at α = 1 - confidence with ``power``: from the
    # bootstrap standard error of the difference (null without replicates).
    min_detectable: float | None = None


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
    pooled_wer: float | None
    speaker_mean_wer: float | None
    utterance_mean_wer: float | None
    supported: bool
    flags: list[str] = field(default_factory=list)
    speakers_wer: SpeakerSpread | None = None
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
class Sensitivity:
    """Whether one dimension's finding depends on the aggregate, and how."""

    dimension: str
    flagged: bool
    changes: list[str]  # each change in words, naming the aggregates on each side
    worst: dict[str, str | None]
    ranking: dict[str, list[str]]  # ranked slices, worst first
    significant: dict[str, bool]
    starred: dict[str, list[str]]


@dataclass(frozen=True)
class Aggregates:
    """The same slices under each aggregate, from one set of bootstrap replicates."""

    headline_aggregate: str
    blocks: dict[str, Summary]
    sensitivity: list[Sensitivity]
    speaker_wer_threshold: float
    empty_references: int  # scored utterances with N = 0: in pooled (as insertions), not in utterance-mean

    @property
    def headline(self) -> Summary:
        return self.blocks[self.headline_aggregate]


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
    """Sums per (speaker, slice) pair among scored rows: the sparse E and N of every aggregate."""

    cluster: np.ndarray
    slice: np.ndarray
    errors: np.ndarray
    words: np.ndarray
    wer_sum: np.ndarray  # Σ per-utterance WER over the pair's utterances with N > 0
    wer_count: np.ndarray  # how many such utterances

    @classmethod
    def of(cls, rows: _Rows, codes: np.ndarray, k: int) -> _Pairs:
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
    rows = _Rows.of(table)
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

    # One pass of bootstrap weights over every column of every aggregate: per group and
    # aggregate, the group's slices, then the dimension's own overall.
    columns, offset, layout = [], 0, {}
    for g, codes in enumerate(coded):
        k = len(codes.labels)
        for aggregate in (*AGGREGATES, BADLY_SERVED):
            for pairs, column in ((slice_pairs[g], offset + slice_pairs[g].slice), (dim_pairs[g], offset + k)):
                keep, numerator, denominator = pairs.ratio_terms(aggregate, threshold)
                column = np.broadcast_to(column, pairs.cluster.shape)
                columns.append((pairs.cluster[keep], column[keep], numerator[keep], denominator[keep]))
            layout[g, aggregate] = (offset, k)
            offset += k + 1
    shape = (rows.n_clusters, offset)
    cl, col, e, n = (np.concatenate(parts) for parts in zip(*columns, strict=True))
    reps_all = Resampler(rows.n_clusters, options.bootstrap, options.seed).rates(
        sparse.coo_matrix((e, (cl, col)), shape=shape), sparse.coo_matrix((n, (cl, col)), shape=shape)
    )

    def point(g: int, aggregate: str) -> tuple[np.ndarray, float | None]:
        """Per-slice values and the dimension's own overall under ``aggregate``."""
        values = slice_pairs[g].per_slice(aggregate, threshold, len(coded[g].labels))
        return values, finite_or_none(dim_pairs[g].per_slice(aggregate, threshold, 1)[0])

    def reps_of(g: int, aggregate: str) -> tuple[np.ndarray, np.ndarray]:
        start, k = layout[g, aggregate]
        return reps_all[:, start : start + k], reps_all[:, start + k]

    spreads = []
    for g in range(len(coded)):
        share, _ = point(g, BADLY_SERVED)
        share_cis = intervals(reps_of(g, BADLY_SERVED)[0], options.confidence)
        spreads.append(_speaker_spreads(slice_pairs[g], len(coded[g].labels), threshold, share, share_cis))

    blocks = {}
    for aggregate in AGGREGATES:
        values, _ = point(0, aggregate)
        overall = replace(
            base[0][0],
            wer=finite_or_none(values[0]),
            wer_ci=intervals(reps_of(0, aggregate)[0], options.confidence)[0],
            speakers_wer=spreads[0][0],
        )
        dimensions = []
        for g, spec in enumerate(specs, start=1):
            values, dim_value = point(g, aggregate)
            reps, dim_reps = reps_of(g, aggregate)
            slices = [
                replace(s, wer=finite_or_none(v), speakers_wer=spread)
                for s, v, spread in zip(base[g], values, spreads[g], strict=True)
            ]
            slices = _with_intervals(
                slices, reps, dim_reps, dim_value, spec.reference, options.confidence, options.power
            )
            ranked = [i for i, s in enumerate(slices) if _rankable(s)]
            dimensions.append(
                Dimension(
                    spec.label,
                    list(spec.by),
                    slices,
                    dim_value,
                    intervals(dim_reps[:, None], options.confidence)[0],
                    _disparity(slices, ranked, reps, dim_reps, dim_value, spec.reference, options.confidence),
                    _test(rows, slice_pairs[g], coded[g].codes, ranked, aggregate, options, seed_offset=g),
                )
            )
        blocks[aggregate] = Summary(
            overall, _holm_and_marks(dimensions, 1.0 - options.confidence), options, aggregate=aggregate
        )
    excluded = int((rows.ok & (rows.counts["ref_words"] <= 0)).sum())
    return Aggregates(options.aggregate, blocks, _sensitivity(blocks), threshold, excluded)


def cluster_units(table: pd.DataFrame) -> pd.Series:
    """Speaker per utterance; an utterance without a speaker id is its own unit."""
    return table["speaker"].astype("object").fillna("utt:" + table["id"].astype(str))


def _rankable(s: SliceStats) -> bool:
    return rankable(s.supported, s.wer is not None, s.values)


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
    power: float,
) -> list[SliceStats]:
    wer_cis = intervals(reps, confidence)
    diffs = reps - dim_reps[:, None]
    diff_cis = intervals(diffs, confidence)
    detectable = min_detectable_gaps(diffs, confidence, power)
    ref_index = next((i for i, s in enumerate(slices) if s.label == reference), None)
    out = []
    for i, s in enumerate(slices):
        # One speaker has no spread of its own: the replicates would show only the overall's.
        own = detectable[i] if s.speakers >= 2 else None
        vs_overall = Comparison(difference(s.wer, dim_wer), diff_cis[i] or [None, None], min_detectable=own)
        vs_reference = None
        if ref_index is not None:
            ref = slices[ref_index]
            ref_reps = reps[:, ref_index]
            ratio_reps = ratio_replicates(reps[:, i], ref_reps)
            ref_diffs = (reps[:, i] - ref_reps)[:, None]
            vs_reference = Comparison(
                difference(s.wer, ref.wer),
                intervals(ref_diffs, confidence)[0] or [None, None],
                s.wer / ref.wer if s.wer is not None and ref.wer else None,
                intervals(ratio_reps[:, None], confidence)[0],
                min_detectable_gaps(ref_diffs, confidence, power)[0] if min(s.speakers, ref.speakers) >= 2 else None,
            )
        out.append(replace(s, wer_ci=wer_cis[i], vs_overall=vs_overall, vs_reference=vs_reference))
    return out


def min_detectable_gaps(differences: np.ndarray, confidence: float, power: float) -> list[float | None]:
    """Per column of bootstrap replicates of a difference: (z_{1-α/2} + z_power) × its standard
    error, the smallest true difference a two-sided level-α test would detect with ``power``
    (None where the difference cannot vary)."""
    finite = np.isfinite(differences)
    count = finite.sum(axis=0)
    mean = np.where(finite, differences, 0.0).sum(axis=0) / np.maximum(count, 1)
    squares = ((np.where(finite, differences, mean) - mean) ** 2).sum(axis=0)  # undefined replicates add 0
    se = np.sqrt(np.where(count > 1, squares / np.maximum(count - 1, 1), 0.0))  # under 2 replicates: none
    multiplier = NormalDist().inv_cdf(1 - (1 - confidence) / 2) + NormalDist().inv_cdf(power)
    # An SE of 0: nothing varies (a dimension's only slice, the reference against itself).
    return [finite_or_none(multiplier * v) if v > 0 else None for v in se]


def _test(
    rows: _Rows,
    pairs: _Pairs,
    codes: np.ndarray,
    ranked: list[int],
    aggregate: str,
    options: StatsOptions,
    seed_offset: int,
) -> Test | None:
    """The dimension's permutation test on the units the aggregate weighs equally: words (pooled),
    speaker-slice pairs (speaker-mean) or utterances with words (utterance-mean)."""
    if aggregate == "pooled":
        cluster, unit_codes = rows.cluster, np.where(rows.ok, codes, -1)
        numerator, denominator = rows.counts["errors"], rows.counts["ref_words"]
    elif aggregate == "speaker-mean":
        keep, numerator, denominator = pairs.ratio_terms(aggregate, 0.0)
        cluster, unit_codes = pairs.cluster, np.where(keep, pairs.slice, -1)
    else:
        keep = rows.ok & (rows.counts["ref_words"] > 0)
        cluster, unit_codes = rows.cluster, np.where(keep, codes, -1)
        numerator, denominator = np.nan_to_num(rows.wer), np.ones(rows.wer.size)
    return ranked_test(
        cluster,
        unit_codes,
        ranked,
        numerator,
        denominator,
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
    out = list(dimensions)
    for i, test in enumerate(holm_adjusted([d.test for d in dimensions], alpha)):
        if test is None:
            continue
        slices = [
            replace(s, significantly_worse=test.significant and _rankable(s) and above_zero(_difference_ci(s)))
            for s in dimensions[i].slices
        ]
        out[i] = replace(dimensions[i], test=test, slices=slices)
    return out


def _difference_ci(s: SliceStats) -> Interval | None:
    return s.vs_overall.difference_ci if s.vs_overall else None


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


def _point_estimates(rows: _Rows, coded: SliceCodes, pairs: _Pairs, options: StatsOptions) -> list[SliceStats]:
    """Point estimates per slice, all from integer codes and bincounts."""
    k = len(coded.labels)
    inside = coded.codes >= 0
    scored, failed_rows = inside & rows.ok, inside & ~rows.ok

    def per_slice(weights: np.ndarray | None = None, mask: np.ndarray = scored) -> np.ndarray:
        return np.bincount(coded.codes[mask], weights=None if weights is None else weights[mask], minlength=k)

    sums = {c: per_slice(rows.counts[c]) for c in COUNT_COLUMNS}
    utterances, failed = per_slice(), per_slice(mask=failed_rows)
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


def _speaker_spreads(
    pairs: _Pairs, k: int, threshold: float, share: np.ndarray, share_cis: list[Interval | None]
) -> list[SpeakerSpread]:
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
        out.append(
            SpeakerSpread(
                threshold=threshold,
                above=int((group > threshold).sum()),
                speakers=int(group.size),
                share=finite_or_none(share[i]),
                share_ci=share_cis[i],
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
    high, low = extremes(reps[:, ranked])
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
        worst_vs_overall=difference(worst_wer, dim_wer),
        worst_vs_overall_ci=cis[2],
        reference=reference,
        with_failures=with_failures,
    )


def extremes(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest column of each replicate, ignoring slices a replicate drew no speaker of."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate may draw no speaker of any slice
        return np.nanmax(replicates, axis=1), np.nanmin(replicates, axis=1)


def ratio_replicates(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Replicates of a ratio: +inf where only the denominator is 0 (the interval then has no
    upper end; JSON shows it as null), NaN where both are (no information)."""
    ratios = ratio_or_nan(numerator, denominator)
    return np.where((denominator <= 0) & (numerator > 0), np.inf, ratios)


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def rate_or_none(numerator: float, denominator: float) -> float | None:
    return float(numerator) / denominator if denominator > 0 else None


def finite_or_none(value: object) -> float | None:
    """A finite float, or None (undefined, or an interval end that is unbounded)."""
    if value is None or pd.isna(value) or not np.isfinite(value):  # type: ignore[arg-type]
        return None
    return float(value)  # type: ignore[arg-type]
